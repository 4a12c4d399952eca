"""pipeline installed from its wheel, as a user without the source tree installs it: the shipped
checks, hooks and handlers come with it and run, from a virtual environment that is not even
activated (only its ``bin/pipeline`` is called)."""

from __future__ import annotations

import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import trio

from tests.support import Daemon

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def install_wheel(tmp_path: Path) -> Path:
    """Build pipeline's wheel from the checkout and install it into a new virtual environment
    (which sees this machine's packages for the dependencies); the environment's directory."""
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), str(REPO)],
                   check=True, cwd=tmp_path, capture_output=True)  # fmt: skip
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    wheel = next(wheels.glob("pipeline-*.whl"))
    subprocess.run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)],
                   check=True, capture_output=True)  # fmt: skip
    return venv


async def test_a_wheel_install_runs_the_shipped_checks_hooks_and_handlers(tmp_path: Path) -> None:
    venv = await trio.to_thread.run_sync(install_wheel, tmp_path)
    python = venv / "bin" / "python"
    where = (await trio.run_process([python, "-c", "import pipeline; print(pipeline.__file__)"],
                                    capture_stdout=True, cwd=tmp_path)).stdout.decode()  # fmt: skip
    assert where.startswith(str(venv)), where  # the installed copy, not the checkout
    assert os.access(venv / "share" / "pipeline" / "checks" / "check_load", os.X_OK)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PIPELINE_STATE_DIR": str(tmp_path / "state")}
    env["PATH"] = os.pathsep.join(d for d in env["PATH"].split(os.pathsep) if not d.startswith(str(venv)))
    flags = ["--data", str(tmp_path / "data"), "--api-addr", "127.0.0.1:0", "--transport-addr", "127.0.0.1:0",
             "--agent-api-addr", "", "--agent-socket-addr", "", "--statsd-addr", "", "--log-level", "debug"]  # fmt: skip
    daemon = Daemon("up")
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(daemon.run, ["up", *flags], env, "pipeline is up", cwd=elsewhere,
                                        program=[str(venv / "bin" / "pipeline")]))  # fmt: skip
            for check in ("load", "disk", "memory"):
                await daemon.wait_for(f'"check executed" check={check}')
            await daemon.wait_for('"handler ran" handler=event-file')
            nursery.cancel_scope.cancel()
    executed = [line for line in daemon.text.splitlines() if '"check executed"' in line]
    assert executed
    assert not any(" status=3" in line or "not found" in line for line in executed), executed
    problems = [line for line in daemon.text.splitlines()
                if any(word in line for word in (" warning ", " error ", "problem", "not found"))]  # fmt: skip
    assert problems == []
