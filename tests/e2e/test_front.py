"""The backend's front process from outside (pipeline/backend/front.py): a real ``pipeline
backend``, clients on its API port. The front answers the plain event submissions (201 once
journaled); a read right after a 201, on any connection, sees the event; every other request,
and every submission it does not take, is answered by the backend as before; a front killed
loses no event it answered, and another takes its place."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import httpx
import msgpack
import pytest

from tests.e2e.test_kill import Daemon, daemons, free_port
from tests.support import write_config

pytestmark = pytest.mark.e2e

KEY = "front-admin-key"
EVENTS = "/api/core/v2/namespaces/default/events"


def result(check: str, output: str, status: int = 0, **fields: object) -> dict[str, object]:
    return {"entity": {"metadata": {"name": "web1"}}, **fields,
            "check": {"metadata": {"name": check}, "status": status, "output": output, "interval": 60}}  # fmt: skip


@contextmanager
def backend(tmp_path: Path) -> Iterator[tuple[Daemon, str]]:
    write_config(tmp_path / "config", "")
    port = free_port()
    with daemons() as started:
        daemon = Daemon(tmp_path / "backend.log", "backend", "--config", str(tmp_path / "config"), "--data",
                        str(tmp_path / "data"), "--api-addr", f"127.0.0.1:{port}", "--transport-addr",
                        f"127.0.0.1:{free_port()}", "--admin-key", KEY)  # fmt: skip
        started.append(daemon)
        daemon.wait_for_log("front process started")
        yield daemon, f"http://127.0.0.1:{port}"


def client(base: str, **headers: str) -> httpx.Client:
    return httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Key {KEY}", **headers})


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def front_pid(daemon: Daemon, nth: int = 1) -> int:
    daemon.wait_for_log("front process started", nth)
    pids = re.findall(r'"front process started" pid=(\d+)', "".join(daemon.lines))
    return int(pids[nth - 1])


def outputs_stored(tmp_path: Path, check: str) -> list[str]:
    with closing(sqlite3.connect(f"file:{tmp_path / 'data' / 'events.db'}?mode=ro", uri=True, timeout=30)) as db:
        rows = db.execute("SELECT event FROM event_log WHERE check_name = ? ORDER BY seq", (check,)).fetchall()
    return [msgpack.unpackb(row[0])["check"]["output"] for row in rows]


def test_the_front_answers_submissions_and_a_read_right_after_a_201_sees_the_event(tmp_path: Path) -> None:
    with backend(tmp_path) as (_, base), client(base) as writer, client(base) as reader:
        assert reader.get("/version").status_code == 200  # this connection is the backend's from now on
        for i in range(150):
            posted = writer.post(EVENTS, json=result("rw", str(i), status=i % 3))
            assert posted.status_code == 201, posted.text
            assert posted.content == b""
            # another connection, served by the backend: the event answered is there
            latest = reader.get(f"{EVENTS}/web1/rw")
            assert latest.status_code == 200, latest.text
            assert latest.json()["check"]["output"] == str(i)
        # the same connection: a read after its own submissions goes to the backend, with them
        assert writer.post(EVENTS, json=result("rw", "last")).status_code == 201
        assert writer.get(f"{EVENTS}/web1/rw").json()["check"]["output"] == "last"
        assert writer.post(EVENTS, json=result("rw", "after")).status_code == 201  # the backend's now
        metrics = reader.get("/metrics").text
    assert metric(metrics, "pipeline_front_answered_total") == 151
    assert metric(metrics, 'pipeline_front_handed_over_total{reason="request"}') == 2
    assert metric(metrics, "pipeline_journal_appended_total") == 152
    assert metric(metrics, 'pipeline_events_received_total{source="api"}') == 152
    assert outputs_stored(tmp_path, "rw") == [*map(str, range(150)), "last", "after"]


def raw_request(port: int, request: bytes) -> bytes:
    """One request on a connection of its own, and the whole answer (the server closes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def once(base: str, path: str, *, key: str | None = KEY, **request: object) -> httpx.Response:
    """One POST on a connection of its own: the front decides on its first request."""
    headers = {"Authorization": f"Key {key}"} if key else {}
    with httpx.Client(base_url=base, timeout=30, headers=headers) as fresh:
        return fresh.post(path, **request)  # type: ignore[arg-type]


def test_what_the_front_does_not_take_the_backend_answers_as_it_always_did(tmp_path: Path) -> None:
    with backend(tmp_path) as (_, base):
        port = int(base.rpartition(":")[2])
        refused = once(base, EVENTS, key=None, json=result("x", "no key"))
        assert refused.status_code == 401
        assert "API key" in refused.json()["message"]
        assert once(base, EVENTS, key="nope", json=result("x", "wrong key")).status_code == 401
        bad = once(base, EVENTS, content=b'{"entity": ', headers={"Content-Type": "application/json"})
        assert bad.status_code == 400
        assert "JSON" in bad.json()["message"] or bad.json()["message"]
        assert once(base, "/api/core/v2/namespaces/nowhere/events", json=result("x", "?")).status_code == 404
        # the client's own id: stored before the answer, by the backend
        own = once(base, EVENTS, json=result("own", "id", id="0b8a0c5e-8d6f-4c57-9a0e-1a2b3c4d5e6f"))
        assert own.status_code == 201, own.text
        # a field the model does not know: 201 with the warning the backend adds
        warned = once(base, EVENTS, json=result("warned", "field", color="blue"))
        assert warned.status_code == 201
        assert "color" in warned.headers.get("warning", "")
        # larger than the front takes: the backend journals it
        large = once(base, EVENTS, json=result("large", "x" * 100_000))
        assert large.status_code == 201, large.text
        # chunked, and HTTP/1.0: framed otherwise, answered the same
        body = json.dumps(result("chunked", "yes")).encode()
        chunked = raw_request(port, b"POST " + EVENTS.encode() + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Key "
                              + KEY.encode() + b"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                              + b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body))  # fmt: skip
        assert chunked.startswith(b"HTTP/1.1 201 "), chunked
        old_body = json.dumps(result("old", "1.0")).encode()
        old = raw_request(port, b"POST " + EVENTS.encode() + b" HTTP/1.0\r\nAuthorization: Key " + KEY.encode()
                          + b"\r\nContent-Length: %d\r\n\r\n%b" % (len(old_body), old_body))  # fmt: skip
        assert old.startswith(b"HTTP/1.1 201 "), old
        # what is not HTTP, and a head too long: the backend's refusals, as before
        garbage = raw_request(port, b"\x16\x03\x01 not http at all\r\n\r\n")
        assert garbage.startswith(b"HTTP/1.1 400 "), garbage
        long_head = raw_request(port, b"POST " + EVENTS.encode() + b" HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 70_000
                                + b"\r\n\r\n")  # fmt: skip
        assert long_head.startswith(b"HTTP/1.1 431 "), long_head
        with client(base) as api:
            stored = {e["check"]["metadata"]["name"] for e in api.get("/api/core/v2/events").json()}
            metrics = api.get("/metrics").text
    assert stored == {"own", "warned", "large", "chunked", "old"}
    handed = {reason: metric(metrics, f'pipeline_front_handed_over_total{{reason="{reason}"}}')
              for reason in ("request", "credentials", "invalid", "event", "head")}  # fmt: skip
    # no credential, too large, chunked, not HTTP, the read; a wrong key, an unknown namespace;
    # the bad JSON; the client's id, the unknown field; the long head
    assert handed == {"request": 5, "credentials": 2, "invalid": 1, "event": 2, "head": 1}
    assert metric(metrics, "pipeline_front_answered_total") == 1  # HTTP/1.0, framed by Content-Length
    assert metric(metrics, 'pipeline_api_unauthorized_total{reason="unauthenticated"}') == 2


def test_a_killed_front_loses_no_answered_event_and_another_takes_its_place(tmp_path: Path) -> None:
    answered: list[str] = []
    with backend(tmp_path) as (daemon, base):
        first = front_pid(daemon)
        with client(base) as api:
            for i in range(200):
                assert api.post(EVENTS, json=result("kill", str(i))).status_code == 201
                answered.append(str(i))
        os.kill(first, signal.SIGKILL)  # at once after the last 201: some not yet given to the backend
        daemon.wait_for_log("front process ended")
        second = front_pid(daemon, 2)
        assert second != first
        with client(base) as api:
            for i in range(200, 400):
                assert api.post(EVENTS, json=result("kill", str(i))).status_code == 201
                answered.append(str(i))
            latest = api.get(f"{EVENTS}/web1/kill")
            assert latest.json()["check"]["output"] == "399"
            metrics = api.get("/metrics").text
    assert outputs_stored(tmp_path, "kill") == answered
    assert metric(metrics, "pipeline_front_ended_total") == 1
    assert metric(metrics, "pipeline_front_answered_total") >= 200  # the second front's, at least
