"""Icinga 2 taking passive check results over its REST API: the peer of the events API bench.

Icinga 2 (Debian's ``icinga2``) runs as its own process tree from a configuration written
into a temporary directory: its API on 127.0.0.1 over TLS (a CA and certificate made with
openssl for the run), an API user, and the hosts and passive services of
``bench.api_events``' workload (20 hosts of 10 services, ``enable_active_checks = false``). Each client is its own process with one keep-alive TLS connection, sending one
``POST /v1/actions/process-check-result`` and reading its answer before the next, as the
pipeline side's clients do with its events API. The results cycle through the services, each
service's status changing from one result to the next (0, 1, 2, ...), so every result is a
state change for Icinga to process.

What 200 means there: the result was processed in memory. Icinga writes its state file every
five minutes (the ``retention`` it keeps across a crash is that file), so a result answered
200 is lost if the process dies before the next write: a weaker promise than pipeline's 201.

Reported per run: results per second (all clients) and CPU time of the whole Icinga 2 process
tree per result (user + system, from /proc), so the ratio to pipeline is measured in the same
run, on the same machine, not remembered.

Usage: python -m bench.icinga [--results N] [--clients K ...]
Needs: ``apt-get install icinga2-bin icinga2-common`` (skipped, with a line saying so, if absent).
"""

from __future__ import annotations

import argparse
import base64
import grp
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from bench.api_events import Figures, KeepAliveClient
from bench.process_cpu import tree_cpu

ICINGA = "icinga2"
HOST = "bench"  # the node's name (its certificate's CN)
USER, PASSWORD = "bench", "bench"
#: Icinga's console log level: "warning" (no line per request; its packaged main log writes one at
#: "information", which costs it CPU): the stronger peer.
LOG_LEVEL = "warning"
HEADERS = (f"Authorization: Basic {base64.b64encode(f'{USER}:{PASSWORD}'.encode()).decode()}\r\n"
           "Accept: application/json\r\nContent-Type: application/json\r\n")  # fmt: skip


def installed() -> bool:
    return shutil.which(ICINGA) is not None and shutil.which("openssl") is not None


#: A request: (target, body), POSTed with :data:`HEADERS`.
Request = tuple[str, bytes]
#: (address, tls, requests, expected status) -> sends each, raises on an unexpected status
Job = tuple[tuple[str, int], bool, list[Request], int]


def _client(job: Job, ready: Any) -> None:
    """One client process: connected (and through the TLS handshake) before the clock starts,
    as the pipeline side's clients are, then one request at a time."""
    address, tls, requests, expected = job
    client = KeepAliveClient(address, tls=tls)
    ready.wait()
    try:
        for target, body in requests:
            status, _ = client.request("POST", target, body, HEADERS)
            if status != expected:
                raise RuntimeError(f"answered {status}, expected {expected}")
    finally:
        client.close()


def run_clients(
    address: tuple[str, int],
    requests: Sequence[Request],
    clients: int,
    *,
    tls: bool,
    expected: int,
    cpu_of: Callable[[], float],
) -> tuple[float, float]:
    """Send ``requests`` spread over ``clients`` processes, each one at a time on one keep-alive
    connection, timed from when all are connected. Returns (requests per second, server CPU
    seconds per request)."""
    context = get_context("fork")
    ready = context.Barrier(clients + 1)
    workers = [context.Process(target=_client, args=((address, tls, list(requests[k::clients]), expected), ready))
               for k in range(clients)]  # fmt: skip
    for worker in workers:
        worker.start()
    ready.wait()
    cpu = cpu_of()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    cpu = cpu_of() - cpu
    if any(worker.exitcode for worker in workers):
        raise RuntimeError("an Icinga 2 client failed (see above)")
    return len(requests) / elapsed, cpu / len(requests)


# -- Icinga 2 ---------------------------------------------------------------------------------


def _config(port: int, services: dict[str, list[str]]) -> str:
    lines = [
        "include <itl>",
        f'object ApiListener "api" {{\n  bind_host = "127.0.0.1"\n  bind_port = {port}\n}}',
        f'object ApiUser "{USER}" {{\n  password = "{PASSWORD}"\n  permissions = [ "*" ]\n}}',
        "object Endpoint NodeName { }",
        "object Zone ZoneName { endpoints = [ NodeName ] }",
    ]
    for host, checks in services.items():
        lines.append(f'object Host "{host}" {{\n  check_command = "dummy"\n  enable_active_checks = false\n}}')
        lines += [f'object Service "{check}" {{\n  host_name = "{host}"\n  check_command = "dummy"\n'
                  f"  enable_active_checks = false\n}}" for check in checks]  # fmt: skip
    return "\n".join(lines) + "\n"


