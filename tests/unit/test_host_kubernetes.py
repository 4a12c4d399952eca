"""The pure part of the kubernetes source: an Event object as a change event, the resume point of
list-then-watch, the Lease's rules, and reading a kubeconfig or a pod's service account."""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import pytest
import trustme

from pipeline.agent.sources.kubeapi import load_in_cluster, load_kubeconfig
from pipeline.core.host.kubernetes import Resume, event_of, host_of
from pipeline.core.host.lease import RESUME_ANNOTATION, LeaseRecord, Observer, lease_body, micro_time
from pipeline.core.push.common import CHANGE, CHANGE_LABEL
from pipeline.errors import ConfigError, ValidationError

# as `kubectl get events -o json` shows one (a kubeadm cluster)
BACKOFF: dict[str, Any] = {
    "kind": "Event",
    "apiVersion": "v1",
    "metadata": {
        "name": "restricteddeploy-66bddd5dc8-9ggwb.18a722d7f6019475",
        "namespace": "psa-restricted",
        "uid": "94590512-544e-4c60-bef4-d0b5539cf371",
        "resourceVersion": "806118",
        "creationTimestamp": "2026-04-17T11:54:48Z",
    },
    "involvedObject": {
        "kind": "Pod",
        "namespace": "psa-restricted",
        "name": "restricteddeploy-66bddd5dc8-9ggwb",
        "uid": "8dcdd4e8-981e-43f3-92a8-456f5b5bb591",
        "apiVersion": "v1",
        "resourceVersion": "805468",
        "fieldPath": "spec.containers{nginx}",
    },
    "reason": "BackOff",
    "message": "Back-off restarting failed container nginx in pod restricteddeploy-66bddd5dc8-9ggwb_psa-restricted(8dcdd4e8)",
    "source": {"component": "kubelet", "host": "k8scilium1"},
    "firstTimestamp": "2026-04-17T11:54:48Z",
    "lastTimestamp": "2026-04-17T12:00:17Z",
    "count": 10,
    "type": "Warning",
    "eventTime": None,
    "reportingComponent": "kubelet",
    "reportingInstance": "k8scilium1",
}

# recorded through events.k8s.io/v1 (the scheduler), as core/v1 shows it: no lastTimestamp, a series
SCHEDULED: dict[str, Any] = {
    "kind": "Event",
    "apiVersion": "v1",
    "metadata": {"name": "web.1808", "namespace": "default", "uid": "u-2", "resourceVersion": "415"},
    "involvedObject": {"kind": "Deployment", "namespace": "default", "name": "web"},
    "reason": "ScalingReplicaSet",
    "message": "Scaled up replica set web-7d5f8 to 3",
    "source": {},
    "firstTimestamp": None,
    "lastTimestamp": None,
    "eventTime": "2024-11-17T10:19:41.123456Z",
    "series": {"count": 4, "lastObservedTime": "2024-11-17T10:29:41.000001Z"},
    "type": "Normal",
    "reportingComponent": "deployment-controller",
    "reportingInstance": "",
}


def test_a_warning_is_a_status_1_change_event_of_its_pod_with_sematexts_tags() -> None:
    event = event_of(BACKOFF, namespace="default", now=0, cluster="prod")
    assert event.check is not None and event.entity is not None  # noqa: PT018
    assert (event.check.metadata.name, event.check.status) == ("k8s-BackOff", 1)
    assert event.check.output == BACKOFF["message"]
    assert event.timestamp == 1776427217  # lastTimestamp
    assert event.entity.metadata.name == "pod:psa-restricted:restricteddeploy-66bddd5dc8-9ggwb"
    assert event.entity.entity_class == "proxy"
    assert event.check.metadata.labels == {
        "kubernetes.namespace": "psa-restricted",
        "kubernetes.name": "restricteddeploy-66bddd5dc8-9ggwb",
        "kubernetes.kind": "Pod",
        "kubernetes.reason": "BackOff",
        "kubernetes.node": "k8scilium1",
        "kubernetes.cluster.name": "prod",
        "kubernetes.pod.name": "restricteddeploy-66bddd5dc8-9ggwb",
        "kubernetes.pod.uid": "8dcdd4e8-981e-43f3-92a8-456f5b5bb591",
        "kubernetes.container.name": "nginx",
        "kubernetes.node.name": "k8scilium1",
        CHANGE_LABEL: CHANGE,
    }
    assert event.check.metadata.annotations["kubernetes.event.count"] == "10"
    event.validate()


