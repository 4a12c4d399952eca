"""The code passes the project's own strict tooling: ruff (lint and format) and mypy --strict."""

from __future__ import annotations

import shutil
import subprocess
import sys

from tests.support import REPO

#: Python code outside the package: the plugin scripts have no .py suffix, so they are named.
SCRIPTS = sorted(str(p.relative_to(REPO)) for folder in ("checks", "handlers") for p in (REPO / folder).iterdir()
                 if p.is_file() and p.read_bytes().startswith((b"#!/usr/bin/env python3", b'"""')))  # fmt: skip


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)


def test_ruff_lint_is_clean() -> None:
    assert shutil.which("ruff"), "ruff is a test dependency"
    result = run("ruff", "check", "pipeline", "tests", "bench", *SCRIPTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = run("ruff", "format", "--check", "pipeline", "tests", "bench", *SCRIPTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    result = run(sys.executable, "-m", "mypy")
    assert result.returncode == 0, result.stdout + result.stderr
