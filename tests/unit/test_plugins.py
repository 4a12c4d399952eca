"""The shipped check plugins and the event-file handler, run as real processes."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import EVENT_FILE_HANDLER, REPO

CHECKS = REPO / "checks"
sys.path.insert(0, str(CHECKS))
from _nagios import Range, ThresholdError  # noqa: E402

PERFDATA_ITEM = r"('[^']+'|[^ =']+)=-?[0-9.]+[a-zA-Z%]*(;[^; ]*){0,4}"


def run(*args: str, stdin: bytes | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def assert_nagios_line(output: str, service: str, state: str) -> None:
    line = output.strip()
    assert "\n" not in line
    text, _, perf = line.partition(" | ")
    assert text.startswith(f"{service} {state} - ")
    if perf:
        assert re.fullmatch(rf"{PERFDATA_ITEM}( {PERFDATA_ITEM})*", perf), perf


@pytest.mark.parametrize(
    ("spec", "alerting", "quiet"),
    [
        ("10", [-1, 10.5, 11], [0, 5, 10]),
        ("10:", [9.9, -5], [10, 1e9]),
        ("~:10", [10.1, 50], [-1e9, 10]),
        ("10:20", [9, 21], [10, 15, 20]),
        ("@10:20", [10, 15, 20], [9, 21]),
    ],
)
def test_nagios_range_syntax(spec: str, alerting: list[float], quiet: list[float]) -> None:
    threshold = Range.parse(spec)
    assert [threshold.alerts(v) for v in alerting] == [True] * len(alerting)
    assert [threshold.alerts(v) for v in quiet] == [False] * len(quiet)


@pytest.mark.parametrize("spec", ["", "x", "20:10", "1:2:3"])
def test_bad_ranges_are_refused(spec: str) -> None:
    with pytest.raises(ThresholdError):
        Range.parse(spec)


def test_check_load(tmp_path: Path) -> None:
    loadavg = tmp_path / "loadavg"
    loadavg.write_text("0.50 3.50 9.00 1/100 1234\n")
    ok = run(CHECKS / "check_load", "-w", "10", "-c", "20", "--loadavg", loadavg)
    assert ok.returncode == 0
    assert_nagios_line(ok.stdout, "LOAD", "OK")
    assert "load1=0.5;10;20;0 load5=3.5;10;20;0 load15=9;10;20;0" in ok.stdout
    warning = run(CHECKS / "check_load", "-w", "4,3,10", "-c", "8,6,20", "--loadavg", loadavg)
    assert warning.returncode == 1
    critical = run(CHECKS / "check_load", "-w", "1,1,1", "-c", "8,6,4", "--loadavg", loadavg)
    assert critical.returncode == 2
    assert_nagios_line(critical.stdout, "LOAD", "CRITICAL")


def test_check_disk_thresholds_follow_real_usage() -> None:
    usage = shutil.disk_usage("/")
    percent = 100 * usage.used / usage.total
    assert run(CHECKS / "check_disk", "-w", "100", "-c", "100").returncode == 0
    warning = run(CHECKS / "check_disk", "-w", f"{percent / 2:.3f}", "-c", "100")
    assert warning.returncode == 1
    assert_nagios_line(warning.stdout, "DISK", "WARNING")
    assert run(CHECKS / "check_disk", "-w", "0", "-c", f"{percent / 2:.3f}").returncode == 2
    assert run(CHECKS / "check_disk", "-w", "80", "-c", "90", "-p", "/does/not/exist").returncode == 3


def test_check_memory(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 150 kB\n")
    result = run(CHECKS / "check_memory", "-w", "80", "-c", "90", "--meminfo", meminfo)
    assert result.returncode == 1  # 85% used
    assert_nagios_line(result.stdout, "MEMORY", "WARNING")
    assert "used=85%;80;90;0;100" in result.stdout
    assert run(CHECKS / "check_memory", "-w", "80", "-c", "90").returncode in (0, 1, 2)


def test_check_file_age(tmp_path: Path) -> None:
    path = tmp_path / "stamp"
    path.write_text("")
    old = time.time() - 500
    os.utime(path, (old, old))
    assert run(CHECKS / "check_file_age", "-f", path, "-w", "1000", "-c", "2000").returncode == 0
    warning = run(CHECKS / "check_file_age", "-f", path, "-w", "100", "-c", "2000")
    assert warning.returncode == 1
    assert_nagios_line(warning.stdout, "FILE_AGE", "WARNING")
    assert run(CHECKS / "check_file_age", "-f", path, "-w", "100", "-c", "200").returncode == 2
    missing = run(CHECKS / "check_file_age", "-f", tmp_path / "nope")
    assert missing.returncode == 2
    assert "does not exist" in missing.stdout


PLUGINS = ["check_load", "check_disk", "check_memory", "check_swap", "check_file_age", "check_procs", "check_tcp",
           "check_http", "check_cert_expiry"]  # fmt: skip


@pytest.mark.parametrize("plugin", PLUGINS)
def test_usage_follows_the_monitoring_plugins_guidelines(plugin: str) -> None:
    bogus = run(CHECKS / plugin, "--bogus")
    assert bogus.returncode == 3
    assert re.match(r"[A-Z_]+ UNKNOWN - ", bogus.stdout)
    assert f"usage: {plugin}" in bogus.stdout
    helped = run(CHECKS / plugin, "--help")
    assert helped.returncode == 3
    assert f"usage: {plugin}" in helped.stdout
    assert "-w" in helped.stdout
    version = run(CHECKS / plugin, "--version")
    assert (version.returncode, version.stdout) == (3, f"{plugin} (pipeline-plugins 0.1.0)\n")


@pytest.mark.parametrize(
    ("plugin", "required"),
    [("check_load", []), ("check_disk", []), ("check_memory", []), ("check_swap", []), ("check_procs", []),
     ("check_tcp", ["-H", "127.0.0.1", "-p", "9"]), ("check_file_age", ["-f", "/etc/hostname"])],
)  # fmt: skip
def test_a_bad_range_is_unknown(plugin: str, required: list[str]) -> None:
    result = run(CHECKS / plugin, "-w", "not-a-range", "-c", "1", *required)
    assert result.returncode == 3
    assert "UNKNOWN - not a Nagios range: 'not-a-range'" in result.stdout


def test_event_file_appends_one_line_per_event(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    events = [{"entity": {"metadata": {"name": "web1"}}, "check": {"output": "line1\nline2 ü"}}, {"id": "2"}]
    for event in events:
        assert run(EVENT_FILE_HANDLER, out, stdin=json.dumps(event).encode()).returncode == 0
    assert [json.loads(line) for line in out.read_text().splitlines()] == events


def test_event_file_defaults_to_the_data_dir(tmp_path: Path) -> None:
    env = {**os.environ, "PIPELINE_DATA_DIR": str(tmp_path)}
    assert run(EVENT_FILE_HANDLER, stdin=b'{"a": 1}', env=env).returncode == 0
    assert (tmp_path / "events.jsonl").read_text() == '{"a":1}\n'


@pytest.mark.parametrize(("stdin", "message"), [(b"{nope", "stdin is not JSON"), (b"[1]", "expected a JSON object")])
def test_event_file_rejects_what_is_not_an_event(tmp_path: Path, stdin: bytes, message: str) -> None:
    result = run(EVENT_FILE_HANDLER, tmp_path / "out", stdin=stdin)
    assert result.returncode == 2
    assert message in result.stderr
    assert not (tmp_path / "out").exists()


def test_check_swap(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("SwapTotal: 1000 kB\nSwapFree: 400 kB\n")
    result = run(CHECKS / "check_swap", "-w", "50", "-c", "80", "--meminfo", meminfo)
    assert result.returncode == 1
    assert_nagios_line(result.stdout, "SWAP", "WARNING")
    assert "used=60%;50;80;0;100" in result.stdout
    meminfo.write_text("SwapTotal: 0 kB\nSwapFree: 0 kB\n")
    none = run(CHECKS / "check_swap", "-w", "50", "-c", "80", "--meminfo", meminfo)
    assert (none.returncode, none.stdout.split(" | ")[0]) == (0, "SWAP OK - no swap configured")


def test_check_procs_counts_matching_processes(tmp_path: Path) -> None:
    marker = f"pipeline-test-{os.getpid()}"
    sleepers = [subprocess.Popen(["sh", "-c", f"sleep 30; : {marker}"]) for _ in range(2)]
    try:
        found = run(CHECKS / "check_procs", "-a", marker, "-w", "3:", "-c", "1:")
        assert found.returncode == 1  # 2 processes: below the warning range, inside the critical one
        assert_nagios_line(found.stdout, "PROCS", "WARNING")
        assert "procs=2;3:;1:;0" in found.stdout
        assert run(CHECKS / "check_procs", "-a", marker, "-c", "2:2").returncode == 0
    finally:
        for process in sleepers:
            process.kill()
            process.wait()
    assert run(CHECKS / "check_procs", "-a", marker, "-c", "1:").returncode == 2
    assert run(CHECKS / "check_procs", "-u", "no-such-user-here", "-c", "1:").returncode == 3


@contextlib.contextmanager
def threaded_server(handle: Callable[[socket.socket], None]) -> Iterator[tuple[str, int]]:
    """A loopback TCP server in a thread, calling ``handle`` with each connection."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                handle(conn)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        yield server.getsockname()[:2]
    finally:
        stop.set()
        thread.join()
        server.close()


