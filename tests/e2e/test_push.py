"""Change events pushed as Sematext and StackState clients push them, and the timeline."""

from __future__ import annotations

import json
import re
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from pipeline.backend.server import Backend
from pipeline.wire.limits import MAX_EVENT_BYTES
from tests.support import admin_headers, loopback_backend, pipeline_command, write_config

pytestmark = pytest.mark.e2e

TOKEN = "3c8f1a2e-ingest"
SYSTEMD_START = '{"message" : "Starting Elasticsearch on node web1","type" : "server_start"}'
SYSTEMD_STOP = '{"message" : "Stopping Elasticsearch on node web1","type" : "server_stop"}'


def backend(tmp_path: Path) -> Backend:
    return loopback_backend(tmp_path, write_config(tmp_path / "config", ""), ingest_keys=[TOKEN],
                            max_body_size=64 * 1024)  # fmt: skip


async def curl(*args: str) -> tuple[str, str]:
    """curl as the seeds' lines run it; returns (HTTP status, body)."""
    result = await trio.run_process(["curl", "-s", "-w", "\n%{http_code}", *args], capture_stdout=True)
    body, _, status = result.stdout.decode().rpartition("\n")
    return status, body


async def test_sematext_systemd_lines_verbatim_and_a_stackstate_intake_land_on_the_timeline(tmp_path: Path) -> None:
    intake: dict[str, Any] = {
        "collection_timestamp": 1_800_000_000, "internalHostname": "db1",
        "events": {"deployment": [{"msg_title": "Deploy", "msg_text": "shop 1.4.2 deployed", "timestamp": 1_800_000_000}],
                   "config_change": [{"msg_title": "Config", "msg_text": "pool size 20", "timestamp": 1_800_000_010},
                                     {"msg_title": "Config", "msg_text": "pool size 40", "timestamp": 1_800_000_020}]},
        "service_checks": [{"name": "db.can_connect", "status": 2, "host_name": "db1", "message": "refused",
                            "timestamp": 1_800_000_030}],
        "metrics": [], "topologies": [], "health": [],
    }  # fmt: skip
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            server = backend(tmp_path)
            addresses = await nursery.start(server.run)
            url = addresses.api_url
            # Sematext's systemd lines, verbatim but for the address: no Content-Type header
            started = await curl("-XPOST", f"{url}/{TOKEN}/event", "-d", SYSTEMD_START)
            stopped = await curl("-XPOST", f"{url}/{TOKEN}/event", "-d", SYSTEMD_STOP)
            wrong_key = await curl("-XPOST", f"{url}/not-a-key/event", "-d", SYSTEMD_START)
            malformed = await curl("-XPOST", f"{url}/{TOKEN}/event", "-d", '{"message": ')
            missing = await curl("-XPOST", f"{url}/{TOKEN}/event", "-d", '{"type": "deployment"}')
            too_large = await curl("-XPOST", f"{url}/{TOKEN}/event", "-d", json.dumps({"message": "x" * 70_000}))
            stackstate = await curl("-XPOST", f"{url}/stsAgent/intake?api_key={TOKEN}", "-H",
                                    "Content-Type: application/json", "-d", json.dumps(intake))  # fmt: skip
            reserved = await curl("-XPOST", f"{url}/receiver/stsAgent/intake?api_key={TOKEN}", "-d",
                                  json.dumps({"events": {"hostname_change": [{"msg_title": "t", "msg_text": "x"}]}}))  # fmt: skip
            async with httpx.AsyncClient(base_url=url, headers=admin_headers(server)) as client:
                timeline = (await client.get("/api/core/v2/namespaces/default/timeline",
                                             params={"since": "1700000000", "until": "1800000100"})).json()  # fmt: skip
                page = await client.get("/api/core/v2/namespaces/default/timeline",
                                        params={"since": "1700000000", "entity": "db1", "limit": "2"})  # fmt: skip
                rest = await client.get("/api/core/v2/namespaces/default/timeline",
                                        params={"since": "1700000000", "entity": "db1",
                                                "continue": page.headers["Sensu-Continue"]})  # fmt: skip
                server_start = (await client.get("/api/core/v2/namespaces/default/events")).json()
            listing = await trio.run_process(pipeline_command("timeline", "--since", "1700000000", "--entity", "db1",
                                                              "--api-url", url, "--data", str(tmp_path / "data")),
                                           capture_stdout=True)  # fmt: skip
            nursery.cancel_scope.cancel()
    assert started == ("201", '{"accepted":1}')
    assert stopped[0] == "201"
    assert wrong_key[0] == "401"
    assert malformed[0] == "400"
    assert "malformed JSON at line 1 column 13" in malformed[1]
    assert missing == ("400", '{"code":2,"message":"message: required: the text of the event"}')
    assert too_large[0] == "413"
    assert stackstate == ("200", '{"accepted":4}')
    assert reserved[0] == "400"
    assert "events.hostname_change: event names must not start with the reserved prefix 'host'" in reserved[1]
    # the deploy comes before the failing check, in time order
    db1 = [
        (e["check"]["metadata"]["name"], e["check"]["output"])
        for e in timeline
        if e["entity"]["metadata"]["name"] == "db1"
    ]
    assert db1 == [("deployment", "shop 1.4.2 deployed"), ("config_change", "pool size 20"),
                   ("config_change", "pool size 40"), ("db.can_connect", "refused")]  # fmt: skip
    assert [e["check"]["output"] for e in page.json() + rest.json()] == [o for _, o in db1]
    assert "Sensu-Continue" not in rest.headers
    config_changes = [e["check"] for e in timeline if e["check"]["metadata"]["name"] == "config_change"]
    assert config_changes[1]["occurrences"] == 2  # change events keep their history
    assert all(c["low_flap_threshold"] == c["high_flap_threshold"] == 0 for c in config_changes)  # so never flap
    starts = [e for e in server_start if e["check"]["metadata"]["name"] == "server_start"]
    assert starts[0]["check"]["output"] == "Starting Elasticsearch on node web1"
    assert starts[0]["entity"]["entity_class"] == "proxy"
    table = listing.stdout.decode()
    assert re.search(r"TIME\s+ENTITY\s+CHECK\s+STATUS\s+OUTPUT", table)
    assert re.search(r"db1\s+deployment\s+0\s+shop 1.4.2 deployed", table)
    assert table.index("deployment") < table.index("db.can_connect")


