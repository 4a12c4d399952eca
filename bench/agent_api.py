"""Check results per second into a real agent: its local API (``POST /events``) and its client
socket (TCP, Sensu 1.x's port 3030), and on to a real backend.

Three processes of ours, none of them the clients: ``pipeline backend`` (SQLite in a temporary
directory), ``pipeline agent`` (its spool in the same directory) connected to it, and four
client processes. Each API client holds one keep-alive connection on a plain socket and sends
one request, reads its answer (202: the result is in the agent's spool on disk), then the next,
as ``wrk -c4`` does. N results of 200 checks, statuses cycling (so the backend sees state
changes). Each socket client opens one connection per result, as Sensu 1.x's protocol wants,
sends the JSON and reads ``ok`` (again: once it is in the spool).

Printed for each: results/s answered by the agent; results/s stored by the backend (its
``pipeline_events_stored``, timed from the first request to the last result stored); the
agent's CPU per result (utime + stime from ``/proc/<pid>/stat`` over the same window, the
sending to the backend included), and the backend's. On a shared machine the CPU figures are
the steadier ones.

Usage: python -m bench.agent_api [--results N] [--clients C] [--skip-socket] [--skip-floor]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.api_events import KeepAliveClient
from bench.process_cpu import tree_cpu
from bench.table import Row, record

CHECKS = 200


@dataclass(slots=True)
class Daemon:
    process: subprocess.Popen[bytes]
    log: Path

    def wait_for(self, pattern: bytes, timeout: float = 30.0) -> re.Match[bytes]:
        """The first log line matching ``pattern`` (the daemon logs to a file, which nothing can fill up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if match := re.search(pattern, self.log.read_bytes()):
                return match
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"no {pattern!r} in {self.log}:\n{self.log.read_text()[-2000:]}")

    def cpu_seconds(self) -> float:
        return tree_cpu(self.process.pid)  # with its children: the backend's store writer


@contextmanager
def daemon(
    command: list[str], log: Path, profile: str | None = None, module: str = "pipeline.cli.main"
) -> Iterator[Daemon]:
    python = [sys.executable, "-m", "cProfile", "-o", profile] if profile else [sys.executable]
    with log.open("wb") as out:
        process = subprocess.Popen([*python, "-m", module, *command], stderr=out, stdout=out)
    try:
        yield Daemon(process, log)
    finally:
        process.terminate()
        process.wait()


def address(match: re.Match[bytes]) -> tuple[str, int]:
    host, _, port = match.group(1).decode().removeprefix("http://").rpartition(":")
    return host, int(port)


def stored(api: tuple[str, int]) -> int:
    with urllib.request.urlopen(f"http://{api[0]}:{api[1]}/metrics") as answer:
        text = answer.read().decode()
    match = re.search(r"^pipeline_events_stored_total (\S+)$", text, re.M)
    return int(float(match.group(1))) if match else 0


