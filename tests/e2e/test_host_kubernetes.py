"""The kubernetes source against a local API server speaking TLS, list and watch of events and
Leases as a real one does (tests/kube_fake.py), read through the same client code and a
kubeconfig file as against a real cluster: a dropped watch resumes from its resourceVersion, a
410 re-lists without sending anything twice, one agent of two collects, the other takes over."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing
import trustme
from prometheus_client import CollectorRegistry

from pipeline.agent.sources.base import SourceContext, SourceSettings
from pipeline.agent.sources.kubernetes import KubernetesSource, LeaseTiming
from pipeline.core.host.lease import RESUME_ANNOTATION
from pipeline.errors import KubernetesError
from pipeline.model import Entity, Event, ObjectMeta
from tests.kube_fake import FakeCluster, Served, event_object, serve_cluster, write_kubeconfig

pytestmark = pytest.mark.e2e

#: a short lease so that a takeover takes about a second
FAST = LeaseTiming(duration=1, renew_every=0.2, retry_every=0.1)
LEASE = ("monitoring", "pipeline-agent-kubernetes-events")


def source_for(tmp_path: Path, served: Served, name: str) -> tuple[KubernetesSource, CollectorRegistry]:
    kubeconfig = write_kubeconfig(tmp_path / f"{name}.kubeconfig", served)
    registry = CollectorRegistry()
    entity = Entity(entity_class="agent", metadata=ObjectMeta(name=name, namespace="default"))
    context = SourceContext(entity=entity, settings=SourceSettings(kubeconfig=kubeconfig), registry=registry)
    return KubernetesSource(context, timing=FAST), registry


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(f"pipeline_agent_kubernetes_{name}", labels) or 0.0


def watching(cluster: FakeCluster, count: int) -> bool:
    return len(cluster._watchers) == 1 and len(cluster.watch_requests) == count


async def test_a_dropped_watch_resumes_and_a_410_relists_sending_each_occurrence_once(tmp_path: Path) -> None:
    cluster = FakeCluster()
    # what happened before the agent observed: listed, never sent
    before = cluster.add(
        event_object(
            "coredns-6f6b679f8f-5m7kq",
            "Pulled",
            'Container image "registry.k8s.io/coredns/coredns:v1.11.1" already present on machine',
            container="coredns",
        )
    )
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            served = await nursery.start(serve_cluster, cluster, trustme.CA())
            source, registry = source_for(tmp_path, served, "agent-a")
            send, receive = trio.open_memory_channel[Event](100)
            await nursery.start(source.run, send)
            await cluster.wait_for(lambda: watching(cluster, 1))

            backoff = cluster.add(
                event_object(
                    "web-7d5f8-x2k4p",
                    "BackOff",
                    "Back-off restarting failed container web in pod web-7d5f8-x2k4p_default(8dcdd4e8)",
                    type="Warning",
                    count=10,
                )
            )
            event = await receive.receive()
            assert event.check is not None
            assert event.entity is not None
            assert (event.check.metadata.name, event.check.status) == ("k8s-BackOff", 1)
            assert event.check.output.startswith("Back-off restarting failed container web")
            assert (event.entity.metadata.name, event.entity.entity_class) == ("pod:default:web-7d5f8-x2k4p", "proxy")
            labels = event.check.metadata.labels
            assert labels["kubernetes.pod.name"] == "web-7d5f8-x2k4p"
            assert labels["kubernetes.cluster.name"] == "test-cluster"
            assert (labels["kubernetes.node"], labels["kubernetes.container.name"]) == ("worker-1", "web")

            # a bookmark, then the connection breaks: the watch resumes from the bookmark
            mark = cluster.bookmark()
            cluster.drop()
            await cluster.wait_for(lambda: watching(cluster, 2))
            resumed = cluster.watch_requests[1]
            assert (resumed["resourceVersion"], resumed["allowWatchBookmarks"]) == ([mark], ["true"])
            cluster.add(
                event_object("web-7d5f8-x2k4p", "Pulled", 'Container image "nginx:1.27" already present on machine')
            )
            assert (await receive.receive()).check.metadata.name == "k8s-Pulled"  # type: ignore[union-attr]

            # while the watch had expired: a new event and the BackOff again (count 11)
            cluster.add(
                event_object(
                    "web-2",
                    "FailedScheduling",
                    "0/3 nodes are available: 3 Insufficient memory.",
                    type="Warning",
                    container=None,
                ),
                quietly=True,
            )
            cluster.repeat(backoff, quietly=True)
            lists = sum(1 for m, p, q in cluster.requests if p == "/api/v1/events" and "watch" not in q)
            cluster.expire()
            relisted = [await receive.receive(), await receive.receive()]
            assert sorted((e.check.metadata.name, e.check.metadata.annotations["kubernetes.event.count"]) for e in relisted if e.check) == [
                ("k8s-BackOff", "11"), ("k8s-FailedScheduling", "1")]  # fmt: skip
            assert sum(1 for m, p, q in cluster.requests if p == "/api/v1/events" and "watch" not in q) == lists + 1

            # and it watches on from the list
            await cluster.wait_for(lambda: len(cluster._watchers) == 1)
            cluster.add(
                event_object(
                    "worker-2", "NodeNotReady", "Node worker-2 status is now: NodeNotReady", kind="Node", container=None
                )
            )
            node = await receive.receive()
            assert node.entity is not None
            assert node.entity.metadata.name == "node:worker-2"
            assert receive.statistics().current_buffer_used == 0, "something was sent twice"
            assert before["metadata"]["uid"] not in {
                e.check.metadata.annotations.get("kubernetes.event.uid") for e in relisted if e.check
            }

            await trio.testing.wait_all_tasks_blocked()  # the source counts after its send returns
            assert metric(registry, "events_total") == 5
            assert metric(registry, "relists_total") == 1
            assert metric(registry, "duplicates_total") == 2  # the Pulled events, listed again
            assert metric(registry, "errors_total", reason="disconnect") == 1
            assert metric(registry, "leader") == 1
            nursery.cancel_scope.cancel()


async def test_a_line_that_is_not_json_fails_the_source_which_resumes_when_restarted(tmp_path: Path) -> None:
    cluster = FakeCluster()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            served = await nursery.start(serve_cluster, cluster, trustme.CA())
            source, registry = source_for(tmp_path, served, "agent-a")
            send, receive = trio.open_memory_channel[Event](100)
            failed = trio.Event()

            async def run_until_it_fails() -> None:
                with pytest.raises(KubernetesError, match="not JSON"):
                    await source.run(send)
                failed.set()

            nursery.start_soon(run_until_it_fails)
            await cluster.wait_for(lambda: watching(cluster, 1))
            first = cluster.add(event_object("web-1", "Killing", "Stopping container web"))
            assert (await receive.receive()).check.metadata.name == "k8s-Killing"  # type: ignore[union-attr]
            cluster.garbage(b'{"type":"ADDED","object":{"kind":"Ev\n')
            await failed.wait()
            assert metric(registry, "errors_total", reason="bad_json") == 1

            # what the agent's runner does after its backoff: run the same source again
            await nursery.start(source.run, send)
            await cluster.wait_for(lambda: watching(cluster, 2))
            assert cluster.watch_requests[1]["resourceVersion"] == [first["metadata"]["resourceVersion"]]
            cluster.add(event_object("web-1", "Started", "Started container web"))
            assert (await receive.receive()).check.metadata.name == "k8s-Started"  # type: ignore[union-attr]
            assert receive.statistics().current_buffer_used == 0
            nursery.cancel_scope.cancel()


async def test_only_the_lease_holder_collects_and_another_takes_over_when_it_dies(tmp_path: Path) -> None:
    cluster = FakeCluster()

    def lease() -> dict:  # type: ignore[type-arg]
        return cluster.leases.get(LEASE, {})

    def holder() -> str:
        return str(lease().get("spec", {}).get("holderIdentity", ""))

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            served = await nursery.start(serve_cluster, cluster, trustme.CA())
            source_a, registry_a = source_for(tmp_path, served, "agent-a")
            source_b, registry_b = source_for(tmp_path, served, "agent-b")
            send_a, receive_a = trio.open_memory_channel[Event](100)
            send_b, receive_b = trio.open_memory_channel[Event](100)
            agent_a = trio.CancelScope()

            async def run_a(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
                with agent_a:
                    await source_a.run(send_a, task_status=task_status)

            await nursery.start(run_a)
            await cluster.wait_for(lambda: holder() == "agent-a" and watching(cluster, 1))
            await nursery.start(source_b.run, send_b)
            renewed = int(lease()["metadata"]["resourceVersion"])
            # b has read the lease at least once, and a has renewed since
            await cluster.wait_for(lambda: int(lease()["metadata"]["resourceVersion"]) > renewed + 1)

            first = cluster.add(
                event_object(
                    "api-5d9c",
                    "Unhealthy",
                    "Readiness probe failed: HTTP probe failed with statuscode: 503",
                    type="Warning",
                )
            )
            assert (await receive_a.receive()).check.metadata.name == "k8s-Unhealthy"  # type: ignore[union-attr]
            assert (metric(registry_a, "leader"), metric(registry_b, "leader")) == (1, 0)
            assert len(cluster.watch_requests) == 1, "the agent standing by watches nothing"

            # a records where it is in the lease; then it dies without a word
            seen = int(first["metadata"]["resourceVersion"])
            await cluster.wait_for(
                lambda: int(lease()["metadata"].get("annotations", {}).get(RESUME_ANNOTATION, 0)) >= seen
            )
            agent_a.cancel()
            await cluster.wait_for(lambda: holder() == "agent-b" and watching(cluster, 2))
            spec = lease()["spec"]
            assert (spec["leaseDurationSeconds"], spec["leaseTransitions"]) == (1, 1)
            assert spec["renewTime"].endswith("Z")
            assert "." in spec["renewTime"]
            # b resumes where a was, without a list of its own: nothing of a's is sent again
            assert int(cluster.watch_requests[1]["resourceVersion"][0]) >= seen
            cluster.add(
                event_object(
                    "api-5d9c", "Killing", "Container api failed liveness probe, will be restarted", type="Normal"
                )
            )
            taken_over = await receive_b.receive()
            assert taken_over.check is not None
            assert taken_over.check.metadata.name == "k8s-Killing"
            assert receive_b.statistics().current_buffer_used == 0
            assert receive_a.statistics().current_buffer_used == 0
            assert metric(registry_b, "leader") == 1
            nursery.cancel_scope.cancel()
