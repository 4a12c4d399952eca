"""The ``docker`` source against the real Docker Engine: Debian's dockerd, started by
``.ci/setup-docker`` when none runs, and a busybox image imported from busybox-static.

What a user does with containers, networks, volumes and images arrives as change events with the
right check names, statuses and tags; closing the stream or restarting dockerd loses nothing
and sends nothing twice. If dockerd cannot run here, these tests fail with the reason: they
never skip.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from prometheus_client import CollectorRegistry

from pipeline.agent.sources.base import Source, SourceContext, SourceSettings
from pipeline.agent.sources.docker import make
from pipeline.errors import DockerEventsError
from pipeline.model import Entity, Event, ObjectMeta
from tests.support import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("dockerd")]

SETUP = REPO / ".ci" / "setup-docker"
SOCKET = Path(os.environ.get("PIPELINE_DOCKER_SOCKET", "/var/run/docker.sock"))
IMAGE = "pipeline-test/busybox:latest"
ENTITY = Entity(metadata=ObjectMeta(name="docker-host", namespace="default"))


@pytest.fixture(scope="session")
def dockerd() -> Path:
    """A dockerd answering on :data:`SOCKET`, with the busybox image: the README's setup, run
    here too (it does nothing when all is there). No dockerd is a failure, with the reason."""
    result = subprocess.run([str(SETUP)], capture_output=True, text=True, timeout=900, check=False)
    if result.returncode != 0:
        pytest.fail(f"dockerd is needed and {SETUP} could not give one (exit {result.returncode}):\n"
                    f"{result.stdout}{result.stderr}", pytrace=False)  # fmt: skip
    return SOCKET


async def docker(*args: str) -> str:
    """Runs the docker CLI against :data:`SOCKET`; its output, or a failure with its stderr."""
    command = ["docker", "-H", f"unix://{SOCKET}", *args]
    result = await trio.run_process(command, capture_stdout=True, capture_stderr=True, check=False)
    assert result.returncode == 0, f"{' '.join(command)}: {result.stderr.decode()}"
    return result.stdout.decode().strip()


async def docker_may_fail(*args: str) -> int:
    """A docker command whose exit status is the point (a container that exits 3, an OOM kill)."""
    command = ["docker", "-H", f"unix://{SOCKET}", *args]
    return (await trio.run_process(command, capture_stdout=True, capture_stderr=True, check=False)).returncode


class Received:
    """The events the source sent, read on demand."""

    def __init__(self, receive: trio.MemoryReceiveChannel[Event]) -> None:
        self.receive = receive
        self.events: list[Event] = []

    async def until(self, check: str, **labels: str) -> Event:
        """The first event (already read, or read now) of ``check`` with ``labels``."""
        while (found := self.find(check, **labels)) is None:
            self.events.append(await self.receive.receive())
        return found

    def find(self, check: str, **labels: str) -> Event | None:
        return next((e for e in self.events if matches(e, check, labels)), None)

    def all(self, **labels: str) -> list[Event]:
        return [e for e in self.events if matches(e, "", labels)]


def matches(event: Event, check: str, labels: dict[str, str]) -> bool:
    if check and event.check.metadata.name != check:
        return False
    ours = event.check.metadata.labels
    return all(ours.get(key.replace("__", ".")) == value for key, value in labels.items())


def identities(events: list[Event]) -> list[tuple[str, str, str]]:
    """What tells two Docker events apart: the instant, the check and the object."""
    return [(e.check.metadata.annotations["docker/time_nano"], e.check.metadata.name,
             e.check.metadata.labels["docker.object.id"]) for e in events]  # fmt: skip


def source(registry: CollectorRegistry, state_dir: Path | None = None) -> Source:
    settings = SourceSettings(docker_socket=SOCKET, state_dir=state_dir)
    return make(SourceContext(entity=ENTITY, settings=settings, registry=registry))


@asynccontextmanager
async def running(
    source_: Source, send: trio.MemorySendChannel[Event], failed: Callable[[DockerEventsError], None] | None = None
) -> AsyncIterator[None]:
    """``source_`` runs (and observes) inside the block; a failure goes to ``failed`` if given."""

    async def run(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            await source_.run(send, task_status=task_status)
        except DockerEventsError as exc:
            if failed is None:
                raise
            failed(exc)

    async with trio.open_nursery() as nursery:
        await nursery.start(run)
        yield
        nursery.cancel_scope.cancel()


def unique(word: str) -> str:
    return f"pt-{word}-{uuid.uuid4().hex[:8]}"


async def test_what_users_do_with_docker_arrives_as_change_events(dockerd: Path) -> None:
    registry = CollectorRegistry()
    send, receive = trio.open_memory_channel[Event](1000)
    got = Received(receive)
    first, second, dying, oom = unique("c1"), unique("c2"), unique("die"), unique("oom")
    network, volume, tag = unique("net"), unique("vol"), f"pipeline-test/busybox:{unique('tag')}"
    image_id = await docker("image", "inspect", "--format", "{{.Id}}", IMAGE)
    with trio.fail_after(180):
        async with running(source(registry), send):
            await docker("network", "create", network)
            await docker("volume", "create", volume)
            await docker("tag", IMAGE, tag)
            container = await docker("create", "--name", first, "-v", f"{volume}:/data", IMAGE, "sleep", "300")
            await docker("start", first)
            await docker("exec", first, "sh", "-c", "exit 0")
            await docker("rename", first, second)
            await docker("network", "connect", network, second)
            await docker("network", "disconnect", network, second)
            await docker("stop", "-t", "1", second)
            await docker("start", second)
            await docker("kill", second)
            await docker("rm", second)
            assert await docker_may_fail("run", "--name", dying, IMAGE, "sh", "-c", "exit 3") == 3
            await docker("rm", dying)
            hog = "x=a; while :; do x=$x$x; done"
            assert (
                await docker_may_fail("run", "--name", oom, "-m", "8m", "--memory-swap", "8m", IMAGE, "sh", "-c", hog)
                == 137
            )
            await docker("rm", oom)
            await docker("rmi", tag)
            await docker("volume", "rm", volume)
            await docker("network", "rm", network)
            await got.until("docker-network-destroy", docker__object__name=network)

    def event(check: str, **labels: str) -> Event:
        found = got.find(check, **labels)
        assert found is not None, f"no {check} {labels} among {[e.check.output for e in got.events]}"
        return found

    created = event("docker-container-create", container__name=first)
    assert created.check.output == f"Docker Event: container create {first} (image {IMAGE})"
    assert created.check.metadata.labels["container.id"] == container
    assert created.check.metadata.labels["container.image.name"] == IMAGE
    assert created.check.status == 0
    assert created.entity.metadata.name == "docker-host"
    event("docker-container-start", container__name=first)
    exec_start = event("docker-container-exec_start", container__name=first)
    assert exec_start.check.metadata.annotations["docker/action"] == "exec_start: sh -c exit 0"
    assert event("docker-container-rename", container__name=second).check.output.endswith(
        f"(was {first}, image {IMAGE})"
    )
    for action in ("connect", "disconnect"):
        assert (
            event(f"docker-network-{action}", docker__object__name=network).check.metadata.labels["container.id"]
            == container
        )
    event("docker-container-stop", container__name=second)
    kill = [e for e in got.all(container__name=second) if e.check.metadata.name == "docker-container-kill"]
    assert any("signal 9" in e.check.output for e in kill), [e.check.output for e in kill]
    assert event("docker-container-destroy", container__name=second).check.status == 0
    died = event("docker-container-die", container__name=dying)
    assert (died.check.status, died.check.metadata.labels["docker.exit_code"]) == (2, "3")
    assert event("docker-container-oom", container__name=oom).check.status == 2
    assert event("docker-container-die", container__name=oom).check.status == 2
    for action in ("create", "mount", "unmount", "destroy"):
        assert event(f"docker-volume-{action}", docker__object__id=volume).check.status == 0
    assert event("docker-image-tag", container__image__name=tag).check.output == f"Docker Event: image tag {tag}"
    event("docker-image-untag", docker__object__id=image_id)
    event("docker-network-create", docker__object__name=network)
    assert len(set(identities(got.events))) == len(got.events), "an event was sent twice"
    assert registry.get_sample_value("pipeline_agent_docker_events_total", {"type": "container"}) >= 20


async def test_a_closed_stream_resumes_from_the_state_dir_without_duplicates_or_gaps(
    dockerd: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    send, receive = trio.open_memory_channel[Event](1000)
    got = Received(receive)
    before, between, after = unique("before"), unique("between"), unique("after")
    with trio.fail_after(120):
        async with running(source(CollectorRegistry(), state), send):
            await docker("run", "--rm", "--name", before, IMAGE, "true")
            await got.until("docker-container-destroy", container__name=before)
        first_run = len(got.events)
        # the agent is away (the stream closed) while a container runs
        await docker("run", "--rm", "--name", between, IMAGE, "true")
        registry = CollectorRegistry()  # a new agent: a new source, the same state_dir
        async with running(source(registry, state), send):
            await got.until("docker-container-destroy", container__name=between)
            await docker("run", "--rm", "--name", after, IMAGE, "true")
            await got.until("docker-container-destroy", container__name=after)
    resumed = got.events[first_run:]
    assert not [e for e in resumed if e.check.metadata.labels.get("container.name") == before]
    for name in (between, after):
        checks = [e.check.metadata.name for e in resumed if e.check.metadata.labels.get("container.name") == name]
        assert checks[:1] == ["docker-container-create"], checks
        for check in ("docker-container-start", "docker-container-die", "docker-container-destroy"):
            assert checks.count(check) == 1, (name, checks)
    assert len(set(identities(got.events))) == len(got.events), "an event was sent twice"
    # the event at the resume instant was replayed by Docker and skipped
    assert registry.get_sample_value("pipeline_agent_docker_events_skipped_total", {"reason": "duplicate"}) >= 1


async def test_a_dockerd_restart_fails_the_source_and_its_restart_misses_nothing(dockerd: Path) -> None:
    registry = CollectorRegistry()
    send, receive = trio.open_memory_channel[Event](1000)
    got = Received(receive)
    before, during = unique("before"), unique("during")
    failures: list[DockerEventsError] = []
    failed = trio.Event()

    def fail(error: DockerEventsError) -> None:
        failures.append(error)
        failed.set()

    the_source = source(registry)
    with trio.fail_after(180):
        async with running(the_source, send, fail):
            await docker("run", "--rm", "--name", before, IMAGE, "true")
            await got.until("docker-container-destroy", container__name=before)
            restart = await trio.run_process([str(SETUP), "--restart"], capture_stderr=True, check=False)
            assert restart.returncode == 0, restart.stderr.decode()
            await failed.wait()
        assert len(failures) == 1
        assert failures[0].reason in ("ended", "truncated"), failures[0]
        first_run = len(got.events)
        # the source is down (the agent backs off) while a container runs on the new dockerd
        await docker("run", "--rm", "--name", during, IMAGE, "true")
        async with running(the_source, send):  # the agent restarts the same source
            await got.until("docker-container-destroy", container__name=during)
    resumed = got.events[first_run:]
    assert not [e for e in resumed if e.check.metadata.labels.get("container.name") == before]
    checks = [e.check.metadata.name for e in resumed if e.check.metadata.labels.get("container.name") == during]
    assert checks[0] == "docker-container-create", checks
    assert {"docker-container-start", "docker-container-die", "docker-container-destroy"} <= set(checks)
    assert len(set(identities(got.events))) == len(got.events), "an event was sent twice"
    assert registry.get_sample_value("pipeline_agent_docker_stream_errors_total", {"reason": failures[0].reason}) == 1
