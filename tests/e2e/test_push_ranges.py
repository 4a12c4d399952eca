"""Pushed formats carry times as they like: one past int64 (or past year 9999) used to reach the
store, fail msgpack there and stop the backend. Each is a 400 naming the field, and the backend
takes the next push."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from tests.support import loopback_backend, write_config

pytestmark = pytest.mark.e2e

TOKEN = "3c8f1a2e-ingest"
INTAKE = f"/stsAgent/intake?api_key={TOKEN}"
GOOD = {"internalHostname": "web1", "events": {"ci": [{"event_type": "deploy", "msg_title": "t", "msg_text": "m"}]}}


def stackstate(**changes: Any) -> dict[str, Any]:
    body = json.loads(json.dumps(GOOD))
    for path, value in changes.items():
        node, *keys = path.split("__")
        target = body if node == "body" else body["events"]["ci"][0]
        target[keys[0]] = value
    return body


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        (INTAKE, stackstate(event__timestamp=10**30), "events.ci[0].timestamp: 1000000000000000000000000000000 is out of range"),
        (INTAKE, stackstate(body__collection_timestamp=2**64), "collection_timestamp: 18446744073709551616 is out of range"),
        (INTAKE, stackstate(event__timestamp=-1), "events.ci[0].timestamp: -1 is out of range"),
        (INTAKE, {**GOOD, "metrics": [["m", 1e300, 1, {}]]}, "metrics[0][1]: "),
        (INTAKE, {**GOOD, "service_checks": [{"name": "s", "status": 0, "timestamp": 2**63}]},
         "service_checks[0].timestamp: 9223372036854775808 is out of range"),
        (f"/{TOKEN}/event", {"message": "m", "timestamp": "0001-01-01T00:00:00+14:00"}, "timestamp: "),
    ],
)  # fmt: skip
async def test_a_time_out_of_range_is_400_and_the_backend_takes_the_next_push(
    tmp_path: Path, path: str, body: dict[str, Any], message: str
) -> None:
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", ""), ingest_keys=[TOKEN])
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            url = (await nursery.start(backend.run)).api_url
            async with httpx.AsyncClient(base_url=url) as client:
                refused = await client.post(path, json=body)
                accepted = await client.post(INTAKE, json=GOOD)
                health = await client.get("/health")
            nursery.cancel_scope.cancel()
    assert refused.status_code == 400, refused.text
    assert refused.json()["message"].startswith(message), refused.text
    assert "out of range (0..253402300799)" in refused.json()["message"]
    assert accepted.status_code == 200
    assert health.status_code == 200
