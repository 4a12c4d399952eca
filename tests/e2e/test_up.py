"""`pipeline up` as a user runs it: a real process tree, a real check, a real pipe handler.

The check's exit status comes from a file the test changes; the handler (handlers/event-file)
appends what it receives on stdin into a named pipe the test reads.
"""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from pipeline.store import SQLiteStore
from tests.support import EVENT_FILE_HANDLER, EventPipe, pipeline_command, write_config

pytestmark = pytest.mark.e2e


def config_yaml(status_file: Path, fifo: Path) -> str:
    return f"""
        type: CheckConfig
        api_version: core/v2
        metadata:
          name: status-from-file
        spec:
          command: sh -c 'exit $(cat {status_file})'
          interval: 1
          timeout: 5
          subscriptions: [test]
          handlers: [capture]
        ---
        type: Handler
        api_version: core/v2
        metadata:
          name: capture
        spec:
          type: pipe
          command: {EVENT_FILE_HANDLER} {fifo}
          timeout: 10
        """


async def read_ready_line(stderr: trio.abc.ReceiveStream, log: list[str]) -> str:
    """The API URL from the 'pipeline is up' line, collecting stderr lines before it."""
    buffer = b""
    while True:
        chunk = await stderr.receive_some(65536)
        if not chunk:
            raise AssertionError("pipeline up exited before it was ready:\n" + "\n".join(log))
        buffer += chunk
        *lines, rest = buffer.split(b"\n")
        buffer = rest
        for line in lines:
            text = line.decode()
            log.append(text)
            match = re.search(r"pipeline is up: API (http://\S+),", text)
            if match:
                return match.group(1)


def field_of(event: dict[str, Any], *path: str) -> Any:
    for key in path:
        event = event[key]
    return event