def test_a_normal_event_of_the_events_api_is_status_0_at_its_last_observation() -> None:
    event = event_of(SCHEDULED, namespace="ops", now=0)
    assert event.check is not None and event.entity is not None  # noqa: PT018
    assert (event.check.metadata.name, event.check.status) == ("k8s-ScalingReplicaSet", 0)
    assert event.timestamp == 1731839381
    assert event.entity.metadata.name == "deployment:default:web"
    assert event.entity.metadata.namespace == "ops"
    assert event.check.metadata.labels["kubernetes.deployment.name"] == "web"
    assert "kubernetes.cluster.name" not in event.check.metadata.labels
    assert event.check.metadata.annotations["kubernetes.event.count"] == "4"
    assert event.check.metadata.annotations["kubernetes.event.component"] == "deployment-controller"


def test_cluster_scoped_objects_and_odd_names_make_valid_entity_names() -> None:
    assert host_of("Node", "", "worker-1") == "node:worker-1"
    assert host_of("ClusterRole", "", "system:controller:job") == "clusterrole:system:controller:job"
    assert host_of("", "", "x") == "object:x"


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"involvedObject": "pod/web"}, "involvedObject"),
        ({"involvedObject": {"kind": "Pod"}}, "involvedObject.name"),
        ({"reason": 7}, "reason"),
        ({"lastTimestamp": "yesterday"}, "lastTimestamp"),
        ({"lastTimestamp": "2026-04-17T12:00:17"}, "lastTimestamp"),
    ],
)
def test_an_object_of_another_shape_is_refused_naming_the_field(change: dict[str, Any], path: str) -> None:
    obj = {**copy.deepcopy(BACKOFF), **change}
    with pytest.raises(ValidationError) as refused:
        event_of(obj, namespace="default", now=0)
    assert refused.value.path == path


def ev(uid: str, version: str) -> dict[str, Any]:
    return {"metadata": {"uid": uid, "resourceVersion": version}}


def test_the_first_list_is_remembered_not_sent_and_a_relist_sends_only_what_changed() -> None:
    resume = Resume()
    assert resume.listed([ev("a", "10"), ev("b", "11")], "12", send_history=False) == []
    assert resume.resource_version == "12"
    # after a 410: a is unchanged, b happened again, c is new, and d (gone) is forgotten
    relisted = resume.listed([ev("a", "10"), ev("b", "20"), ev("c", "21")], "22", send_history=True)
    assert relisted == [ev("b", "20"), ev("c", "21")]
    assert (resume.resource_version, resume.duplicates, resume.seen) == ("22", 1, {"a": "10", "b": "20", "c": "21"})


def test_a_watch_sends_each_occurrence_once_and_follows_bookmarks_and_deletions() -> None:
    resume = Resume()
    resume.listed([], "5", send_history=False)
    assert resume.watched("ADDED", ev("a", "6")) == ev("a", "6")
    assert resume.watched("ADDED", ev("a", "6")) is None  # replayed after a reconnect
    assert resume.watched("MODIFIED", ev("a", "7")) == ev("a", "7")  # the same event again
    assert resume.watched("BOOKMARK", {"kind": "Event", "metadata": {"resourceVersion": "9"}}) is None
    assert resume.resource_version == "9"
    assert resume.watched("DELETED", ev("a", "10")) is None
    assert (resume.seen, resume.duplicates, resume.resource_version) == ({}, 1, "10")
    with pytest.raises(ValidationError, match="uid"):
        resume.watched("ADDED", {"metadata": {}})


def test_after_a_takeover_what_the_last_holder_handled_is_not_sent_again() -> None:
    resume = Resume.after("100")
    assert resume.resource_version == "100"
    sent = resume.listed([ev("old", "90"), ev("edge", "100"), ev("new", "101")], "102", send_history=True)
    assert sent == [ev("new", "101")]
    assert Resume.after(None).resource_version is None


def test_the_lease_is_free_to_its_holder_to_nobody_and_to_all_once_a_whole_duration_passed() -> None:
    held = LeaseRecord("agent-a", 15, 0, "", "7", "100")
    observer = Observer()
    assert observer.free_for("agent-b", now=0)  # no lease yet
    observer.observe(held, now=100)
    assert observer.free_for("agent-a", now=100)
    assert not observer.free_for("agent-b", now=114.9)
    observer.observe(held, now=110)  # read again unchanged: the clock does not restart
    assert observer.free_for("agent-b", now=115)
    observer.observe(LeaseRecord("agent-a", 15, 0, "", "8", "100"), now=112)  # renewed
    assert not observer.free_for("agent-b", now=115)


