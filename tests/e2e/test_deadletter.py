"""Dead letters from outside: a handler that keeps failing, a backend restart, then a replay."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
import trio

from tests.support import pipeline_command, write_config

pytestmark = pytest.mark.e2e


class BackendProcess:
    """``pipeline backend`` as a child process, its log read line by line as it comes."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._buffer = b""

    @classmethod
    async def start(cls, config: Path, data: Path) -> BackendProcess:
        command = pipeline_command("backend", "--config", str(config), "--data", str(data),
                                   "--api-addr", "127.0.0.1:0", "--transport-addr", "127.0.0.1:0")  # fmt: skip
        return cls(await trio.lowlevel.open_process(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL))

    async def wait_for(self, pattern: str) -> re.Match[str]:
        assert self.process.stderr is not None
        while True:
            for line in self.lines:
                if match := re.search(pattern, line):
                    self.lines.clear()
                    return match
            self.lines.clear()
            chunk = await self.process.stderr.receive_some(65536)
            assert chunk, "the backend exited"
            *complete, self._buffer = (self._buffer + chunk).split(b"\n")
            self.lines.extend(line.decode() for line in complete)

    async def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        assert await self.process.wait() == 0


async def operator(*args: str) -> tuple[int, str]:
    result = await trio.run_process(pipeline_command(*args), capture_stdout=True, capture_stderr=True, check=False)
    return result.returncode, result.stdout.decode() + result.stderr.decode()


async def test_a_handler_that_keeps_failing_leaves_a_dead_letter_that_survives_a_restart_and_replays(
    tmp_path: Path,
) -> None:
    up = tmp_path / "pager-is-up"
    delivered = tmp_path / "delivered.jsonl"
    config = write_config(tmp_path / "config", f"""
        type: Handler
        api_version: core/v2
        metadata: {{name: pager}}
        spec:
          type: pipe
          command: test -f {up} && cat >> {delivered}
          max_attempts: 2
        """)  # fmt: skip
    event = {"entity": {"metadata": {"name": "db1"}},
             "check": {"metadata": {"name": "backup"}, "status": 2, "output": "backup failed", "handlers": ["pager"]}}  # fmt: skip
    with trio.fail_after(60):
        backend = await BackendProcess.start(config, tmp_path / "data")
        api = (await backend.wait_for(r'"backend ready" api=(\S+)')).group(1)
        key = (tmp_path / "data" / "admin.key").read_text().strip()  # made by a backend without keys
        async with httpx.AsyncClient(base_url=api, headers={"Authorization": f"Key {key}"}) as client:
            assert (await client.post("/api/core/v2/namespaces/default/events", json=event)).status_code == 201
        await backend.wait_for(r'"handler failed" handler=pager .* attempt=1')
        kept = await backend.wait_for(r'"dead letter kept" letter=(\S+) handler=pager')
        letter_id = kept.group(1)
        await backend.stop()

        backend = await BackendProcess.start(config, tmp_path / "data")  # the dead letter is on disk
        api = (await backend.wait_for(r'"backend ready" api=(\S+)')).group(1)
        code, listing = await operator("deadletter", "list", "--api-url", api, "--data", str(tmp_path / "data"))
        assert code == 0
        assert re.search(rf"{letter_id}\s+\S+ \S+ \S+\s+pager\s+db1/backup\s+2\s+exited 1", listing), listing
        code, output = await operator(
            "deadletter", "replay", letter_id, "--api-url", api, "--data", str(tmp_path / "data")
        )
        assert (code, output.strip()) == (1, f"[1/1] {letter_id}: failed again: exited 1:")  # still down
        up.touch()  # the pager is back
        code, output = await operator(
            "deadletter", "replay", "--all", "--api-url", api, "--data", str(tmp_path / "data")
        )
        assert code == 0
        assert output.splitlines() == [f"[1/1] {letter_id}: delivered", "replayed 1 of 1 dead letters"]
        code, listing = await operator("deadletter", "list", "--api-url", api, "--data", str(tmp_path / "data"))
        assert listing.strip() == "no dead letters"
        await backend.stop()
    (line,) = delivered.read_text().splitlines()
    assert json.loads(line)["check"]["output"] == "backup failed"
