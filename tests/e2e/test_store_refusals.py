"""An event the store refuses for what it holds, from outside: real ``pipeline backend`` and
``pipeline agent`` processes, the refusal made by a trigger the operator put on the SQLite
store (as a constraint would be). The event is refused once, where it came from, and nothing
waits behind it: the journal sets it aside as a file (201 was answered already), the API
answers 422 when it stores before answering, the agent is told and sets it aside; the events
around it are stored, and reads do not wait for it."""

from __future__ import annotations

import json
import re
import sqlite3
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_kill import Daemon, Setup, daemons

pytestmark = pytest.mark.e2e

TRIGGER = ("CREATE TRIGGER refuse_poison BEFORE INSERT ON event_log WHEN NEW.check_name = 'poison' "
           "BEGIN SELECT RAISE(ABORT, 'poison is refused here'); END")  # fmt: skip


def result(check: str, output: str, **fields: object) -> dict[str, object]:
    return {"entity": {"metadata": {"name": "db1"}}, **fields,
            "check": {"metadata": {"name": check}, "status": 2, "output": output, "interval": 60}}  # fmt: skip


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found is not None, f"no {name} in the metrics"
    return float(found.group(1))


def admin_key(data: Path) -> str:
    return (data / "admin.key").read_text().strip()


def test_an_event_the_store_refuses_is_set_aside_or_refused_and_holds_nothing_back(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    with daemons() as started:
        backend: Daemon = setup.backend(started)
        with closing(sqlite3.connect(tmp_path / "backend" / "events.db")) as db, db:
            db.execute(TRIGGER)
        api = re.search(r'"backend ready" api=(\S+)', "".join(backend.lines))
        assert api is not None
        headers = {"Authorization": f"Key {admin_key(tmp_path / 'backend')}"}
        with httpx.Client(base_url=api.group(1), headers=headers, timeout=30) as client:
            # journaled (201 at once), then refused by the store: set aside, not offered again
            assert (
                client.post("/api/core/v2/namespaces/default/events", json=result("poison", "one")).status_code == 201
            )
            assert client.post("/api/core/v2/namespaces/default/events", json=result("fine", "two")).status_code == 201
            listed = client.get("/api/core/v2/namespaces/default/events")
            assert listed.status_code == 200
            assert [e["check"]["metadata"]["name"] for e in listed.json()] == ["fine"]
            backend.wait_for_log("journaled event set aside")
            (kept,) = (tmp_path / "backend" / "intake" / "refused").glob("*.json")
            assert json.loads(kept.read_bytes())["check"]["output"] == "one"
            # a client's own id: stored before the answer, so the answer is the refusal
            own_id = client.post("/api/core/v2/namespaces/default/events",
                                 json=result("poison", "three", id="5b8a0c5e-8d6f-4c57-9a0e-1a2b3c4d5e6f"))  # fmt: skip
            assert own_id.status_code == 422, own_id.text
            assert "refused" in own_id.json()["message"]
            # the agent's: refused to the agent, which sets it aside; its next result is stored
            setup.agent(started)
            with httpx.Client(base_url=f"http://127.0.0.1:{setup.agent_api}", timeout=30) as agent:
                assert agent.post("/events", json=result("poison", "four")).status_code == 202
                setup.send_marker_and_wait(agent)
                (aside,) = agent.get("/events/set-aside").json()
                assert aside["check"] == "poison"
                assert "refused" in aside["error"]
            stored = {e["check"]["metadata"]["name"] for e in client.get("/api/core/v2/events").json()}
            assert {"fine", "marker"} <= stored
            assert "poison" not in stored
            metrics = client.get("/metrics").text
        assert metric(metrics, "pipeline_store_events_refused_total") == 3
        assert metric(metrics, "pipeline_journal_set_aside_total") == 1
        assert metric(metrics, "pipeline_journal_retries_total") == 0
        assert metric(metrics, "pipeline_journal_barrier_timeouts_total") == 0
        assert metric(metrics, "pipeline_journal_pending") == 0
    setup.close()


def test_an_agent_backs_off_from_a_backend_whose_store_fails_and_delivers_once_it_works(tmp_path: Path) -> None:
    """A backend whose store fails every write (a trigger calling a function SQLite lacks: an
    operational error, as a full disk gives) takes the agent's handshake, fails its events and
    closes the connection. The agent's backoff grows over such connections rather than starting
    again at half a second after each handshake (a reconnect storm that resent its window twice a
    second); once the store works, its events are stored."""
    setup = Setup(tmp_path)
    with daemons() as started:
        setup.backend(started)
        with closing(sqlite3.connect(tmp_path / "backend" / "events.db")) as db, db:
            db.execute("CREATE TRIGGER broken BEFORE INSERT ON event_log BEGIN SELECT no_such_function(); END")
        agent = setup.agent(started)
        with httpx.Client(base_url=f"http://127.0.0.1:{setup.agent_api}", timeout=30) as client:
            assert client.post("/events", json=result("disk", "held back")).status_code == 202
            for ended in range(1, 4):
                agent.wait_for_log("backend connection ended", count=ended)
            delays = re.findall(r'"backend connection ended" .*worked=False retry_in=(\S+)', "".join(agent.lines))
            assert delays[:3] == ["0.5", "1.0", "2.0"]
            with closing(sqlite3.connect(tmp_path / "backend" / "events.db")) as db, db:
                db.execute("DROP TRIGGER broken")
            setup.send_marker_and_wait(client)  # the held-back event went first, in order
    with closing(sqlite3.connect(tmp_path / "backend" / "events.db")) as db:
        outputs = [row[0] for row in db.execute("SELECT check_name FROM event_log WHERE check_name = 'disk'")]
    assert outputs == ["disk"]
    setup.close()
