"""The HTTP API's keys: admin and ingest roles, bearer tokens from /auth, keys made and revoked."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trio

from pipeline.backend.server import Backend
from tests.support import loopback_backend, pipeline_command, write_config

pytestmark = pytest.mark.e2e

EVENTS = "/api/core/v2/namespaces/default/events"
EVENT = {"entity": {"metadata": {"name": "web1"}}, "check": {"metadata": {"name": "disk"}, "status": 0, "output": "ok"}}


def key(value: str) -> dict[str, str]:
    return {"Authorization": f"Key {value}"}


async def test_keys_roles_tokens_and_revocation(tmp_path: Path) -> None:
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", ""), admin_keys=["root-key"],
                               ingest_keys=["push-key"], api_users=[("ops", "s3cret")])  # fmt: skip
    assert backend.admin_key is None  # an admin key was given: no admin.key file
    assert not (tmp_path / "data" / "admin.key").exists()

    async def cli(*args: str, api_key: str = "root-key") -> tuple[int, str, str]:
        result = await trio.run_process(pipeline_command(*args, "--api-url", url, "--api-key", api_key),
                                        capture_stdout=True, capture_stderr=True, check=False)  # fmt: skip
        return result.returncode, result.stdout.decode(), result.stderr.decode()

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            url = (await nursery.start(backend.run)).api_url
            async with httpx.AsyncClient(base_url=url) as client:
                assert (await client.get("/health")).status_code == 200  # open
                assert (await client.get("/metrics")).status_code == 200
                assert "sensu_backend" in (await client.get("/version")).json()  # open, as in Sensu Go
                missing = await client.get(EVENTS)
                wrong = await client.get(EVENTS, headers=key("guess"))
                assert (await client.post(EVENTS, json=EVENT, headers=key("push-key"))).status_code == 201
                ingest_reads = await client.get(EVENTS, headers=key("push-key"))
                assert (await client.get(EVENTS, headers=key("root-key"))).status_code == 200
                bad_login = await client.post("/auth", auth=("ops", "wrong"))
                token = (await client.post("/auth", auth=("ops", "s3cret"))).json()["access_token"]
                bearer = await client.get(EVENTS, headers={"Authorization": f"Bearer {token}"})
                code, made, _ = await cli("key", "create", "--role", "ingest", "--name", "ci")
                assert code == 0
                new_key = made.strip()
                assert (await client.post(EVENTS, json=EVENT, headers=key(new_key))).status_code == 201
                code, listing, _ = await cli("key", "list")
                key_id = listing.splitlines()[2].split()[0]
                assert "ingest" in listing
                assert "ci" in listing
                assert (await cli("key", "revoke", key_id))[0] == 0
                revoked = await client.post(EVENTS, json=EVENT, headers=key(new_key))
                code, _, refused = await cli("event", "list", api_key="nope")
            nursery.cancel_scope.cancel()
    assert (missing.status_code, wrong.status_code, ingest_reads.status_code) == (401, 401, 403)
    assert missing.json() == {"code": 6, "message": "an API key is required: Authorization: Key <key>"}
    assert (bad_login.status_code, bearer.status_code, revoked.status_code) == (401, 200, 401)
    assert code == 1
    assert "refused the API key" in refused
    counted = backend.metrics.registry.get_sample_value
    assert counted("pipeline_api_unauthorized_total", {"reason": "unauthenticated"}) == 4  # 2, revoked, cli
    assert counted("pipeline_api_unauthorized_total", {"reason": "forbidden"}) == 1


async def test_a_backend_without_keys_makes_an_admin_key_and_keeps_it(tmp_path: Path) -> None:
    def make() -> Backend:
        return loopback_backend(tmp_path, write_config(tmp_path / "c", ""))

    first = make()
    key_file = tmp_path / "data" / "admin.key"
    assert first.admin_key == key_file.read_text().strip()
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert make().admin_key == first.admin_key  # the same key after a restart


async def test_a_burst_of_wrong_passwords_is_counted_and_slowed_for_its_address_only(tmp_path: Path) -> None:
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", ""), api_users=[("ops", "s3cret")])
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            url = (await nursery.start(backend.run)).api_url
            async with httpx.AsyncClient(base_url=url) as guesser:
                guesses = [await guesser.post("/auth", auth=("ops", f"guess{i}")) for i in range(20)]
                right_but_throttled = await guesser.post("/auth", auth=("ops", "s3cret"))
                bad_keys = [(await guesser.get(EVENTS, headers=key("guess"))).status_code for _ in range(2)]
            other = httpx.AsyncHTTPTransport(local_address="127.0.0.2")  # another machine, as far as the API sees
            async with httpx.AsyncClient(base_url=url, transport=other) as operator:
                started = trio.current_time()
                login = await operator.post("/auth", auth=("ops", "s3cret"))
                took = trio.current_time() - started
            nursery.cancel_scope.cancel()
    statuses = [g.status_code for g in guesses]
    assert statuses == [401] * 5 + [429] * 15
    assert 1 <= int(guesses[-1].headers["retry-after"]) <= 5
    assert guesses[-1].json()["message"].startswith("too many failed attempts from 127.0.0.1")
    assert right_but_throttled.status_code == 429  # refused before the password is looked at: it tells nothing
    assert bad_keys == [429, 429]  # keys and passwords share the address's budget
    assert login.status_code == 200
    assert took < 1  # nothing waits on the throttled address
    failures = backend.metrics.registry.get_sample_value
    assert failures("pipeline_auth_failures_total", {"reason": "password"}) == 5
    assert failures("pipeline_auth_failures_total", {"reason": "throttled"}) == 18
