"""Sensu Go's /auth family, /health, /ready and /version from outside: the real ``sensu-go``
PyPI client logging in, calling, refreshing and logging out as sensuctl does, and raw requests
as curl sends them. The backend's wall clock is moved by hand to expire tokens."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
import sensu_go
import trio
from sensu_go.errors import AuthError

from pipeline import __version__
from pipeline.backend.api.health import SENSU_GO_VERSION
from pipeline.errors import StoreError
from tests.support import loopback_backend, write_config

pytestmark = pytest.mark.e2e

CHECKS = "/api/core/v2/namespaces/default/checks"
CHECK = {"metadata": {"name": "disk"}, "command": "true", "interval": 60, "subscriptions": ["linux"]}


def sensu_session(url: str, clock: list[float]) -> dict[str, Any]:
    """What the real client sees through a session's life (runs in a thread: the client blocks)."""
    client = sensu_go.Client(url, username="ops", password="s3cret")
    seen: dict[str, Any] = {"created": client.post(CHECKS, CHECK).status}
    seen["listed"] = [c.metadata["name"] for c in client.checks.list()]
    http = client._client
    first_refresh = http._refresh_token  # type: ignore[attr-defined]
    clock[0] += 61  # past the access token's minute
    expired = client.get(CHECKS)
    seen["expired"] = expired.status, expired.json
    refreshed = client.post("/auth/token", {"refresh_token": first_refresh})  # the expired token as Bearer
    tokens = refreshed.json
    assert isinstance(tokens, dict)
    seen["refreshed"] = refreshed.status, sorted(tokens), tokens["expires_at"]
    http._auth_header_value = f"Bearer {tokens['access_token']}"  # type: ignore[attr-defined]
    seen["after_refresh"] = [c.metadata["name"] for c in client.checks.list()]
    seen["logout"] = client.post("/auth/logout", {"refresh_token": tokens["refresh_token"]}).status
    seen["after_logout"] = client.get(CHECKS).status
    seen["refresh_after_logout"] = client.post("/auth/token", {"refresh_token": tokens["refresh_token"]}).status
    late = sensu_go.Client(url, username="ops", password="s3cret")
    late.get(CHECKS)  # logs in
    clock[0] += 3600  # past the refresh token's hour
    seen["late_refresh"] = late.post("/auth/token", {"refresh_token": late._client._refresh_token}).json  # type: ignore[attr-defined]
    try:
        sensu_go.Client(url, username="ops", password="wrong").get(CHECKS)
    except AuthError as exc:
        seen["wrong_password"] = exc.status
    return seen


async def test_the_sensu_go_client_logs_in_refreshes_and_logs_out(tmp_path: Path) -> None:
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", "---\n"), api_users=[("ops", "s3cret")],
                               access_token_expiry=60, refresh_token_expiry=3600)  # fmt: skip
    clock = [1_700_000_000.0]
    backend.keys.wall_clock = lambda: clock[0]
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            url = (await nursery.start(backend.run)).api_url
            seen = await trio.to_thread.run_sync(sensu_session, url, clock)
            nursery.cancel_scope.cancel()
    assert seen["created"] == 201
    assert seen["listed"] == ["disk"]
    assert seen["expired"] == (
        401,
        {"code": 6, "message": "the access token is unknown or expired: refresh it (POST /auth/token)"},
    )
    assert seen["refreshed"][:2] == (200, ["access_token", "expires_at", "refresh_token"])
    assert seen["refreshed"][2] == 1_700_000_000 + 61 + 60  # the configured minute, from the refresh
    assert seen["after_refresh"] == ["disk"]
    assert (seen["logout"], seen["after_logout"], seen["refresh_after_logout"]) == (200, 401, 401)
    assert seen["late_refresh"] == {"code": 6, "message": "the refresh token has expired: log in again"}
    assert seen["wrong_password"] == 401
    failures = backend.metrics.registry.get_sample_value
    assert failures("pipeline_auth_failures_total", {"reason": "password"}) == 1
    assert failures("pipeline_auth_failures_total", {"reason": "bearer_token"}) == 3  # expired, 2 after logout
    assert failures("pipeline_auth_failures_total", {"reason": "refresh_expired"}) == 1