@pytest.fixture
def tcp_server() -> Iterator[tuple[str, int]]:
    """A loopback server that answers every connection with '+PONG'."""

    def answer(conn: socket.socket) -> None:
        conn.sendall(b"+PONG\r\n")

    with threaded_server(answer) as address:
        yield address


def test_check_tcp(tcp_server: tuple[str, int]) -> None:
    host, port = tcp_server
    ok = run(CHECKS / "check_tcp", "-H", host, "-p", str(port), "-w", "5", "-c", "10", "-e", "PONG")
    assert ok.returncode == 0
    assert_nagios_line(ok.stdout, "TCP", "OK")
    assert run(CHECKS / "check_tcp", "-H", host, "-p", str(port), "-e", "HELLO").returncode == 2
    closed = socket.create_server(("127.0.0.1", 0))
    port_closed = closed.getsockname()[1]
    closed.close()
    refused = run(CHECKS / "check_tcp", "-H", "127.0.0.1", "-p", str(port_closed))
    assert refused.returncode == 2
    assert "Connection refused" in refused.stdout


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        codes = {"/ok": 200, "/missing": 404, "/broken": 500, "/moved": 301}
        code = codes.get(self.path, 404)
        body = b"all systems go" if code == 200 else b"no"
        self.send_response(code)
        if code == 301:
            self.send_header("Location", "/ok")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()
    server.server_close()


