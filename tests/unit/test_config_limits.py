"""Resource files that would have crashed the loader: deep nesting, lists as keys, integers too long
to parse or out of range. Each is a ConfigError naming the file (and line), never a traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from pipeline.config import validate_directory
from pipeline.config.loader import StrictLoader
from tests.support import pipeline_command, write_config

CHECK = """
type: CheckConfig
api_version: core/v2
metadata: {{name: big}}
spec: {{command: x, subscriptions: [w], interval: {interval}}}
"""


def laughs(levels: int = 9) -> str:
    """ "Billion laughs": each anchor a list of nine aliases of the one before (9**levels values)."""
    parts = ["&a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    parts += [f"&a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return f"[{', '.join(parts)}]"


def alias_chain(length: int) -> str:
    """Each anchor a list holding the one before: shallow as written, ``length`` deep expanded."""
    return "[&a0 [x], " + ", ".join(f"&a{i} [*a{i - 1}]" for i in range(1, length)) + "]"


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
            "resources.yml: line 5: document 1: CheckConfig 'big': spec.interval: "
            "1000000000000000000000000000000 is out of range (0..4294967295)",
        ),
        (CHECK.format(interval="1" * 5000), "resources.yml: document 1: invalid YAML: Exceeds the limit"),
        (CHECK.format(interval=".nan"), "spec.interval: expected integer, got number nan"),
        pytest.param(
            CHECK.format(interval=10).replace("[w]", laughs()),
            "resources.yml: line 5: invalid YAML: more than 100000 values with its aliases expanded",
            id="billion-laughs",
        ),
        pytest.param(  # subdue is JSON carried as it is: validating 9**7 values took 27 s, 9**9 half an hour
            CHECK.format(interval=10).replace("interval: 10}", f"interval: 10, subdue: {{x: {laughs(7)}}}}}"),
            "resources.yml: line 5: invalid YAML: more than 100000 values with its aliases expanded",
            id="laughs-in-subdue",
        ),
        pytest.param(
            CHECK.format(interval=10).replace("[w]", alias_chain(5000)),
            "resources.yml: line 5: invalid YAML: nested deeper than 100 levels with its aliases expanded",
            id="deep-alias-chain",
        ),
        pytest.param(
            "a: &a [x, *a]\n", "resources.yml: line 1: invalid YAML: an alias inside the value it names", id="recursive"
        ),
    ],
)
def test_hostile_yaml_is_a_config_error_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    (error,) = errors_of(tmp_path, text)
    assert message in error
    assert error.startswith(str(tmp_path / "resources.yml"))


def test_nesting_within_the_limit_loads(tmp_path: Path) -> None:
    # A plugin handler's options are JSON carried as it is (a check's subdue, which this used,
    # is now refused when set: pipeline does not act on it yet).
    nested = "[" * 60 + "]" * 60
    document = f"""
type: Handler
api_version: core/v2
metadata: {{name: deep}}
spec: {{type: plugin, plugin: "pipeline.plugins:nothing", options: {{x: {nested}}}}}
"""
    assert errors_of(tmp_path, document) == []


def test_ordinary_anchors_and_merge_keys_load(tmp_path: Path) -> None:
    document = """
type: CheckConfig
api_version: core/v2
metadata: {name: one, labels: &labels {team: ops}, annotations: *labels}
spec:
  <<: &base {command: x, interval: 10}
  subscriptions: [a, b]
  interval: 20
"""
    assert errors_of(tmp_path, document) == []


def test_a_large_expansion_under_the_limit_loads() -> None:
    text = "a: " + laughs(5) + "\n"  # nine anchors, the last 9**5 strings: about 74,000 values expanded
    assert yaml.load(text, Loader=StrictLoader)["a"][4][0][0][0][0] == ["lol"] * 9


@pytest.mark.parametrize("command", [("validate",), ("agent", "--config-file"), ("create", "-f")])
def test_billion_laughs_is_refused_fast_naming_file_and_line(tmp_path: Path, command: tuple[str, ...]) -> None:
    if command[0] == "validate":
        path = write_config(tmp_path, CHECK.format(interval=10).replace("[w]", laughs())) / "resources.yml"
        argv = pipeline_command("validate", str(tmp_path))
    elif command[0] == "agent":
        path = tmp_path / "agent.yml"
        path.write_text(f"name: web1\nsubscriptions: {laughs()}\n")
        argv = pipeline_command("agent", "--config-file", str(path))
    else:  # refused before any request: the API address is never reached
        path = write_config(tmp_path, CHECK.format(interval=10).replace("[w]", laughs())) / "resources.yml"
        argv = pipeline_command("create", "-f", str(path), "--api-url", "http://127.0.0.1:9", "--api-key", "k")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1, done.stderr
    assert f"{path}: line " in done.stderr
    assert "more than 100000 values with its aliases expanded" in done.stderr
    assert "Traceback" not in done.stderr


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
