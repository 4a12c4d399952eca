"""Silences from the config files, through a real backend: not_silenced, expire_on_resolve, restarts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from tests.support import EVENT_FILE_HANDLER, EventPipe, admin_headers, loopback_backend, write_config

pytestmark = pytest.mark.e2e

EVENTS = "/api/core/v2/namespaces/default/events"


def config(pipe: Path) -> str:
    # the pager hears only of unsilenced incidents (and resolutions)
    return f"""
        type: Handler
        api_version: core/v2
        metadata: {{name: pager}}
        spec:
          type: pipe
          command: {EVENT_FILE_HANDLER} {pipe}
          filters: [is_incident, not_silenced]
        ---
        type: Silenced
        api_version: core/v2
        metadata: {{}}
        spec:
          subscription: linux
          check: disk
          expire_on_resolve: true
          reason: new disk on order
        ---
        type: Silenced
        api_version: core/v2
        metadata: {{}}
        spec:
          check: load
          expire: 3600
        """


def check_event(check: str, status: int) -> dict[str, Any]:
    return {"entity": {"metadata": {"name": "web1"}, "subscriptions": ["linux"], "entity_class": "agent"},
            "check": {"metadata": {"name": check}, "status": status, "output": f"{check} {status}",
                      "subscriptions": ["linux"], "handlers": ["pager"]}}  # fmt: skip


async def test_silenced_incidents_do_not_page_and_a_resolution_ends_the_silence(tmp_path: Path) -> None:
    pipe = EventPipe(tmp_path / "events.fifo")
    config_dir = write_config(tmp_path / "config", config(pipe.path))
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            backend = loopback_backend(tmp_path, config_dir)
            addresses = await nursery.start(backend.run)
            async with httpx.AsyncClient(base_url=addresses.api_url, headers=admin_headers(backend)) as client:
                for check, status in [("disk", 2), ("load", 2), ("cpu", 2)]:
                    assert (await client.post(EVENTS, json=check_event(check, status))).status_code == 201
                paged = await pipe.next_event()  # only cpu: disk and load are silenced
                silenced = {c: (await client.get(f"{EVENTS}/web1/{c}")).json()["check"] for c in ("disk", "load")}
                assert (await client.post(EVENTS, json=check_event("disk", 0))).status_code == 201
                resolution = await pipe.next_event()  # the resolution passes not_silenced ...
                assert (await client.post(EVENTS, json=check_event("disk", 2))).status_code == 201
                again = await pipe.next_event()  # ... and the silence is over
            await backend.stop()  # a clean stop: the handlers finish, so nothing is handled again after it
        # A restart does not bring back the silence the resolution ended.
        async with trio.open_nursery() as nursery:
            backend = loopback_backend(tmp_path, config_dir)
            addresses = await nursery.start(backend.run)
            async with httpx.AsyncClient(base_url=addresses.api_url, headers=admin_headers(backend)) as client:
                for check in ("load", "disk"):
                    assert (await client.post(EVENTS, json=check_event(check, 1))).status_code == 201
                after_restart = await pipe.next_event()
            nursery.cancel_scope.cancel()
    await pipe.aclose()
    assert paged["check"]["metadata"]["name"] == "cpu"
    assert paged["check"]["is_silenced"] is False
    assert silenced["disk"]["silenced"] == ["linux:disk"]
    assert silenced["disk"]["is_silenced"] is True
    assert silenced["load"]["silenced"] == ["*:load"]
    assert resolution["check"]["metadata"]["name"] == "disk"
    assert resolution["check"]["status"] == 0
    assert resolution["check"].get("silenced", []) == []  # left the list: passes not_silenced
    assert resolution["check"]["is_silenced"] is True  # as in Sensu Go
    assert (again["check"]["metadata"]["name"], again["check"]["status"]) == ("disk", 2)
    assert "silenced" not in again["check"]
    assert (after_restart["check"]["metadata"]["name"], after_restart["check"]["status"]) == ("disk", 1)


async def test_silences_made_and_removed_through_the_api(tmp_path: Path) -> None:
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", "---\n"))
    silenced = "/api/core/v2/namespaces/default/silenced"
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(backend.run)
            async with httpx.AsyncClient(base_url=addresses.api_url, headers=admin_headers(backend)) as client:
                made = await client.post(silenced, json={"subscription": "linux", "expire": 600, "reason": "patching",
                                                         "creator": "ops"})  # fmt: skip
                everything = await client.post(silenced, json={"subscription": "*", "check": "*"})
                huge = await client.post(silenced, json={"check": "disk", "reason": "x" * (1024 * 1024)})
                malformed = await client.post(silenced, content=b'{"check": ')
                listed = (await client.get(silenced)).json()
                one = await client.get(f"{silenced}/linux:*")
                by_subscription = [(await client.get(f"{silenced}/subscriptions/{s}")).json() for s in ("linux", "web")]
                by_check = (await client.get(f"{silenced}/checks/disk")).json()
                assert (await client.post(silenced, json={"check": "backup"})).status_code == 201
                by_check_backup = (await client.get(f"{silenced}/checks/backup")).json()
                assert (await client.delete(f"{silenced}/*:backup")).status_code == 204
                await client.post(EVENTS, json=check_event("disk", 2))
                during = (await client.get(f"{EVENTS}/web1/disk")).json()["check"]
                assert (await client.delete(f"{silenced}/linux:*")).status_code == 204
                missing = await client.delete(f"{silenced}/linux:*")
                await client.post(EVENTS, json=check_event("disk", 2))
                after = (await client.get(f"{EVENTS}/web1/disk")).json()["check"]
            nursery.cancel_scope.cancel()
    assert made.status_code == 201
    body = made.json()
    assert (body["metadata"]["name"], body["expire_at"] - body["begin"]) == ("linux:*", 600)
    assert everything.status_code == 400
    assert "'*:*' would silence everything" in everything.json()["message"]
    assert huge.status_code == 413
    assert (malformed.status_code, malformed.json()["message"]) == (
        400,
        "malformed JSON at line 1 column 11: Expecting value",
    )
    assert [s["metadata"]["name"] for s in listed] == ["linux:*"]
    assert (one.status_code, one.json()) == (200, listed[0])
    assert [len(found) for found in by_subscription] == [1, 0]
    assert by_check == []  # linux:* names no check
    assert [e["metadata"]["name"] for e in by_check_backup] == ["*:backup"]
    assert (during["silenced"], during["is_silenced"]) == (["linux:*"], True)
    assert missing.status_code == 404
    assert "silenced" not in after
