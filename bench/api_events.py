"""Check results per second accepted by the events API, and the backend CPU each one costs;
StackState intakes in batches; and the HTTP server's own ceiling beside hypercorn's.

The backend runs as its own process (``pipeline backend``, SQLite in a temporary directory).
Each client is one keep-alive connection on a plain socket, sending one request and reading
its answer before the next (as ``wrk -c1`` does): a Python HTTP client library costs more per
request than the server, and would measure itself (httpx: about 2,200 requests/s here).

*Events API*: the issue-19 workload, N check results of 200 checks (20 hosts x 10 checks),
each check's status cycling 0, 1, 2 from one round to the next so that every result changes
state, POSTed to ``/api/core/v2/namespaces/default/events`` from one client and then from
four concurrent clients (four processes, each a quarter of the results, one request at a
time); each 201 means the result survives a crash of the backend (journaled, since issue 19). Beside each rate, the backend's CPU time (user +
system, every thread, from ``/proc/<pid>/stat``) divided by the results. *Ceiling*: GET
/version, the HTTP stack alone. *StackState*: N change events in intakes of B events.
*Servers*: an empty ASGI app served by ``pipeline.http`` and by hypercorn's trio worker (the
peer, when installed: ``pip install -e '.[bench]'``), each in its own process.

*Icinga 2*, when ``bench/icinga.py`` is there and Icinga 2 is installed: its ``measure``
runs the same results (:func:`results`) against Icinga 2's REST API and gives
:class:`Figures` for one and four clients (None: not installed); see :func:`peer_figures`.
With ``--slices S`` a round runs the backend and Icinga 2 side by side instead, each sent its
results in S parts, taking turns (:func:`sliced_round`): on this machine, whose speed moves
within seconds, four rounds of the same tree gave four-client ratios of 0.88-1.11 unsliced and
0.96-1.06 in five slices (BENCHMARKS.md, issue 19's eighth session).

Usage: python -m bench.api_events [--events N] [--batch B] [--only-events] [--rounds R] [--slices S]
"""

from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing
import os
import re
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.process_cpu import tree_cpu
from bench.table import Row, record

KEY = "bench-admin-key"
#: The issue-19 workload: this many checks, on this many hosts.
CHECKS = 200
HOSTS = 20
#: Concurrent clients of the second run.
CLIENTS = 4


@dataclass(slots=True, frozen=True)
class Result:
    """One check result of the workload, as any server under test is sent it."""

    host: str
    check: str
    status: int
    output: str


