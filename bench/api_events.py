"""Events per second accepted over HTTP: the Sensu events API from one keep-alive client, and
StackState intakes in batches; and the HTTP server's own ceiling beside hypercorn's.

The backend runs as its own process (``pipeline backend``, SQLite in a temporary directory).
The client is one keep-alive connection on a plain socket, sending one request and reading
its answer before the next (as ``wrk -c1`` does): a Python HTTP client library costs more per
request than the server, and would measure itself (httpx: about 2,200 requests/s here).

*Ceiling*: GET /version, the cost of the HTTP stack alone (``/health`` reads the store since
issue 14). *Events API*: N check events (100
checks) POSTed one after the other to ``/api/core/v2/namespaces/default/events``; each answer
(201) comes once the event is stored. *StackState*: N change events in intakes of B events.
*Servers*: an empty ASGI app served by ``pipeline.http`` and by hypercorn's trio worker (the
peer, when installed: ``pip install -e '.[bench]'``), each in its own process.

Usage: python -m bench.api_events [--events N] [--batch B]
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

KEY = "bench-admin-key"


class KeepAliveClient:
    """HTTP/1.1 on one socket, one request at a time; answers framed by Content-Length."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def request(self, method: str, target: str, body: bytes = b"", headers: str = "") -> tuple[int, bytes]:
        head = f"{method} {target} HTTP/1.1\r\nHost: bench\r\n{headers}Content-Length: {len(body)}\r\n\r\n"
        self.sock.sendall(head.encode() + body)
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        head_bytes, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head_bytes.split(b"\r\n")
        length = next(
            int(v) for n, _, v in (line.partition(b":") for line in lines[1:]) if n.lower() == b"content-length"
        )
        while len(self.buffer) < length:
            self._read()
        answer, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(lines[0].split()[1]), answer

    def _read(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        self.buffer += data

    def close(self) -> None:
        self.sock.close()


def rate(count: int, step: Callable[[int], None]) -> float:
    started = time.perf_counter()
    for i in range(count):
        step(i)
    return count / (time.perf_counter() - started)


@contextmanager
def process_announcing(command: list[str], pattern: bytes) -> Iterator[tuple[str, int]]:
    """A subprocess that writes ``pattern`` (with the address as its group) to stderr when ready."""
    process = subprocess.Popen(command, stderr=subprocess.PIPE)
    assert process.stderr is not None
    try:
        for line in process.stderr:
            if match := re.search(pattern, line):
                host, _, port = match.group(1).decode().rpartition(":")
                yield host.removeprefix("http://"), int(port)
                return
        raise RuntimeError(f"{command[2:4]} did not start")
    finally:
        process.terminate()
        process.wait()


def backend(tmp: Path) -> Any:
    (tmp / "config").mkdir()
    command = [sys.executable, "-m", "pipeline.cli.main", "backend", "--config", str(tmp / "config"), "--data",
               str(tmp / "data"), "--api-addr", "127.0.0.1:0", "--transport-addr", "127.0.0.1:0", "--admin-key", KEY]  # fmt: skip
    return process_announcing(command, rb'"backend ready" api=(\S+)')


def measure_backend(address: tuple[str, int], count: int, batch: int) -> dict[str, float]:
    client = KeepAliveClient(address)
    auth = f"Authorization: Key {KEY}\r\n"

    def health(i: int) -> None:
        assert client.request("GET", "/version")[0] == 200

    def post_event(i: int) -> None:
        body = {"entity": {"metadata": {"name": f"host{i % 10}"}},
                "check": {"metadata": {"name": f"check{i % 100}"}, "status": i % 3, "output": f"result {i}",
                          "interval": 60}}  # fmt: skip
        status, answer = client.request("POST", "/api/core/v2/namespaces/default/events", json.dumps(body).encode(),
                                        auth + "Content-Type: application/json\r\n")  # fmt: skip
        assert status == 201, answer

    def intake(n: int) -> None:
        start = n * batch
        events = [{"msg_title": "Deploy", "msg_text": f"deploy {i}", "timestamp": 1_800_000_000 + i}
                  for i in range(start, start + batch)]  # fmt: skip
        body = {"collection_timestamp": 1_800_000_000, "internalHostname": "db1", "events": {"deployment": events}}
        status, answer = client.request("POST", f"/stsAgent/intake?api_key={KEY}", json.dumps(body).encode())
        assert status == 200, answer

    try:
        return {
            "health": rate(count, health),
            "events": rate(count, post_event),
            "stackstate": rate(count // batch, intake) * batch,
        }
    finally:
        client.close()


# -- an empty app on each server, for the servers' own ceilings ------------------------------------


async def empty_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":  # hypercorn speaks the lifespan protocol
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")]})  # fmt: skip
    await send({"type": "http.response.body", "body": b"{}"})


def serve_empty_app(server: str) -> None:
    import trio

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            if server == "pipeline":
                from pipeline.http import serve_app

                host, port = await nursery.start(serve_app, empty_app, ("127.0.0.1", 0))
                url = f"{host}:{port}"
            else:
                from hypercorn.config import Config
                from hypercorn.trio import serve

                config = Config()
                config.bind = ["127.0.0.1:0"]
                config.accesslog = config.errorlog = None
                config.keep_alive_max_requests = 2**31  # its default closes a connection after 1,000 requests
                url = (await nursery.start(serve, empty_app, config))[0]
            print(f"serving on {url}", file=sys.stderr, flush=True)

    trio.run(main)


def hypercorn_installed() -> bool:
    try:
        import hypercorn  # noqa: F401
    except ImportError:
        return False
    return True


def measure_server(server: str, count: int) -> float:
    command = [sys.executable, "-m", "bench.api_events", "--serve", server]
    with process_announcing(command, rb"serving on (\S+)") as address:
        client = KeepAliveClient(address)

        def get(i: int) -> None:
            assert client.request("GET", "/")[0] == 200

        try:
            return rate(count, get)
        finally:
            client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--serve", choices=["pipeline", "hypercorn"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_empty_app(args.serve)
        return
    with tempfile.TemporaryDirectory() as tmp, backend(Path(tmp)) as address:
        figures = measure_backend(address, args.events, args.batch)
    ours = measure_server("pipeline", args.events)
    peer = measure_server("hypercorn", args.events) if hypercorn_installed() else None
    print(f"GET /version, one keep-alive client: {figures['health']:,.0f} requests/s (the HTTP stack's ceiling)")
    print(f"events API, one keep-alive client: {figures['events']:,.0f} events/s "
          f"({args.events:,} events, each stored before 201; goal 3,000)")  # fmt: skip
    print(f"StackState intake, {args.batch} events a body: {figures['stackstate']:,.0f} events/s")
    print(f"empty ASGI app, pipeline.http: {ours:,.0f} requests/s")
    if peer is None:
        print("empty ASGI app, hypercorn trio worker: not installed (pip install -e '.[bench]')")
    else:
        print(f"empty ASGI app, hypercorn trio worker: {peer:,.0f} requests/s")
        print(f"ratio pipeline.http / hypercorn: {ours / peer:.2f}")


if __name__ == "__main__":
    main()