async def test_check_result_travels_from_yaml_to_a_pipe_handler(tmp_path: Path) -> None:
    status_file = tmp_path / "status"
    status_file.write_text("0")
    pipe = EventPipe(tmp_path / "events.fifo")
    config = write_config(tmp_path / "config", config_yaml(status_file, pipe.path))
    command = pipeline_command(
        "up",
        "--config", str(config),
        "--data", str(tmp_path / "data"),
        "--api-addr", "127.0.0.1:0",
        "--transport-addr", "127.0.0.1:0",
        "--agent-name", "e2e-agent",
        "--agent-api-addr", "127.0.0.1:0",
        "--agent-socket-addr", "127.0.0.1:0",
        "--statsd-addr", "127.0.0.1:0",
        "--subscriptions", "test",
    )  # fmt: skip
    log: list[str] = []
    with trio.fail_after(60):
        process = await trio.lowlevel.open_process(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        try:
            assert process.stderr is not None
            api_url = await read_ready_line(process.stderr, log)

            first = await pipe.next_event()
            assert field_of(first, "entity", "metadata", "name") == "e2e-agent"
            assert field_of(first, "entity", "entity_class") == "agent"
            assert "entity:e2e-agent" in field_of(first, "entity", "subscriptions")
            assert field_of(first, "entity", "system", "hostname")
            assert field_of(first, "entity", "system", "network", "interfaces")
            check = first["check"]
            assert check["metadata"] == {"name": "status-from-file", "namespace": "default"}
            assert (check["status"], check["state"], check["occurrences"]) == (0, "passing", 1)
            assert check["handlers"] == ["capture"]
            assert check["executed"] > 0
            assert check["issued"] > 0
            assert check["duration"] > 0
            assert check["history"] == [{"status": 0, "executed": check["executed"]}]
            assert check["last_ok"] == check["executed"]
            assert first["timestamp"] > 0
            assert re.fullmatch(r"[0-9a-f-]{36}", first["id"])

            status_file.write_text("1")
            failing = await pipe.next_matching(lambda e: e["check"]["status"] == 1)
            assert failing["check"]["state"] == "failing"
            assert failing["check"]["occurrences"] == 1
            assert failing["check"]["occurrences_watermark"] == 1
            assert failing["check"]["history"][-2]["status"] == 0

            status_file.write_text("0")
            resolved = await pipe.next_matching(lambda e: e["check"]["status"] == 0)
            assert resolved["check"]["history"][-2]["status"] == 1
            assert resolved["check"]["occurrences"] == 1

            listing = await trio.run_process(
                pipeline_command("event", "list", "--api-url", api_url, "--data", str(tmp_path / "data")),
                capture_stdout=True,
            )
            table = listing.stdout.decode()
            assert re.search(r"ENTITY\s+CHECK\s+STATUS\s+STATE\s+OCCURRENCES\s+OUTPUT", table)
            assert re.search(r"e2e-agent\s+status-from-file\s+[01]\s+(passing|failing)\s+\d+", table)

            info = await trio.run_process(
                pipeline_command(
                    "event",
                    "info",
                    "e2e-agent",
                    "status-from-file",
                    "--api-url",
                    api_url,
                    "--data",
                    str(tmp_path / "data"),
                ),
                capture_stdout=True,
            )
            assert b'"status-from-file"' in info.stdout

            entities = await trio.run_process(
                pipeline_command("entity", "list", "--api-url", api_url, "--data", str(tmp_path / "data")),
                capture_stdout=True,
            )
            assert re.search(r"ENTITY\s+CLASS\s+HOSTNAME\s+LAST SEEN\s+SUBSCRIPTIONS", entities.stdout.decode())
            assert re.search(r"e2e-agent\s+agent\s+\S+\s+\d+s ago\s+test,entity:e2e-agent", entities.stdout.decode())

            async with httpx.AsyncClient() as client:
                metrics = (await client.get(f"{api_url}/metrics")).text
            assert 'pipeline_handler_runs_total{handler="capture"}' in metrics
            assert "pipeline_agent_checks_executed_total" in metrics
            assert 'pipeline_queue_depth{queue="eventd_inbox"}' in metrics

            process.send_signal(signal.SIGTERM)
            assert await process.wait() == 0
            # The agent said it started and, before exiting, that it stopped (and waited for the ack).
            store = SQLiteStore(tmp_path / "data" / "events.db")
            store.open()
            started = store.get_event("default", "e2e-agent", "agent_started")
            stopped = store.get_event("default", "e2e-agent", "agent_stopped")
            store.close()
            assert started is not None
            assert stopped is not None
            assert stopped.check is not None
            assert stopped.check.output.startswith("agent_stopped pipeline-agent 0.1.0 / on ")
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            await pipe.aclose()


async def test_up_refuses_to_start_on_broken_config(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "config", "type: CheckConfig\napi_version: core/v2\nmetadata: {name: x}\nspec:\n  interval: ten\n"
    )
    result = await trio.run_process(
        pipeline_command("up", "--config", str(config), "--data", str(tmp_path / "data")),
        capture_stderr=True,
        check=False,
    )
    assert result.returncode == 1
    assert "resources.yml: line 5: document 1: CheckConfig 'x': spec.interval: expected integer, got string 'ten'" in (
        result.stderr.decode()
    )


async def test_a_port_in_use_is_one_clear_line_and_exit_1(tmp_path: Path) -> None:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    with listener:
        result = await trio.run_process(
            pipeline_command(
                "up",
                "--config", str(write_config(tmp_path / "config", "")),
                "--data", str(tmp_path / "data"),
                "--api-addr", "127.0.0.1:0",
                "--transport-addr", f"127.0.0.1:{port}",
                "--agent-api-addr", "",
                "--statsd-addr", "",
            ),
            capture_stderr=True,
            check=False,
        )  # fmt: skip
    assert result.returncode == 1
    assert f"pipeline: cannot run: [Errno 98] agent transport on 127.0.0.1:{port}: Address already in use" in (
        result.stderr.decode()
    )
