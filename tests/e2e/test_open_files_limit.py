"""A daemon started under a low soft open-files limit (a shell's usual 1,024 under a far higher
hard limit) raises it to the hard one, as Go does for Sensu Go's: each connected agent, the
store, the journal and every handler's pipes hold descriptors, and with the soft limit the
thousandth agent could not connect."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.e2e.test_kill import Daemon, daemons

pytestmark = pytest.mark.e2e


def open_files_limits(pid: int) -> tuple[int, int]:
    line = next(line for line in Path(f"/proc/{pid}/limits").read_text().splitlines() if "open files" in line)
    soft, hard = re.findall(r"\d+", line)
    return int(soft), int(hard)


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="util-linux's prlimit is not installed")
def test_an_agent_raises_its_soft_open_files_limit_to_the_hard_one(tmp_path: Path) -> None:
    with daemons() as started:
        agent = Daemon(tmp_path / "agent.log", "agent", "--data", str(tmp_path / "agent"), "--api-addr", "127.0.0.1:0",
                       "--socket-addr", "", "--statsd-addr", "", wrapper=["prlimit", "--nofile=256:4096", "--"])  # fmt: skip
        started.append(agent)
        agent.wait_for_log("open files limit raised")
        assert open_files_limits(agent.process.pid) == (4096, 4096)
        assert "soft=256 to=4096" in "".join(agent.lines)