@pytest.mark.parametrize(
    ("path", "extra", "status", "state"),
    [
        ("/ok", [], 0, "OK"),
        ("/ok", ["-s", "systems go"], 0, "OK"),
        ("/ok", ["-s", "panic"], 2, "CRITICAL"),
        ("/moved", [], 0, "OK"),
        ("/moved", ["-e", "200"], 2, "CRITICAL"),
        ("/missing", [], 1, "WARNING"),
        ("/missing", ["-e", "404"], 0, "OK"),
        ("/broken", [], 2, "CRITICAL"),
    ],
)
def test_check_http(http_server: str, path: str, extra: list[str], status: int, state: str) -> None:
    result = run(CHECKS / "check_http", "-U", http_server + path, "-w", "5", "-c", "10", *extra)
    assert result.returncode == status, result.stdout
    assert_nagios_line(result.stdout, "HTTP", state)
    assert "time=" in result.stdout


def test_check_http_from_host_port_and_uri(http_server: str) -> None:
    port = http_server.rsplit(":", 1)[1]
    assert run(CHECKS / "check_http", "-H", "127.0.0.1", "-p", port, "-u", "/ok").returncode == 0


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A loopback TLS server with a fresh self-signed certificate valid for 20 days."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "20", "-subj", "/CN=localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def handshake(conn: socket.socket) -> None:
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)
        except (ssl.SSLError, OSError):
            pass  # the client read the certificate and left, or refused it

    with threaded_server(handshake) as (_, port):
        yield port, cert


def test_check_cert_expiry(tls_server: tuple[int, Path]) -> None:
    port, _ = tls_server
    base = [CHECKS / "check_cert_expiry", "-H", "127.0.0.1", "-p", str(port)]
    unverified = run(*base)
    assert unverified.returncode == 2
    assert "does not verify" in unverified.stdout
    warning = run(*base, "-k", "-w", "30", "-c", "7")
    assert warning.returncode == 1, warning.stdout
    assert_nagios_line(warning.stdout, "CERT", "WARNING")
    days = float(re.search(r"days=([0-9.]+);", warning.stdout).group(1))  # type: ignore[union-attr]
    assert 19 < days <= 20
    assert run(*base, "-k", "-w", "10", "-c", "7").returncode == 0
    assert run(*base, "-k", "-w", "60", "-c", "30").returncode == 2


GRAPHITE_HANDLER = REPO / "handlers" / "graphite"


@pytest.fixture
def carbon() -> Iterator[tuple[int, list[bytes]]]:
    """A loopback Carbon plaintext receiver that keeps what it is sent."""
    received: list[bytes] = []

    def keep(conn: socket.socket) -> None:
        chunks = []
        while data := conn.recv(65536):
            chunks.append(data)
        received.append(b"".join(chunks))

    with threaded_server(keep) as (_, port):
        yield port, received


def test_graphite_handler_writes_tagged_series_as_etsy_does(carbon: tuple[int, list[bytes]]) -> None:
    port, received = carbon
    event = {"metrics": {"handlers": ["graphite"], "points": [
        {"name": "stats.counters.foo.count", "value": 10.0, "timestamp": 1700000000,
         "tags": [{"name": "env", "value": "prod"}, {"name": "svc", "value": ""}]},
        {"name": "stats.timers.t.std", "value": 2.8722813232690143, "timestamp": 1700000000, "tags": []},
        {"name": "tiny", "value": 1e-7, "timestamp": 1700000000, "tags": []},
    ]}}  # fmt: skip
    result = run(GRAPHITE_HANDLER, "--port", str(port), "--prefix", "web", stdin=json.dumps(event).encode())
    assert result.returncode == 0, result.stderr
    assert received == [
        b"web.stats.counters.foo.count;env=prod;svc 10 1700000000\n"
        b"web.stats.timers.t.std 2.8722813232690143 1700000000\n"
        b"web.tiny 1e-7 1700000000\n"
    ]


def test_graphite_handler_retries_then_reports_what_it_could_not_write() -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    event = {"metrics": {"points": [{"name": "a", "value": 1, "timestamp": 1, "tags": []}]}}
    result = run(GRAPHITE_HANDLER, "--port", str(port), "--retries", "1", stdin=json.dumps(event).encode())
    assert result.returncode == 1
    assert "could not write 1 points" in result.stderr
    assert "Connection refused" in result.stderr
