"""``pipeline backend --store postgresql://...``: a real backend process on a fresh PostgreSQL
schema takes an event through the events API, and has it (and its history) after a restart."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio

from tests.pg_support import fresh_schema
from tests.support import Daemon, free_port

pytestmark = pytest.mark.e2e

NS = "/api/core/v2/namespaces/default"
KEY = "e2e-admin-key"


async def backend_once(tmp_path: Path, store: str, api: int, requests: list[tuple[str, dict[str, object] | None]]) -> tuple[str, list[httpx.Response]]:  # fmt: skip
    """Start a backend on ``store``, send ``requests`` ((path, body): PUT with a body, else GET),
    stop it; its log and the answers."""
    args = ["backend", "--store", store, "--data", str(tmp_path / "data"), "--api-addr", f"127.0.0.1:{api}",
            "--transport-addr", f"127.0.0.1:{free_port()}", "--admin-key", KEY, "--log-level", "info"]  # fmt: skip
    daemon = Daemon("backend")
    answers = []
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(daemon.run, args, dict(os.environ), "backend ready"))
            headers = {"Authorization": f"Key {KEY}"}
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api}", headers=headers) as client:
                for path, body in requests:
                    answers.append(await (client.put(path, json=body) if body else client.get(path)))
            nursery.cancel_scope.cancel()  # trio terminates the process
    return daemon.text, answers


def failing(status: int) -> dict[str, object]:
    return {"check": {"metadata": {"name": "bgp"}, "status": status, "output": "peer down"}}


async def test_a_backend_on_postgresql_keeps_events_and_history_across_a_restart(tmp_path: Path) -> None:
    with fresh_schema() as dsn:
        api = free_port()
        path = f"{NS}/events/router1/bgp"
        first_log, first = await backend_once(
            tmp_path, dsn, api, [(path, failing(2)), (path, failing(2)), (path, None)]
        )
        second_log, second = await backend_once(tmp_path, dsn, api, [(path, None), (path, failing(0)), (path, None)])
    assert [a.status_code for a in first + second] == [201, 201, 200, 200, 201, 200], [a.text for a in first + second]
    before, after_restart, resolved = first[2].json(), second[0].json(), second[2].json()
    assert after_restart == before
    assert [h["status"] for h in before["check"]["history"]] == [2, 2]
    assert before["check"]["occurrences"] == 2
    assert [h["status"] for h in resolved["check"]["history"]] == [2, 2, 0]  # state carried over the restart
    assert not (tmp_path / "data" / "events.db").exists()
    for log in (first_log, second_log):
        assert "store=postgresql://pipeline@127.0.0.1:5432/pipeline_test shared=True" in log, log[-2000:]
        assert "pipeline:pipeline@" not in log


def test_an_unknown_store_is_refused_naming_the_flag(tmp_path: Path) -> None:
    import subprocess

    from tests.support import pipeline_command

    result = subprocess.run(pipeline_command("backend", "--store", "mysql://u:secret@h/db", "--data", str(tmp_path)),
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2
    assert "argument --store" in result.stderr
    assert "secret" not in result.stderr
