"""The shipped check plugins and the event-file handler, run as real processes."""

from __future__ import annotations

import contextlib
import http.server
import importlib.util
import json
import math
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
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHECKS = REPO / "checks"
EVENT_FILE_HANDLER = REPO / "handlers" / "event-file"

Arg = str | os.PathLike[str]
PERFDATA_ITEM = r"('[^']+'|[^ =']+)=-?[0-9.]+[a-zA-Z%]*(;[^; ]*){0,4}"
NUMBER = r"-?[0-9]+(\.[0-9]+)?"


def load_nagios_helper() -> ModuleType:
    """checks/_nagios.py as a module, without putting checks/ on sys.path for the whole session."""
    spec = importlib.util.spec_from_file_location("_nagios", CHECKS / "_nagios.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building the class
    spec.loader.exec_module(module)
    return module


nagios = load_nagios_helper()


def run(
    *args: Arg, stdin: bytes | None = None, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [os.fspath(a) for a in args],
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=False,
    )


def assert_nagios_line(output: str, service: str, state: str) -> None:
    line = output.strip()
    assert "\n" not in line
    text, _, perf = line.partition(" | ")
    assert text.startswith(f"{service} {state} - ")
    if perf:
        assert re.fullmatch(rf"{PERFDATA_ITEM}( {PERFDATA_ITEM})*", perf), perf


def perf_item(output: str, label: str) -> list[str]:
    """The value and the warn;crit;min;max fields of one perfdata item, as printed."""
    _, _, perf = output.strip().partition(" | ")
    items = dict(item.split("=", 1) for item in perf.split(" "))
    return items[label].split(";")


@pytest.mark.parametrize(
    ("spec", "alerting", "quiet"),
    [
        ("10", [-1, 10.5, 11], [0, 5, 10]),  # outside 0..10
        ("10:", [9.9, -5], [10, 1e9]),  # below 10
        ("~:10", [10.1, 50], [-1e9, -1, 10]),  # above 10; ~ is minus infinity
        ("10:20", [9, 21], [10, 15, 20]),  # outside 10..20, ends included
        ("@10:20", [10, 15, 20], [9, 21]),  # inside 10..20
        ("@10", [0, 10], [-0.1, 10.1]),  # inside 0..10
        ("-5:-1", [-6, 0], [-5, -3, -1]),
        ("@~:0", [-1e9, 0], [0.1]),
        (" 2.5 ", [2.6], [2.5]),
    ],
)
def test_nagios_range_syntax(spec: str, alerting: list[float], quiet: list[float]) -> None:
    threshold = nagios.Range.parse(spec)
    assert [threshold.alerts(v) for v in alerting] == [True] * len(alerting)
    assert [threshold.alerts(v) for v in quiet] == [False] * len(quiet)


def test_a_range_keeps_its_text_for_perfdata() -> None:
    threshold = nagios.Range.parse(" @10:20 ")
    assert (threshold.start, threshold.end, threshold.inside, threshold.text) == (10, 20, True, "@10:20")
    assert nagios.Range.parse("~:").start == -math.inf
    assert nagios.perfdata("x", 1.5, "s", threshold, None, 0) == "x=1.5s;@10:20;;0"


@pytest.mark.parametrize("spec", ["", "@", "x", "~", "20:10", "1:2:3", "nan", "@1:nan", "10%"])
def test_bad_ranges_are_refused(spec: str) -> None:
    with pytest.raises(nagios.ThresholdError, match=r"threshold|range"):
        nagios.Range.parse(spec)


def test_check_status_takes_the_worst_threshold() -> None:
    warning, critical = nagios.Range.parse("80"), nagios.Range.parse("90")
    statuses = [nagios.status_for(v, warning, critical) for v in (50, 85, 95)]
    assert statuses == [nagios.OK, nagios.WARNING, nagios.CRITICAL]
    assert nagios.status_for(95, None, None) == nagios.OK


def test_check_load_on_this_machine() -> None:
    result = run(CHECKS / "check_load", "-r", "-w", "4,3,2", "-c", "8,6,4")
    assert result.returncode in (0, 1, 2)
    load = rf"{NUMBER};[0-9]+;[0-9]+;0"
    pattern = (
        rf"LOAD [A-Z]+ - load average per CPU: {NUMBER}, {NUMBER}, {NUMBER} \| load1={load} load5={load} load15={load}"
    )
    assert re.fullmatch(pattern, result.stdout.strip()), result.stdout
    assert perf_item(result.stdout, "load5")[1:] == ["3", "6", "0"]


def test_check_load(tmp_path: Path) -> None:
    loadavg = tmp_path / "loadavg"
    loadavg.write_text("0.50 3.50 9.00 1/100 1234\n")
    ok = run(CHECKS / "check_load", "-w", "10", "-c", "20", "--loadavg", loadavg)
    assert ok.returncode == 0
    assert (
        ok.stdout == "LOAD OK - load average: 0.50, 3.50, 9.00 | load1=0.5;10;20;0 load5=3.5;10;20;0 load15=9;10;20;0\n"
    )
    warning = run(CHECKS / "check_load", "-w", "4,3,10", "-c", "8,6,20", "--loadavg", loadavg)
    assert warning.returncode == 1
    assert_nagios_line(warning.stdout, "LOAD", "WARNING")
    critical = run(CHECKS / "check_load", "-w", "1,1,1", "-c", "8,6,4", "--loadavg", loadavg)
    assert critical.returncode == 2
    assert_nagios_line(critical.stdout, "LOAD", "CRITICAL")
    inverted = run(CHECKS / "check_load", "-w", "@0:1", "-c", "100", "--loadavg", loadavg)
    assert inverted.returncode == 1  # load1 0.5 is inside 0..1
    two = run(CHECKS / "check_load", "-w", "4,3", "-c", "8", "--loadavg", loadavg)
    assert two.returncode == 3
    assert "expected 1 or 3 comma-separated ranges, got '4,3'" in two.stdout


def test_check_load_per_cpu(tmp_path: Path) -> None:
    cpus = os.cpu_count() or 1
    loadavg = tmp_path / "loadavg"
    loadavg.write_text(f"{10 * cpus} {10 * cpus} {10 * cpus} 1/100 1234\n")
    per_cpu = run(CHECKS / "check_load", "-r", "-w", "5", "-c", "20", "--loadavg", loadavg)
    assert per_cpu.returncode == 1
    assert "load average per CPU: 10.00, 10.00, 10.00" in per_cpu.stdout
    assert perf_item(per_cpu.stdout, "load1") == ["10", "5", "20", "0"]
    total = run(CHECKS / "check_load", "-w", "5", "-c", f"{10 * cpus - 1}", "--loadavg", loadavg)
    assert total.returncode == 2
    assert perf_item(total.stdout, "load1")[0] == str(10 * cpus)


def test_check_disk_thresholds_follow_real_usage() -> None:
    usage = shutil.disk_usage("/")
    percent = 100 * usage.used / usage.total
    assert percent > 0.01, "the root filesystem holds at least this test suite"
    ok = run(CHECKS / "check_disk", "-w", "100", "-c", "100")
    assert ok.returncode == 0
    assert_nagios_line(ok.stdout, "DISK", "OK")
    value, *fields = perf_item(ok.stdout, "used")
    assert fields == ["100", "100", "0", "100"]
    assert abs(float(value.removesuffix("%")) - percent) < 1
    assert perf_item(ok.stdout, "used_bytes")[1:] == ["", "", "0", str(usage.total)]
    warning = run(CHECKS / "check_disk", "-w", f"{percent / 2:.3f}", "-c", "100")
    assert warning.returncode == 1
    assert_nagios_line(warning.stdout, "DISK", "WARNING")
    assert run(CHECKS / "check_disk", "-w", "0", "-c", f"{percent / 2:.3f}").returncode == 2
    assert run(CHECKS / "check_disk", "-w", "@0:100", "-c", "100").returncode == 1  # "@": inside alerts
    assert run(CHECKS / "check_disk", "-w", "100", "-c", "~:0").returncode == 2  # above 0
    assert run(CHECKS / "check_disk", "-w", "100", "-c", f"{percent / 2:.3f}:").returncode == 0  # below only
    missing = run(CHECKS / "check_disk", "-w", "80", "-c", "90", "-p", "/does/not/exist")
    assert missing.returncode == 3
    assert missing.stdout.startswith("DISK UNKNOWN - cannot read /does/not/exist")


def test_check_memory(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 150 kB\n")
    result = run(CHECKS / "check_memory", "-w", "80", "-c", "90", "--meminfo", meminfo)
    assert result.returncode == 1  # 85% used
    assert_nagios_line(result.stdout, "MEMORY", "WARNING")
    assert "used=85%;80;90;0;100 used_bytes=870400B;;;0;1024000" in result.stdout
    old_kernel = tmp_path / "old"
    old_kernel.write_text("MemTotal: 1000 kB\nMemFree: 100 kB\n")
    assert run(CHECKS / "check_memory", "-w", "80", "-c", "90", "--meminfo", old_kernel).returncode == 3
    real = run(CHECKS / "check_memory", "-w", "100", "-c", "100")
    assert real.returncode == 0
    assert_nagios_line(real.stdout, "MEMORY", "OK")


def test_check_file_age(tmp_path: Path) -> None:
    path = tmp_path / "stamp"
    path.write_text("")
    old = time.time() - 500
    os.utime(path, (old, old))
    ok = run(CHECKS / "check_file_age", "-f", path, "-w", "1000", "-c", "2000")
    assert ok.returncode == 0
    assert re.search(r"\| age=50[0-9]s;1000;2000;0$", ok.stdout.strip()), ok.stdout
    warning = run(CHECKS / "check_file_age", "-f", path, "-w", "100", "-c", "2000")
    assert warning.returncode == 1
    assert_nagios_line(warning.stdout, "FILE_AGE", "WARNING")
    assert run(CHECKS / "check_file_age", "-f", path, "-w", "100", "-c", "200").returncode == 2
    missing = run(CHECKS / "check_file_age", "-f", tmp_path / "nope")
    assert missing.returncode == 2
    assert_nagios_line(missing.stdout, "FILE_AGE", "CRITICAL")
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


@pytest.mark.parametrize("plugin", ["check_load", "check_disk", "check_memory", "check_swap"])
def test_missing_thresholds_are_unknown(plugin: str) -> None:
    result = run(CHECKS / plugin)
    assert result.returncode == 3
    assert "UNKNOWN - the following arguments are required: -w/--warning, -c/--critical" in result.stdout


def test_plugins_are_stand_alone_executables() -> None:
    for path in [*(CHECKS / p for p in PLUGINS), EVENT_FILE_HANDLER]:
        text = path.read_text()
        assert text.startswith("#!/usr/bin/env python3\n"), path
        assert os.access(path, os.X_OK), path
        assert not re.search(r"^\s*(from|import) pipeline\b", text, re.MULTILINE), path
    assert "pipeline" not in (CHECKS / "_nagios.py").read_text().replace("pipeline-plugins", "")


@pytest.mark.parametrize(
    ("plugin", "required"),
    [("check_load", []), ("check_disk", []), ("check_memory", []), ("check_swap", []), ("check_procs", []),
     ("check_tcp", ["-H", "127.0.0.1", "-p", "9"]), ("check_file_age", ["-f", "/etc/hostname"])],
)  # fmt: skip
def test_a_bad_range_is_unknown(plugin: str, required: list[str]) -> None:
    result = run(CHECKS / plugin, "-w", "not-a-range", "-c", "1", *required)
    assert result.returncode == 3
    assert "UNKNOWN - not a Nagios range: 'not-a-range'" in result.stdout
    assert f"usage: {plugin}" in result.stdout


def test_event_file_appends_one_line_per_event(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    events = [
        {"entity": {"metadata": {"name": "web1"}}, "check": {"output": "line1\nline2 ü", "status": 2}},
        {"id": "2"},
    ]
    for event in events:
        assert run(EVENT_FILE_HANDLER, out, stdin=json.dumps(event, indent=2).encode()).returncode == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == events
    assert lines[1] == '{"id":"2"}'  # compact, as read


def test_event_file_writes_the_object_it_read_unchanged(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    raw = '{"z": 1, "a": {"y": [1.5, 12345678901234567890, null, true]}, "s": "\\u00fc \\ud83d\\ude00 \\ud800"}'
    assert run(EVENT_FILE_HANDLER, out, stdin=raw.encode()).returncode == 0
    assert json.loads(out.read_text()) == json.loads(raw)
    assert list(json.loads(out.read_text())) == ["z", "a", "s"]  # key order kept


def test_event_file_defaults_to_the_data_dir(tmp_path: Path) -> None:
    env = {**os.environ, "PIPELINE_DATA_DIR": str(tmp_path)}
    assert run(EVENT_FILE_HANDLER, stdin=b'{"a": 1}', env=env).returncode == 0
    assert (tmp_path / "events.jsonl").read_text() == '{"a":1}\n'


def test_event_file_falls_back_to_the_working_directory(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PIPELINE_DATA_DIR"}
    assert run(EVENT_FILE_HANDLER, stdin=b'{"a": 1}', env=env, cwd=tmp_path).returncode == 0
    assert (tmp_path / "events.jsonl").read_text() == '{"a":1}\n'


def test_concurrent_event_file_runs_never_interleave_lines(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    inputs = []
    for n in range(12):  # lines far above PIPE_BUF, so only one write per line keeps them whole
        path = tmp_path / f"in{n}.json"
        path.write_text(json.dumps({"id": str(n), "check": {"output": str(n) * 300_000}}))
        inputs.append(path.open("rb"))
    try:
        processes = [subprocess.Popen([EVENT_FILE_HANDLER, out], stdin=f) for f in inputs]
        assert [p.wait() for p in processes] == [0] * len(processes)
    finally:
        for f in inputs:
            f.close()
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(int(e["id"]) for e in events) == list(range(12))
    assert all(e["check"]["output"] == e["id"] * 300_000 for e in events)


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        (b"{nope", "stdin is not JSON"),
        (b"", "stdin is not JSON"),
        (b"\xff\xfe{", "stdin is not JSON"),
        (b'{"a": NaN}', "NaN is not a JSON value"),
        (b'{"a": 1e400}', "number '1e400' is not finite"),
        (b"[1]", "expected a JSON object on stdin, got list"),
    ],
)
def test_event_file_rejects_what_is_not_an_event(tmp_path: Path, stdin: bytes, message: str) -> None:
    result = subprocess.run([EVENT_FILE_HANDLER, tmp_path / "out"], input=stdin, capture_output=True, check=False)
    assert result.returncode == 2
    assert message in result.stderr.decode()
    assert not (tmp_path / "out").exists()


def test_event_file_reports_a_file_it_cannot_write(tmp_path: Path) -> None:
    result = run(EVENT_FILE_HANDLER, tmp_path / "missing-dir" / "events.jsonl", stdin=b"{}")
    assert result.returncode == 1
    assert f"event-file: cannot append to {tmp_path / 'missing-dir' / 'events.jsonl'}" in result.stderr


@pytest.mark.parametrize("name", ["checks.yml", "handlers.yml"])
def test_default_config_documents_are_sensu_resources(name: str) -> None:
    documents: list[Any] = list(yaml.safe_load_all((REPO / "pipeline" / "defaults" / "config" / name).read_text()))
    assert documents
    for document in documents:
        assert {"type", "api_version", "metadata", "spec"} <= set(document), document
        assert document["api_version"] == "core/v2"
        assert document["metadata"]["name"]


def test_default_checks_run_the_shipped_plugins() -> None:
    checks = list(yaml.safe_load_all((REPO / "pipeline" / "defaults" / "config" / "checks.yml").read_text()))
    handlers = {
        h["metadata"]["name"]
        for h in yaml.safe_load_all((REPO / "pipeline" / "defaults" / "config" / "handlers.yml").read_text())
    }
    for check in checks:
        spec = check["spec"]
        plugin = spec["command"].split()[0]
        assert (CHECKS / plugin).exists(), plugin
        assert set(spec["handlers"]) <= handlers
        assert spec["subscriptions"] == ["system"]
        result = run(CHECKS / plugin, *spec["command"].split()[1:])
        assert result.returncode in (0, 1, 2), result.stdout  # the shipped arguments are valid here


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
    base: list[Arg] = [CHECKS / "check_cert_expiry", "-H", "127.0.0.1", "-p", str(port)]
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
