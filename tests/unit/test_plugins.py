"""The shipped check plugins and the event-file handler, run as real processes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
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


@pytest.mark.parametrize("plugin", ["check_load", "check_disk", "check_memory", "check_file_age"])
def test_bad_arguments_are_unknown_with_usage(plugin: str) -> None:
    result = run(CHECKS / plugin, "-w", "not-a-range", "-c", "1", "-f", "/x")
    assert result.returncode == 3
    assert " UNKNOWN - " in result.stdout
    assert run(CHECKS / plugin, "--bogus").returncode == 3


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