def _certificates(tmp: Path) -> None:
    certs = tmp / "data" / "certs"
    certs.mkdir(parents=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tmp)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", str(certs / "ca.crt"),
            "-days", "2", "-subj", "/CN=bench-ca")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(certs / f"{HOST}.key"), "-out", "node.csr",
            "-subj", f"/CN={HOST}")  # fmt: skip
    openssl("x509", "-req", "-in", "node.csr", "-CA", str(certs / "ca.crt"), "-CAkey", "ca.key",
            "-CAcreateserial", "-out", str(certs / f"{HOST}.crt"), "-days", "2")  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def icinga(services: dict[str, list[str]]) -> Iterator[tuple[tuple[str, int], int]]:
    """Icinga 2 running with these passive services ({host: [service, ...]}): yields (API
    address, daemon pid)."""
    with tempfile.TemporaryDirectory(prefix="bench-icinga-") as name:
        tmp = Path(name)
        _certificates(tmp)
        for sub in ("log", "cache", "spool", "run/icinga2"):
            (tmp / sub).mkdir(parents=True)
        port = _free_port()
        (tmp / "icinga2.conf").write_text(_config(port, services))
        defines = {"NodeName": HOST, "ZoneName": HOST, "DataDir": tmp / "data", "LogDir": tmp / "log",
                   "CacheDir": tmp / "cache", "SpoolDir": tmp / "spool", "InitRunDir": tmp / "run",
                   "PidPath": tmp / "run/icinga2.pid", "VarsPath": tmp / "cache/icinga2.vars",
                   "ObjectsPath": tmp / "cache/icinga2.debug", "StatePath": tmp / "data/icinga2.state",
                   "RunAsUser": _user(), "RunAsGroup": _group()}  # fmt: skip
        command = [ICINGA, "daemon", "-c", str(tmp / "icinga2.conf"), "-x", LOG_LEVEL]
        command += [f"-D{k}={v}" for k, v in defines.items()]
        with (tmp / "log" / "console.log").open("wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_ready(("127.0.0.1", port), process, tmp)
            yield ("127.0.0.1", port), process.pid
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


def _group() -> str:
    return grp.getgrgid(os.getgid()).gr_name


def _wait_ready(address: tuple[str, int], process: subprocess.Popen[bytes], tmp: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"icinga2 exited {process.returncode}: {(tmp / 'log/console.log').read_text()[-2000:]}")
        try:
            client = KeepAliveClient(address, tls=True)
        except OSError:
            time.sleep(0.1)  # polling a daemon's start in a benchmark, not a test
            continue
        try:
            if client.request("GET", "/v1/status/IcingaApplication", b"", HEADERS)[0] == 200:
                return
        except (OSError, ConnectionError):
            pass
        finally:
            client.close()
        time.sleep(0.1)
    raise RuntimeError("icinga2 did not answer within 60 s")


def check_result(result: Any) -> Request:
    """The request that gives Icinga 2 one result of the workload (``bench.api_events.Result``)."""
    body = {"type": "Service", "service": f"{result.host}!{result.check}", "exit_status": result.status,
            "plugin_output": result.output}  # fmt: skip
    return "/v1/actions/process-check-result", json.dumps(body).encode()


def measure(results: Callable[[int], Iterable[Any]], count: int, clients: int) -> Any:
    """Icinga 2's figures (``bench.api_events.Figures``) for ``results(count)`` from ``clients``
    keep-alive clients, on a daemon of its own; None when Icinga 2 is not installed."""
    if not installed():
        return None
    workload = list(results(count))
    services: dict[str, list[str]] = {}
    for result in workload:
        if result.check not in services.setdefault(result.host, []):
            services[result.host].append(result.check)
    with icinga(services) as (address, pid):
        requests = [check_result(result) for result in workload]
        rate, cpu = run_clients(address, requests, clients, tls=True, expected=200, cpu_of=lambda: tree_cpu(pid))
    return Figures(rate, cpu * 1e6)


def main() -> None:
    from bench.api_events import results

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=int, default=10_000)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    if not installed():
        print("icinga2 is not installed (bench/setup, or apt-get install icinga2-bin icinga2-common): skipped")
        return
    for count in args.clients:
        figures = measure(results, args.results, count)
        print(f"Icinga 2 process-check-result, {count} keep-alive TLS client(s): {figures} "
              f"({args.results:,} results of bench.api_events' workload)")  # fmt: skip


if __name__ == "__main__":
    main()