async def test_auth_test_health_ready_and_version_as_curl_asks(tmp_path: Path) -> None:
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", "---\n"), api_users=[("ops", "s3cret")])
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            url = (await nursery.start(backend.run)).api_url
            async with httpx.AsyncClient(base_url=url) as curl:
                good = await curl.get("/auth/test", auth=("ops", "s3cret"))
                bad = await curl.get("/auth/test", auth=("ops", "guess"))
                none = await curl.get("/auth/test")
                health = await curl.get("/health", params={"timeout": "3"}, headers={"Authorization": "Bearer x"})
                bad_timeout = await curl.get("/health", params={"timeout": "soon"})
                ready = await curl.get("/ready")
                version = await curl.get("/version")
                get_only = await curl.post("/auth/test", auth=("ops", "s3cret"))
            nursery.cancel_scope.cancel()
    assert (good.status_code, good.content) == (200, b"")
    assert len(backend.keys.sessions) == 0  # /auth/test makes no token
    assert (bad.status_code, bad.json()) == (401, {"code": 6, "message": "unknown user or wrong password"})
    assert none.status_code == 401
    assert health.status_code == 200
    body = health.json()
    assert body["Alarms"] is None
    assert [(m["Name"], m["Err"], m["Healthy"]) for m in body["ClusterHealth"]] == [(backend.config.name, "", True)]
    assert body["Header"]["cluster_id"] == body["ClusterHealth"][0]["MemberID"]
    assert "PostgresHealth" not in body  # as Sensu Go without PostgreSQL
    assert body["pipeline"]["store"]["kind"] == "sqlite"
    assert body["pipeline"]["ready"] is True
    assert bad_timeout.status_code == 400
    assert bad_timeout.json()["message"].startswith("timeout: ")
    assert (ready.status_code, ready.text, ready.headers["content-type"]) == (
        200,
        "ready\n",
        "text/plain; charset=utf-8",
    )
    assert version.json() == {"etcd": None, "sensu_backend": SENSU_GO_VERSION, "pipeline": __version__}
    assert get_only.status_code == 405
    assert backend.metrics.registry.get_sample_value("pipeline_auth_failures_total", {"reason": "password"}) == 1


async def test_health_is_503_when_the_store_fails_or_does_not_answer(tmp_path: Path) -> None:
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", "---\n"))
    release = threading.Event()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            url = (await nursery.start(backend.run)).api_url
            sqlite = backend.store.store
            async with httpx.AsyncClient(base_url=url) as curl:

                def broken() -> int:
                    raise StoreError("events.db: cannot read the outbox: disk I/O error")

                sqlite.last_job = broken  # type: ignore[method-assign]
                failed = await curl.get("/health")
                sqlite.last_job = lambda: int(release.wait(30))  # type: ignore[method-assign]
                started = trio.current_time()
                hung = await curl.get("/health", params={"timeout": "1"})
                took = trio.current_time() - started
                release.set()
            nursery.cancel_scope.cancel()
    assert failed.status_code == 503
    assert failed.json()["ClusterHealth"][0]["Err"] == "events.db: cannot read the outbox: disk I/O error"
    assert failed.json()["ClusterHealth"][0]["Healthy"] is False
    assert hung.status_code == 503
    assert hung.json()["pipeline"]["store"]["error"] == "the store did not answer within 1 s"
    assert 1 <= took < 5  # the probe's thread is abandoned, not waited for
    counted = backend.metrics.registry.get_sample_value
    assert counted("pipeline_health_store_failures_total", {"reason": "error"}) == 1
    assert counted("pipeline_health_store_failures_total", {"reason": "timeout"}) == 1