async def test_bodies_may_be_larger_than_one_event_but_no_event_is_larger_than_the_maximum(tmp_path: Path) -> None:
    server = loopback_backend(tmp_path, write_config(tmp_path / "config", ""), ingest_keys=[TOKEN],
                              max_body_size=8 * MAX_EVENT_BYTES)  # fmt: skip
    check = {"entity": {"metadata": {"name": "db1"}}, "check": {"metadata": {"name": "dump"}, "status": 0}}
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(server.run)
            async with httpx.AsyncClient(base_url=addresses.api_url, headers=admin_headers(server)) as client:
                events = "/api/core/v2/namespaces/default/events"
                large = await client.post(
                    events, json={**check, "check": {**check["check"], "output": "x" * MAX_EVENT_BYTES}}
                )
                fits = await client.post(events, json={**check, "check": {**check["check"], "output": "x" * 900_000}})
                sematext = await client.post(f"/{TOKEN}/event", json={"message": "y" * MAX_EVENT_BYTES})
                # 160 KB of JSON, but every empty point is a whole point: 1.3 MB of event
                defaults = await client.post(
                    events, json={"entity": check["entity"], "metrics": {"points": [{}] * 40_000}}
                )
                latest = (await client.get(f"{events}/db1/dump")).json()
            nursery.cancel_scope.cancel()
    for refused in (large, sematext, defaults):
        assert refused.status_code == 413
        assert f"exceeds the maximum event size of {MAX_EVENT_BYTES} bytes" in refused.json()["message"]
    assert fits.status_code == 201
    assert len(latest["check"]["output"]) == 900_000  # the event that fits, not the one refused


async def test_a_pushed_event_the_store_refuses_is_answered_422_and_the_others_are_stored(tmp_path: Path) -> None:
    """A push of several events, one of which the store refuses for what it holds (a trigger,
    as a constraint would): the answer says how many were refused, the others are stored, and a
    push of the refused one alone is refused again at once rather than failing for ever."""
    checks = [{"name": name, "status": 2, "host_name": "db1", "message": "down", "timestamp": 1_800_000_030}
              for name in ("poison", "db.can_connect")]  # fmt: skip
    intake = {"internalHostname": "db1", "service_checks": checks, "events": {}, "metrics": [], "topologies": [],
              "health": []}  # fmt: skip
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            server = backend(tmp_path)
            addresses = await nursery.start(server.run)
            with closing(sqlite3.connect(tmp_path / "data" / "events.db")) as db, db:
                db.execute("CREATE TRIGGER refuse_poison BEFORE INSERT ON event_log WHEN NEW.check_name = 'poison' "
                           "BEGIN SELECT RAISE(ABORT, 'poison is refused here'); END")  # fmt: skip
            url = f"{addresses.api_url}/stsAgent/intake?api_key={TOKEN}"
            both = await curl("-XPOST", url, "-H", "Content-Type: application/json", "-d", json.dumps(intake))
            alone = await curl("-XPOST", url, "-H", "Content-Type: application/json", "-d",
                               json.dumps({**intake, "service_checks": checks[:1]}))  # fmt: skip
            async with httpx.AsyncClient(base_url=addresses.api_url, headers=admin_headers(server)) as client:
                stored = (await client.get("/api/core/v2/namespaces/default/events")).json()
            nursery.cancel_scope.cancel()
    assert both[0] == "422"
    assert "refused 1 of the 2 events" in json.loads(both[1])["message"]
    assert alone[0] == "422"
    assert "refused this event" in json.loads(alone[1])["message"]
    assert [e["check"]["metadata"]["name"] for e in stored] == ["db.can_connect"]
    assert server.metrics.push_refused.labels("stackstate", "store")._value.get() == 2
