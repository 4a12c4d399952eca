"""Resource files that would have crashed the loader: deep nesting, lists as keys, integers too long
to parse or out of range. Each is a ConfigError naming the file (and line), never a traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pipeline.config import validate_directory
from tests.support import pipeline_command, write_config

CHECK = """
type: CheckConfig
api_version: core/v2
metadata: {{name: big}}
spec: {{command: x, subscriptions: [w], interval: {interval}}}
"""


def errors_of(tmp_path: Path, text: str) -> list[str]:
    write_config(tmp_path, text)
    return [str(e) for e in validate_directory(tmp_path)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("? [a]\n: 1\n", "resources.yml: line 1: invalid YAML: while constructing a mapping, found a list or mapping"),
        ("{[1]: 2}\n", "resources.yml: line 1: invalid YAML: while constructing a mapping, found a list or mapping"),
        ("a:\n  ? {b: 1}\n  : 2\n", "resources.yml: line 2: invalid YAML: while constructing a mapping, found a list"),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", "resources.yml: line 1: invalid YAML: nested deeper than 100 levels"),
        ("a:\n" + "".join("  " * i + "- \n" for i in range(1, 200)), "invalid YAML: nested deeper than 100 levels"),
        (
            CHECK.format(interval=10**30),
            "resources.yml: document 1: CheckConfig 'big': spec.interval: "
            "1000000000000000000000000000000 is out of range (0..4294967295)",
        ),
        (CHECK.format(interval="1" * 5000), "resources.yml: document 1: invalid YAML: Exceeds the limit"),
        (CHECK.format(interval=".nan"), "spec.interval: expected integer, got number nan"),
    ],
)
def test_hostile_yaml_is_a_config_error_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    (error,) = errors_of(tmp_path, text)
    assert message in error
    assert error.startswith(str(tmp_path / "resources.yml"))


def test_nesting_within_the_limit_loads(tmp_path: Path) -> None:
    subdue = "[" * 60 + "]" * 60
    document = CHECK.format(interval=10).replace("interval: 10}", f"interval: 10, subdue: {subdue}}}")
    assert errors_of(tmp_path, document) == []


def test_validate_prints_one_line_per_error_and_fails(tmp_path: Path) -> None:
    write_config(tmp_path, CHECK.format(interval=10**30), "a.yml")
    write_config(tmp_path, "? [a]\n: 1\n", "b.yml")
    write_config(tmp_path, "a: " + "{b: " * 3000 + "}" * 3000 + "\n", "c.yml")
    done = subprocess.run(pipeline_command("validate", str(tmp_path)), capture_output=True, text=True, timeout=60)
    lines = done.stderr.splitlines()
    assert done.returncode == 1
    assert done.stdout == ""
    assert [line.split(":")[0] for line in lines[:3]] == [str(tmp_path / n) for n in ("a.yml", "b.yml", "c.yml")]
    assert "spec.interval: 1000000000000000000000000000000 is out of range (0..4294967295)" in lines[0]
    assert lines[3] == f"3 error(s) in {tmp_path}"
    assert "Traceback" not in done.stderr