def test_a_takeover_counts_a_transition_and_carries_the_resume_point() -> None:
    previous = LeaseRecord.of({"metadata": {"resourceVersion": "7"}, "spec": {"holderIdentity": "agent-a",
                               "leaseDurationSeconds": 15, "leaseTransitions": 2, "acquireTime": "t0"}})  # fmt: skip
    body = lease_body(
        name="l", namespace="ns", identity="agent-b", duration=15, wall=0.5, previous=previous, resume="99"
    )
    assert body["metadata"] == {
        "name": "l",
        "namespace": "ns",
        "resourceVersion": "7",
        "annotations": {RESUME_ANNOTATION: "99"},
    }
    assert body["spec"] == {"holderIdentity": "agent-b", "leaseDurationSeconds": 15, "acquireTime": micro_time(0.5),
                            "renewTime": "1970-01-01T00:00:00.500000Z", "leaseTransitions": 3}  # fmt: skip
    renewal = lease_body(
        name="l", namespace="ns", identity="agent-a", duration=15, wall=9, previous=previous, resume=None
    )
    assert (renewal["spec"]["acquireTime"], renewal["spec"]["leaseTransitions"]) == ("t0", 2)
    with pytest.raises(ValidationError):
        LeaseRecord.of({"spec": {"leaseDurationSeconds": "15"}})


def test_a_kubeconfig_gives_server_ca_token_namespace_and_cluster(tmp_path: Path) -> None:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.crt"))
    client = ca.issue_cert("pipeline-agent")
    client.cert_chain_pems[0].write_to_path(str(tmp_path / "client.crt"))
    client.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    (tmp_path / "token").write_text("from-a-file\n")
    path = tmp_path / "config"
    path.write_text("""apiVersion: v1
kind: Config
current-context: ops
contexts:
- {name: other, context: {cluster: nowhere, user: nobody}}
- {name: ops, context: {cluster: prod, user: agent, namespace: monitoring}}
clusters:
- {name: prod, cluster: {server: "https://10.0.0.1:6443/", certificate-authority: ca.crt}}
users:
- {name: agent, user: {client-certificate: client.crt, client-key: client.key, tokenFile: token}}
""")
    config = load_kubeconfig(path)
    assert (config.server, config.namespace, config.cluster) == ("https://10.0.0.1:6443", "monitoring", "prod")
    assert config.headers() == {"Authorization": "Bearer from-a-file"}
    # inline data, as kubeadm and kind write it
    data = base64.b64encode(ca.cert_pem.bytes()).decode()
    path.write_text(f"""current-context: c
contexts: [{{name: c, context: {{cluster: k, user: u}}}}]
clusters: [{{name: k, cluster: {{server: "https://127.0.0.1:6443", certificate-authority-data: {data}}}}}]
users:
- name: u
  user:
    client-certificate-data: {base64.b64encode(client.cert_chain_pems[0].bytes()).decode()}
    client-key-data: {base64.b64encode(client.private_key_pem.bytes()).decode()}
""")
    assert load_kubeconfig(path).namespace == "default"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("clusters: []", "current-context"),
        ("current-context: c\ncontexts: []", "contexts: no entry named 'c'"),
        (
            "current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
            "clusters: [{name: k, cluster: {server: 'https://x'}}]\n"
            "users: [{name: u, user: {exec: {command: aws}}}]",
            "user.exec: not supported",
        ),
        (
            "current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\nclusters: [{name: k, cluster: {}}]",
            "server: missing",
        ),
    ],
)
def test_a_kubeconfig_that_does_not_do_is_refused_naming_the_entry(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "config"
    path.write_text(text)
    with pytest.raises(ConfigError, match=says):
        load_kubeconfig(path)


def test_in_a_pod_the_service_account_is_used(tmp_path: Path) -> None:
    trustme.CA().cert_pem.write_to_path(str(tmp_path / "ca.crt"))
    (tmp_path / "token").write_text("rotated-1")
    (tmp_path / "namespace").write_text("monitoring")
    config = load_in_cluster({"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}, tmp_path)
    assert (config.server, config.namespace, config.cluster) == ("https://[fd00::1]:443", "monitoring", None)
    (tmp_path / "token").write_text("rotated-2")
    assert config.headers() == {"Authorization": "Bearer rotated-2"}
    with pytest.raises(ConfigError, match="kubeconfig"):
        load_in_cluster({}, tmp_path)