def results(count: int, start: int = 0) -> Iterator[Result]:
    """Results ``start`` to ``start + count`` of the workload: check ``i % 200``, its status
    cycling 0, 1, 2 with each round through the 200 checks (every result a state change)."""
    for i in range(start, start + count):
        k = i % CHECKS
        yield Result(f"host{k % HOSTS}", f"check{k // HOSTS}", (i // CHECKS) % 3, f"result {i}")


@dataclass(slots=True, frozen=True)
class Figures:
    """Results a second, and the server's CPU µs per result (None when not measured)."""

    rate: float
    cpu_us: float | None

    def __str__(self) -> str:
        cpu = "" if self.cpu_us is None else f", {self.cpu_us:,.0f} µs CPU a result"
        return f"{self.rate:,.0f} results/s{cpu}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far, every thread, and of its processes
    alive now (the backend's store writer)."""
    return tree_cpu(pid)


class KeepAliveClient:
    """HTTP/1.1 on one socket, one request at a time; answers framed by Content-Length."""

    def __init__(self, address: tuple[str, int], *, tls: bool = False) -> None:
        sock = socket.create_connection(address)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls:  # a peer's API (Icinga 2's) with a certificate made for the run: not verified
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            sock = context.wrap_socket(sock)
        self.sock = sock
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
def process_announcing(command: list[str], pattern: bytes) -> Iterator[tuple[tuple[str, int], int]]:
    """A subprocess that writes ``pattern`` (with the address as its group) to stderr when
    ready: its address and pid."""
    process = subprocess.Popen(command, stderr=subprocess.PIPE)
    assert process.stderr is not None
    try:
        for line in process.stderr:
            if match := re.search(pattern, line):
                host, _, port = match.group(1).decode().rpartition(":")
                yield (host.removeprefix("http://"), int(port)), process.pid
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


def event_body(result: Result) -> bytes:
    return json.dumps({"entity": {"metadata": {"name": result.host}},
                       "check": {"metadata": {"name": result.check}, "status": result.status,
                                 "output": result.output, "interval": 60}}).encode()  # fmt: skip


def post_results(address: tuple[str, int], count: int, start: int, ready: Any = None) -> None:
    """Send results ``start`` to ``start + count`` one request at a time on one connection (a
    client process's work); ``ready``: a barrier passed once connected."""
    client = KeepAliveClient(address)
    headers = f"Authorization: Key {KEY}\r\nContent-Type: application/json\r\n"
    bodies = [event_body(r) for r in results(count, start)]
    if ready is not None:
        ready.wait()
    try:
        for body in bodies:
            status, answer = client.request("POST", "/api/core/v2/namespaces/default/events", body, headers)
            assert status == 201, answer
    finally:
        client.close()


def measure_events(address: tuple[str, int], pid: int, count: int, clients: int, start: int = 0) -> Figures:
    """The events API's figures with ``clients`` concurrent keep-alive clients, each in its own
    process, sending ``count`` results between them."""
    share = count // clients
    ready = multiprocessing.Barrier(clients + 1)
    workers = [multiprocessing.Process(target=post_results, args=(address, share, start + n * share, ready))
               for n in range(clients)]  # fmt: skip
    for worker in workers:
        worker.start()
    ready.wait()
    cpu, started = cpu_seconds(pid), time.perf_counter()
    for worker in workers:
        worker.join()
    elapsed, used = time.perf_counter() - started, cpu_seconds(pid) - cpu
    if any(worker.exitcode for worker in workers):
        raise RuntimeError("a client failed (see above)")
    return Figures(share * clients / elapsed, used / (share * clients) * 1e6)


def measure_backend(address: tuple[str, int], pid: int, count: int, batch: int, only_events: bool) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "one": measure_events(address, pid, count, 1),
        "four": measure_events(address, pid, count, CLIENTS, start=count),
    }
    if not only_events:
        figures.update(measure_extras(address, count, batch))
    return figures


def measure_extras(address: tuple[str, int], count: int, batch: int) -> dict[str, Any]:
    """GET /version's rate (the HTTP stack's ceiling) and StackState intakes' events a second."""
    figures: dict[str, Any] = {}
    client = KeepAliveClient(address)

    def health(i: int) -> None:
        assert client.request("GET", "/version")[0] == 200

    def intake(n: int) -> None:
        start = n * batch
        events = [{"msg_title": "Deploy", "msg_text": f"deploy {i}", "timestamp": 1_800_000_000 + i}
                  for i in range(start, start + batch)]  # fmt: skip
        body = {"collection_timestamp": 1_800_000_000, "internalHostname": "db1", "events": {"deployment": events}}
        status, answer = client.request("POST", f"/stsAgent/intake?api_key={KEY}", json.dumps(body).encode())
        assert status == 200, answer

    try:
        figures["health"] = rate(count, health)
        figures["stackstate"] = rate(count // batch, intake) * batch
    finally:
        client.close()
    return figures


def _icinga() -> Any:
    """``bench/icinga.py`` when it is there and Icinga 2 is installed, else None."""
    try:
        icinga = importlib.import_module("bench.icinga")  # the integrator's; absent until then
    except ModuleNotFoundError as exc:
        if exc.name != "bench.icinga":
            raise  # it is there, and broken
        return None
    return icinga if icinga.installed() else None


def peer_figures(count: int) -> dict[str, Figures] | None:
    """Icinga 2's figures for the same results, one client and four (``bench/icinga.py``'s
    ``measure(results, count, clients) -> Figures | None``); None when it cannot run."""
    icinga = _icinga()
    if icinga is None:
        return None
    one = icinga.measure(results, count, 1)
    four = icinga.measure(results, count, CLIENTS)
    if one is None or four is None:
        return None
    return {"one": one, "four": four}


def sliced_round(
    count: int, batch: int, only_events: bool, slices: int, pipeline_first: bool
) -> tuple[dict[str, Any], dict[str, Figures] | None]:
    """One round with the backend and Icinga 2 running side by side: each client count's results
    sent in ``slices`` parts, the two sides taking turns (pipeline, Icinga 2, Icinga 2, pipeline,
    ...), each side's times and CPU summed, so that a load that moves within seconds weighs on
    both alike (as ``bench.handlers --slices``). Both are sent the same results, one client's
    first; (our figures, Icinga 2's or None)."""
    icinga = _icinga()
    with tempfile.TemporaryDirectory() as tmp, backend(Path(tmp)) as (address, pid):
        if icinga is None:
            return measure_backend(address, pid, count, batch, only_events), None
        services: dict[str, list[str]] = {}
        for result in results(CHECKS):
            services.setdefault(result.host, []).append(result.check)
        ours: dict[str, Any] = {}
        theirs: dict[str, Figures] = {}
        with icinga.icinga(services) as (peer, peer_pid):

            def icinga_slice(part: int, first: int, clients: int) -> Figures:
                requests = [icinga.check_result(result) for result in results(part, first)]
                rate, cpu = icinga.run_clients(peer, requests, clients, tls=True, expected=200,
                                               cpu_of=lambda: icinga.tree_cpu(peer_pid))  # fmt: skip
                return Figures(rate, cpu * 1e6)

            for name, clients, start in (("one", 1, 0), ("four", CLIENTS, count)):
                part = count // slices // CLIENTS * CLIENTS  # whole shares for every client
                sums = {"ours": [0.0, 0.0], "theirs": [0.0, 0.0]}  # seconds, CPU seconds
                for i in range(slices):
                    first = start + i * part
                    for side in ("ours", "theirs") if pipeline_first == (i % 2 == 0) else ("theirs", "ours"):
                        if side == "ours":
                            figures = measure_events(address, pid, part, clients, start=first)
                        else:
                            figures = icinga_slice(part, first, clients)
                        sums[side][0] += part / figures.rate
                        sums[side][1] += (figures.cpu_us or 0.0) * part / 1e6
                sent = part * slices
                ours[name] = Figures(sent / sums["ours"][0], sums["ours"][1] / sent * 1e6)
                theirs[name] = Figures(sent / sums["theirs"][0], sums["theirs"][1] / sent * 1e6)
        if not only_events:
            ours.update(measure_extras(address, count, batch))
    return ours, theirs


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


def measure_server(server: str, count: int) -> Figures:
    command = [sys.executable, "-m", "bench.api_events", "--serve", server]
    with process_announcing(command, rb"serving on (\S+)") as (address, pid):
        client = KeepAliveClient(address)

        def get(i: int) -> None:
            assert client.request("GET", "/")[0] == 200

        try:
            rate(min(count, 500), get)  # warm: the first requests pay for imports and caches
            cpu = cpu_seconds(pid)
            requests = rate(count, get)
            return Figures(requests, (cpu_seconds(pid) - cpu) / count * 1e6)
        finally:
            client.close()


def report_clients(name: str, clients: int, rounds: list[tuple[dict[str, Any], dict[str, Figures] | None]]) -> None:
    """Print and record one client count's figures: each round's, then (several rounds) the
    medians, and the worst round's ratio to Icinga 2."""
    label = f"{clients} keep-alive client{'s' if clients > 1 else ''}"
    ratios: list[float] = []
    for n, (figures, peer) in enumerate(rounds, 1):
        versus = ""
        if peer is not None:
            ratios.append(figures[name].rate / peer[name].rate)
            versus = f"; Icinga 2: {peer[name]} (ratio {ratios[-1]:.2f})"
        prefix = f"round {n}, " if len(rounds) > 1 else ""
        print(f"  {prefix}{label}: {figures[name]}{versus}")
    ours = Figures(statistics.median(f[name].rate for f, _ in rounds),
                   _median_or_none([f[name].cpu_us for f, _ in rounds]))  # fmt: skip
    peers = [p[name] for _, p in rounds if p is not None]
    theirs = None
    if peers:
        theirs = Figures(statistics.median(p.rate for p in peers), _median_or_none([p.cpu_us for p in peers]))
    if len(rounds) > 1:
        versus = "" if theirs is None else (f"; Icinga 2: {theirs}; ratio median {statistics.median(ratios):.2f}, "
                                            f"worst round {min(ratios):.2f}")  # fmt: skip
        print(f"  median of {len(rounds)} rounds, {label}: {ours}{versus}")
    record(Row("api_events", f"events API, {clients} client(s)", ours.rate, "results/s",
               "Icinga 2" if theirs else "", theirs.rate if theirs else None, ">= 1.0x Icinga 2",
               theirs.rate <= ours.rate if theirs else None))  # fmt: skip
    if len(ratios) > 1:
        record(Row("api_events", f"events API, {clients} client(s), worst of {len(ratios)} rounds", min(ratios),
                   "x Icinga 2", goal=">= 1.0 every round", met=min(ratios) >= 1.0))  # fmt: skip
    if ours.cpu_us is not None:
        record(Row("api_events", f"events API, {clients} client(s): backend CPU per result", ours.cpu_us, "µs",
                   "Icinga 2" if theirs else "", theirs.cpu_us if theirs else None, "<= 400",
                   ours.cpu_us <= 400))  # fmt: skip


def _median_or_none(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--only-events", action="store_true", help="the events API's figures only")
    parser.add_argument("--rounds", type=int, default=1,
                        help="the events API and Icinga 2 measured this many times, alternated (the "
                             "other figures once): each round's figures, the medians and the worst ratio")  # fmt: skip
    parser.add_argument("--slices", type=int, default=1,
                        help="each round's results in this many parts, the backend and Icinga 2 running side by "
                             "side and taking turns (a load that moves within seconds weighs on both alike)")  # fmt: skip
    parser.add_argument("--serve", choices=["pipeline", "hypercorn"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_empty_app(args.serve)
        return
    if args.rounds < 1 or args.batch < 1:
        parser.error("--rounds and --batch: at least 1")
    if args.slices < 1 or args.events // args.slices < CLIENTS:  # a slice gives each client a result at least
        parser.error(f"--slices: from 1 to {max(args.events // CLIENTS, 0)} for --events {args.events}")
    print(f"load: {os.getloadavg()[0]:.2f}")
    rounds: list[tuple[dict[str, Any], dict[str, Figures] | None]] = []
    for n in range(args.rounds):  # pipeline, then Icinga 2, alternated: a passing load falls on both
        if args.slices > 1:
            rounds.append(sliced_round(args.events, args.batch, args.only_events or n > 0, args.slices, n % 2 == 0))
            continue
        with tempfile.TemporaryDirectory() as tmp, backend(Path(tmp)) as (address, pid):
            figures = measure_backend(address, pid, args.events, args.batch, args.only_events or n > 0)
        rounds.append((figures, peer_figures(args.events)))
    print(f"events API, {args.events:,} results of {CHECKS} checks, each 201 once it survives a backend crash "
          f"(goal: Icinga 2's rate, at most 400 µs CPU a result), {args.rounds} round(s)")  # fmt: skip
    for name, clients in (("one", 1), ("four", CLIENTS)):
        report_clients(name, clients, rounds)
    figures, peer = rounds[0]
    if peer is None:
        print("  Icinga 2: not measured (bench/icinga.py absent or Icinga 2 not installed)")
    if args.only_events:
        return
    ours = measure_server("pipeline", args.events)
    hyper = measure_server("hypercorn", args.events) if hypercorn_installed() else None
    print(f"GET /version, one keep-alive client: {figures['health']:,.0f} requests/s (the HTTP stack's ceiling)")
    print(f"StackState intake, {args.batch} events a body: {figures['stackstate']:,.0f} events/s")
    print(f"empty ASGI app, pipeline.http: {ours.rate:,.0f} requests/s, {ours.cpu_us:,.0f} µs CPU a request")
    if hyper is None:
        print("empty ASGI app, hypercorn trio worker: not installed (pip install -e '.[bench]')")
    else:
        print(
            f"empty ASGI app, hypercorn trio worker: {hyper.rate:,.0f} requests/s, {hyper.cpu_us:,.0f} µs CPU a request"
        )
        print(f"ratio pipeline.http / hypercorn: {ours.rate / hyper.rate:.2f}")


if __name__ == "__main__":
    main()
