"""The host sources through the interface the issue names: a real ``pipeline agent --source
docker --source packages --package-paths VENV`` process and a real backend with
``--change-handlers``. A container that exits 3 and a ``pip install`` into the venv reach the
backend's handler as change events, and are on the timeline API."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.e2e.test_host_docker import IMAGE, SOCKET, docker_may_fail, dockerd  # noqa: F401 (a fixture)
from tests.support import (
    Daemon,
    EventPipe,
    build_wheel,
    capture_handler,
    loopback_backend,
    served,
    write_config,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("dockerd")]

NS = "/api/core/v2/namespaces/default"


def named(check: str, **labels: str) -> Any:
    def matches(event: dict[str, Any]) -> bool:
        meta = event["check"]["metadata"]
        return bool(meta["name"] == check and all(meta.get("labels", {}).get(k) == v for k, v in labels.items()))

    return matches


async def test_an_agent_with_docker_and_packages_sources_reports_what_the_host_did(
    tmp_path: Path,
    dockerd: Path,  # noqa: F811 (the fixture)
) -> None:
    pipe = EventPipe(tmp_path / "events.fifo")
    config = write_config(tmp_path / "config", capture_handler(pipe.path, "changes"))
    venv = tmp_path / "venv"
    await trio.run_process([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    container = f"pipeline-e2e-{uuid.uuid4().hex[:8]}"
    agent_log = Daemon("agent")
    async with served(loopback_backend(tmp_path, config, change_handlers=["changes"]), seconds=90) as backend:
        transport = f"{backend.addresses.transport[0]}:{backend.addresses.transport[1]}"
        async with trio.open_nursery() as nursery:
            args = ["agent", "--name", "host-e2e", "--backend-addr", transport, "--api-addr", "",
                    "--data", str(tmp_path / "agent"), "--source", "docker", "--source", "packages",
                    "--docker-socket", str(SOCKET), "--package-paths", str(venv), "--package-interval", "0.5"]  # fmt: skip
            await nursery.start(agent_log.run, args, dict(os.environ), "connected to backend")
            await agent_log.wait_for('"source started" source=docker')
            # the stream is open (and so this container's events are seen) only once Docker answered
            await agent_log.wait_for('"docker events stream open"')
            await agent_log.wait_for('"source started" source=packages')
            assert await docker_may_fail("run", "--rm", "--name", container, IMAGE, "sh", "-c", "exit 3") == 3
            wheel = build_wheel(tmp_path)
            await trio.run_process([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                                    "install", "--no-index", "--quiet", str(wheel)])  # fmt: skip
            died = await pipe.next_matching(named("docker-container-die", **{"container.name": container}))
            installed = await pipe.next_matching(named("package-installed", package_type="python"), limit=200)
            timeline = await backend.client.get(f"{NS}/timeline", params={"entity": "host-e2e", "since": "10m"})
            nursery.cancel_scope.cancel()
    await pipe.aclose()
    assert died["entity"]["metadata"]["name"] == "host-e2e"
    assert died["check"]["status"] == 2
    assert died["check"]["output"].startswith(f"Docker Event: container die {container} (exit code 3")
    assert (
        installed["check"]["output"]
        == "Package tiny_probe, version 0.1.0 has been installed on host " + (installed["entity"]["system"]["hostname"])
    )
    assert timeline.status_code == 200, timeline.text
    checks = [e["check"]["metadata"]["name"] for e in timeline.json()]
    assert {"agent_started", "docker-container-die", "package-installed"} <= set(checks)
