"""The suite's own settings report a failing property test as a failure, not an internal error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support import REPO

FAILING_PROPERTY = """
from hypothesis import given, settings, strategies as st

@settings(max_examples=5, database=None, deadline=None)
@given(st.integers())
def test_fails(x):
    assert x < 0
"""


def test_a_failing_hypothesis_example_is_reported_under_filterwarnings_error(tmp_path: Path) -> None:
    # Reporting a falsifying example imports libcst, which warns that mypy_extensions.TypedDict is
    # deprecated; filterwarnings = error used to turn that into an INTERNALERROR hiding the failure.
    (tmp_path / "test_property.py").write_text(FAILING_PROPERTY)
    command = [sys.executable, "-m", "pytest", "-c", str(REPO / "pyproject.toml"), "--rootdir", str(tmp_path),
               "-p", "no:cacheprovider", "-q", "test_property.py"]  # fmt: skip
    # run as the README's command runs it, not as a worker of this run (pytest-xdist's variables)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_XDIST", "PYTEST_CURRENT_TEST"))}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False)
    output = result.stdout + result.stderr
    assert "INTERNALERROR" not in output, output
    assert "FAILED test_property.py::test_fails - assert 0 < 0" in output, output  # its example, as hypothesis words it
    assert result.returncode == 1, output
