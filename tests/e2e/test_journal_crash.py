"""kill -9 right after the events API answered 201: the intake journal (pipeline/backend/journal.py)
answers once an event is appended, before it is stored; a backend killed then stores it when
it starts again, once, with the check's state as if nothing had happened."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import httpx
import msgpack
import pytest

from pipeline.core.state import apply_result
from pipeline.model import Check, ObjectMeta
from tests.e2e.test_kill import Daemon, daemons, free_port
from tests.support import write_config

pytestmark = pytest.mark.e2e

KEY = "journal-crash-key"


def backend(tmp_path: Path, started: list[Daemon], port: int) -> Daemon:
    daemon = Daemon(tmp_path / "backend.log", "backend", "--config", str(tmp_path / "config"), "--data",
                    str(tmp_path / "data"), "--api-addr", f"127.0.0.1:{port}", "--transport-addr",
                    f"127.0.0.1:{free_port()}", "--admin-key", KEY)  # fmt: skip
    started.append(daemon)
    daemon.wait_for_log("backend ready")
    return daemon


def stored(tmp_path: Path) -> list[dict[str, object]]:
    """Every stored result of the ``crash`` check, in the order stored."""
    path = tmp_path / "data" / "events.db"
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as db:
        rows = db.execute("SELECT event FROM event_log WHERE check_name = 'crash' ORDER BY seq").fetchall()
    return [msgpack.unpackb(row[0]) for row in rows]


def test_every_event_answered_201_is_stored_once_after_a_kill(tmp_path: Path) -> None:
    count = 400
    write_config(tmp_path / "config", "")
    port = free_port()
    with daemons() as started:
        first = backend(tmp_path, started, port)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                          headers={"Authorization": f"Key {KEY}"}) as client:  # fmt: skip
            for i in range(count):
                body = {"entity": {"metadata": {"name": "db1"}},
                        "check": {"metadata": {"name": "crash"}, "status": i % 3, "output": str(i), "interval": 60}}  # fmt: skip
                response = client.post("/api/core/v2/namespaces/default/events", json=body)
                assert response.status_code == 201, response.text
        first.kill()  # at once after the last 201: the last events are journaled, not yet stored
        before = len(stored(tmp_path))
        backend(tmp_path, started, port)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                          headers={"Authorization": f"Key {KEY}"}) as client:  # fmt: skip
            latest = client.get("/api/core/v2/namespaces/default/events/db1/crash")
            assert latest.status_code == 200, latest.text
    outputs = [event["check"]["output"] for event in stored(tmp_path)]  # type: ignore[index]
    assert outputs == [str(i) for i in range(count)], f"{before} stored at the kill"
    expected = None
    for i in range(count):
        expected = apply_result(Check(metadata=ObjectMeta(name="crash", namespace="default"), status=i % 3,
                                      output=str(i), interval=60), expected)  # fmt: skip
    assert expected is not None
    check = latest.json()["check"]
    assert check["output"] == str(count - 1)
    assert [h["status"] for h in check["history"]] == [h.status for h in expected.history]
    assert check["occurrences"] == expected.occurrences