def api_body(i: int) -> bytes:
    status = (i // CHECKS) % 3
    return json.dumps({"check": {"metadata": {"name": f"check-{i % CHECKS}"}, "status": status,
                                 "output": f"CHECK {status} - result {i} | value={i}", "interval": 60}}).encode()  # fmt: skip


def socket_body(i: int) -> bytes:
    status = (i // CHECKS) % 3
    return json.dumps({"name": f"check-{i % CHECKS}", "status": status,
                       "output": f"CHECK {status} - result {i} | value={i}"}).encode()  # fmt: skip


def api_client(
    target: tuple[str, int], indexes: range, start: multiprocessing.synchronize.Barrier, expected: int = 202
) -> None:
    client = KeepAliveClient(target)
    start.wait()
    for i in indexes:
        status, answer = client.request("POST", "/events", api_body(i), "Content-Type: application/json\r\n")
        assert status == expected, answer
    client.close()


def server_floor(count: int, clients: int, tmp: Path) -> tuple[float, float]:
    """The same requests to an empty ASGI app on the same HTTP server (``pipeline.http``), in a
    process of its own: (requests/s, µs of CPU a request), the server's own share of the route."""
    with daemon(["--serve", "pipeline"], tmp / "empty.log", module="bench.api_events") as server:
        target = address(server.wait_for(rb"serving on (\S+)"))
        start = multiprocessing.Barrier(clients + 1)
        share = count // clients
        workers = [multiprocessing.Process(target=api_client, args=(target, range(k * share, (k + 1) * share), start,
                                                                     200)) for k in range(clients)]  # fmt: skip
        for worker in workers:
            worker.start()
        cpu = server.cpu_seconds()
        start.wait()
        began = time.perf_counter()
        for worker in workers:
            worker.join()
            assert worker.exitcode == 0, "a client failed"
        elapsed = time.perf_counter() - began
        return share * clients / elapsed, (server.cpu_seconds() - cpu) / (share * clients) * 1e6


def socket_client(target: tuple[str, int], indexes: range, start: multiprocessing.synchronize.Barrier) -> None:
    start.wait()
    for i in indexes:
        with socket.create_connection(target) as sock:
            sock.sendall(socket_body(i))
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
            assert answer == b"ok", answer


@dataclass(slots=True)
class Figures:
    answered: float
    reached: float
    agent_us: float
    backend_us: float


def measure(
    client: Callable[[tuple[str, int], range, multiprocessing.synchronize.Barrier], None],
    target: tuple[str, int], first: int, count: int, clients: int, agent: Daemon, backend: Daemon,
    api: tuple[str, int],
) -> Figures:  # fmt: skip
    before = stored(api)
    start = multiprocessing.Barrier(clients + 1)
    share = count // clients
    workers = [multiprocessing.Process(target=client, args=(target, range(first + k * share, first + (k + 1) * share),
                                                             start)) for k in range(clients)]  # fmt: skip
    for worker in workers:
        worker.start()
    agent_cpu, backend_cpu = agent.cpu_seconds(), backend.cpu_seconds()
    start.wait()
    began = time.perf_counter()
    for worker in workers:
        worker.join()
        assert worker.exitcode == 0, "a client failed"
    answered = time.perf_counter() - began
    total = share * clients
    deadline = time.monotonic() + 120
    while stored(api) < before + total:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the backend stored {stored(api) - before} of {total}")
        time.sleep(0.02)
    reached = time.perf_counter() - began
    return Figures(total / answered, total / reached, (agent.cpu_seconds() - agent_cpu) / total * 1e6,
                   (backend.cpu_seconds() - backend_cpu) / total * 1e6)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--skip-socket", action="store_true")
    parser.add_argument("--skip-floor", action="store_true", help="no empty-app run (the HTTP server's floor)")
    parser.add_argument("--profile-agent", metavar="FILE", help="run the agent under cProfile, its figures to FILE")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "config").mkdir()
        backend_command = ["backend", "--config", str(tmp / "config"), "--data", str(tmp / "backend"),
                           "--api-addr", "127.0.0.1:0", "--transport-addr", "127.0.0.1:0"]  # fmt: skip
        with daemon(backend_command, tmp / "backend.log") as backend:
            ready = backend.wait_for(rb'"backend ready" api=(\S+) transport=(\S+)')
            api = address(ready)
            transport = ready.group(2).decode()
            agent_command = ["agent", "--backend-addr", transport, "--name", "bench-agent", "--data", str(tmp / "agent"),
                             "--api-addr", "127.0.0.1:0", "--socket-addr", "127.0.0.1:0", "--statsd-addr", "",
                             "--keepalive-interval", "3600", "--keepalive-warning-timeout", "7200",
                             "--keepalive-critical-timeout", "0"]  # fmt: skip
            with daemon(agent_command, tmp / "agent.log", args.profile_agent) as agent:
                local_api = address(agent.wait_for(rb'"agent API listening" address=(\S+)'))
                client_socket = address(agent.wait_for(rb'"client socket listening" address=(\S+)'))
                agent.wait_for(rb'"connected to backend"')
                figures = {"local API (POST /events, keep-alive)": measure(
                    api_client, local_api, 0, args.results, args.clients, agent, backend, api)}  # fmt: skip
                if not args.skip_socket:
                    figures["client socket (TCP, one result a connection)"] = measure(
                        socket_client, client_socket, args.results, args.results, args.clients, agent, backend, api
                    )
        floor = None if args.skip_floor else server_floor(args.results, args.clients, tmp)
    print(f"{args.results:,} results of {CHECKS} checks, {args.clients} clients; load: {os.getloadavg()[0]:.2f}")
    for name, f in figures.items():
        print(f"{name}: {f.answered:,.0f} results/s answered (goal 5,000), {f.reached:,.0f} results/s stored by "
              f"the backend; agent {f.agent_us:,.0f} µs CPU a result, backend {f.backend_us:,.0f} µs")  # fmt: skip
        record(Row("agent_api", f"{name}, {args.clients} clients", f.answered, "results/s", goal=">= 5,000",
                   met=f.answered >= 5000))  # fmt: skip
        record(Row("agent_api", f"{name}: agent CPU per result", f.agent_us, "µs"))
    if floor is not None:
        print(f"the same POSTs to an empty ASGI app on pipeline.http: {floor[0]:,.0f} requests/s, {floor[1]:,.0f} "
              "µs CPU a request (the HTTP server's share of the local API's figure)")  # fmt: skip
        record(Row("agent_api", "empty ASGI app on pipeline.http, same clients", floor[0], "requests/s"))


if __name__ == "__main__":
    main()
