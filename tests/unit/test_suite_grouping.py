"""The suite's own guarantee: ``--dist loadgroup`` (the README's test command) runs the tests of
one ``xdist_group`` in one worker, one after another. The Docker tests rely on it (one restarts
dockerd); a pytest and pytest-xdist pair that drops it (pytest 9.2.0 with xdist 3.8.0) made them
fail on a fresh machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow]

GROUPED = """
import os
import pytest

pytestmark = [pytest.mark.xdist_group("together")]


@pytest.mark.parametrize("n", range(6))
def test_one_of_a_group(n):
    print("worker", os.environ["PYTEST_XDIST_WORKER"])
"""


def test_loadgroup_runs_a_group_in_one_worker(tmp_path: Path) -> None:
    (tmp_path / "test_grouped.py").write_text(GROUPED)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v", "-p", "no:cacheprovider",
         "-o", "addopts=", "--rootdir", str(tmp_path), str(tmp_path / "test_grouped.py")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    passed = [line for line in result.stdout.splitlines() if "PASSED" in line]
    assert len(passed) == 6, result.stdout
    workers = {line.split("]")[0].lstrip("[") for line in passed}
    assert len(workers) == 1, f"a group ran on {sorted(workers)}:\n{result.stdout}"
    assert all("@together" in line for line in passed), result.stdout
