"""The code passes the project's own strict tooling: ruff (lint and format) and mypy --strict."""

from __future__ import annotations

import shutil
import subprocess
import sys

from tests.support import REPO


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)


def test_ruff_lint_is_clean() -> None:
    assert shutil.which("ruff"), "ruff is a test dependency"
    result = run("ruff", "check", "pipeline", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = run("ruff", "format", "--check", "pipeline", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    result = run(sys.executable, "-m", "mypy")
    assert result.returncode == 0, result.stdout + result.stderr
