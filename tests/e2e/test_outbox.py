"""Handlers run at least once: a backend killed (kill -9) after it accepted an event and before
its handler finished runs the handler after the restart, with the same event."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sqlite3
from contextlib import closing
from pathlib import Path

import httpx
import msgpack
import pytest
import trio

from pipeline.model import Event, new_event_id
from pipeline.store.sqlite import SQLiteStore
from tests.e2e.test_kill import DEADLINE, Daemon, daemons, free_port
from tests.support import EVENT_FILE_HANDLER, admin_headers, loopback_backend, write_config

pytestmark = pytest.mark.e2e

#: A pipe handler whose first run says it started and then hangs (the backend is killed
#: meanwhile); every later run writes the event it got into the FIFO.
HANDLER = """#!/bin/sh
if [ -e {gate} ]; then exec {event_file} {fifo}; fi
echo $$ > {gate}
cat > /dev/null
echo started > {started}
exec sleep 600
"""


def read_fifo(fd: int) -> bytes:
    readable, _, _ = select.select([fd], [], [], DEADLINE)
    assert readable, "nothing came through the FIFO"
    return os.read(fd, 1 << 20)


def test_a_handler_cut_short_by_a_backend_kill_runs_after_the_restart(tmp_path: Path) -> None:
    received, started = tmp_path / "received.fifo", tmp_path / "started.fifo"
    for fifo in (received, started):
        os.mkfifo(fifo)
    received_fd = os.open(received, os.O_RDWR | os.O_NONBLOCK)
    started_fd = os.open(started, os.O_RDWR | os.O_NONBLOCK)
    gate = tmp_path / "first-run.pid"
    script = tmp_path / "handler.sh"
    script.write_text(HANDLER.format(gate=gate, event_file=EVENT_FILE_HANDLER, fifo=received, started=started))
    script.chmod(0o755)
    config = write_config(tmp_path / "config", f"""
        type: Handler
        api_version: core/v2
        metadata: {{name: pager}}
        spec: {{type: pipe, command: {script}, timeout: 300}}
        """)  # fmt: skip
    api_port = free_port()
    args = ("backend", "--config", str(config), "--data", str(tmp_path / "data"),
            "--api-addr", f"127.0.0.1:{api_port}", "--transport-addr", f"127.0.0.1:{free_port()}")  # fmt: skip
    event = {"entity": {"metadata": {"name": "db1"}},
             "check": {"metadata": {"name": "backup"}, "status": 2, "output": "backup failed", "handlers": ["pager"]}}  # fmt: skip
    try:
        with daemons() as running:
            backend = Daemon(tmp_path / "backend.log", *args)
            running.append(backend)
            backend.wait_for_log("backend ready")
            key = (tmp_path / "data" / "admin.key").read_text().strip()
            with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", headers={"Authorization": f"Key {key}"},
                              timeout=30) as client:  # fmt: skip
                response = client.post("/api/core/v2/namespaces/default/events", json=event)
                assert response.status_code == 201, response.text
                accepted = client.get("/api/core/v2/namespaces/default/events/db1/backup").json()
            assert read_fifo(started_fd) == b"started\n"  # the handler is running ...
            backend.kill()  # ... when the backend dies
            restarted = Daemon(tmp_path / "backend.log", *args)
            running.append(restarted)
            handled = json.loads(read_fifo(received_fd))
            restarted.wait_for_log("handler work of a previous run resumed")
            with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=30) as client:
                metrics = client.get("/metrics").text
        # stopped (SIGTERM): the handlers drained and what they did is recorded
        with closing(sqlite3.connect(tmp_path / "data" / "events.db")) as db:
            left = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    finally:
        with contextlib.suppress(ProcessLookupError):  # the restarted backend kills it when it clears dead cgroups
            os.kill(int(gate.read_text()), signal.SIGKILL)  # the first run's sleep, orphaned by the kill
        os.close(received_fd)
        os.close(started_fd)
    assert handled["id"] == accepted["id"]  # the event that was accepted, with the id to de-duplicate by
    assert handled["check"]["output"] == "backup failed"
    assert "pipeline_outbox_resumed_total 1.0" in metrics
    assert left == 0  # done, and recorded as done: not run a third time


async def test_a_stop_lets_handlers_finish_for_a_bounded_time_and_keeps_the_rest(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config", f"""
        type: Handler
        api_version: core/v2
        metadata: {{name: quick}}
        spec: {{type: pipe, command: cat >> {tmp_path / "quick.out"}, timeout: 30}}
        ---
        type: Handler
        api_version: core/v2
        metadata: {{name: stuck}}
        spec: {{type: pipe, command: exec sleep 600, timeout: 300}}
        """)  # fmt: skip
    backend = loopback_backend(tmp_path, config, handler_drain=0.5)
    events = [{"entity": {"metadata": {"name": "db1"}},
               "check": {"metadata": {"name": name}, "status": 2, "output": name, "handlers": [name]}}
              for name in ("quick", "stuck")]  # fmt: skip
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(backend.run)
            async with httpx.AsyncClient(base_url=addresses.api_url, headers=admin_headers(backend)) as client:
                for event in events:
                    assert (await client.post("/api/core/v2/namespaces/default/events", json=event)).status_code == 201
            await backend.stop()
    with closing(sqlite3.connect(tmp_path / "data" / "events.db")) as db:
        left = [msgpack.unpackb(row[0])["check"]["output"] for row in db.execute("SELECT event FROM outbox")]
    assert left == ["stuck"]  # the stuck handler's event waits for the next start; the quick one ran
    assert json.loads((tmp_path / "quick.out").read_text())["check"]["output"] == "quick"


async def test_an_outbox_job_that_no_longer_loads_is_counted_and_dropped_and_the_others_run(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config", f"""
        type: Handler
        api_version: core/v2
        metadata: {{name: quick}}
        spec: {{type: pipe, command: cat >> {tmp_path / "quick.out"}, timeout: 30}}
        """)  # fmt: skip
    first = loopback_backend(tmp_path, config)
    good = {"entity": {"metadata": {"name": "db1"}}, "check": {"metadata": {"name": "ok"}, "status": 2,
            "output": "left for the next start", "handlers": ["quick"]}}  # fmt: skip
    store = SQLiteStore(tmp_path / "data" / "events.db")
    store.open()
    event = Event.from_dict({"id": new_event_id(), **good})
    store.write_batch([], [event])  # a job a previous run left
    store.close()
    with closing(sqlite3.connect(tmp_path / "data" / "events.db")) as db, db:  # and one no longer readable
        db.execute("INSERT INTO outbox (event_id, event) VALUES ('x', ?)", (b"\\xc1not msgpack",))
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(first.run)
            await first.stop()
    with closing(sqlite3.connect(tmp_path / "data" / "events.db")) as db:
        left = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    assert first.metrics.registry.get_sample_value("pipeline_outbox_unreadable_total") == 1
    assert first.metrics.registry.get_sample_value("pipeline_outbox_resumed_total") == 1
    assert json.loads((tmp_path / "quick.out").read_text())["check"]["output"] == "left for the next start"
    assert left == 0  # the good one ran, the bad one is gone: neither is read again at the next start
