"""``sensuctl dump`` files load as they are: YAML and wrapped JSON, several kinds per file; the
kinds pipeline does not run are refused by name, with file, line and document."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.config.loader import load_path

DUMP_YAML = """\
type: Namespace
api_version: core/v2
metadata: {}
spec:
  name: default
---
type: Namespace
api_version: core/v2
metadata: {}
spec:
  name: ops
---
type: Entity
api_version: core/v2
metadata:
  name: router1
  namespace: ops
  created_by: admin
spec:
  deregister: false
  deregistration: {}
  entity_class: proxy
  last_seen: 0
  subscriptions: [entity:router1, snmp]
  system:
    network:
      interfaces: null
    libc_type: ""
    vm_system: ""
    vm_role: ""
    cloud_provider: ""
    processes: null
  sensu_agent_version: ""
---
type: Handler
api_version: core/v2
metadata: {name: slack, namespace: ops}
spec: {type: pipe, command: slack.sh, timeout: 10}
"""

WRAPPED = [
    {"type": "CheckConfig", "api_version": "core/v2", "metadata": {"name": "cpu", "namespace": "ops"},
     "spec": {"command": "check-cpu", "interval": 60, "subscriptions": ["linux"], "handlers": ["slack"]}},
    {"type": "HookConfig", "api_version": "core/v2", "metadata": {"name": "ps", "namespace": "ops"},
     "spec": {"command": "ps aux", "timeout": 10}},
]  # fmt: skip


def test_a_yaml_dump_with_namespaces_and_entities_loads(tmp_path: Path) -> None:
    (tmp_path / "dump.yaml").write_text(DUMP_YAML)
    loaded = load_path(tmp_path / "dump.yaml")
    assert loaded.errors == []
    assert [n.name for n in loaded.resources.namespaces] == ["default", "ops"]
    (router,) = loaded.resources.entities
    assert (router.name, router.metadata.namespace, router.subscriptions) == (
        "router1",
        "ops",
        ["entity:router1", "snmp"],
    )
    assert [kind for _, kind, _ in loaded.documents] == ["Namespace", "Namespace", "Entity", "Handler"]


def test_wrapped_json_objects_one_after_another_and_a_json_list_load(tmp_path: Path) -> None:
    (tmp_path / "stream.json").write_text("\n".join(json.dumps(d, indent=2) for d in WRAPPED))
    (tmp_path / "list.json").write_text(json.dumps([{**d, "metadata": {"name": "x" + d["metadata"]["name"]}}
                                                    for d in WRAPPED]))  # fmt: skip
    (tmp_path / "no-suffix").write_text("\n".join(json.dumps(d) for d in WRAPPED))
    stream, listed, bare = (load_path(tmp_path / n) for n in ("stream.json", "list.json", "no-suffix"))
    assert [c.metadata.name for c in stream.resources.checks] == ["cpu"]
    assert [h.metadata.name for h in stream.resources.hooks] == ["ps"]
    assert [(d.number, d.line) for d, _, _ in stream.documents] == [(1, 1), (2, 19)]
    assert [c.metadata.name for c in listed.resources.checks] == ["xcpu"]
    assert [d.number for d, _, _ in listed.documents] == [1, 2]
    assert [c.metadata.name for c in bare.resources.checks] == ["cpu"]
    assert [str(w) for w in stream.warnings] == [
        f"{tmp_path / 'stream.json'}: line 1: document 1: CheckConfig 'cpu': spec.handlers[0]: no Handler 'slack'"
    ]


def test_broken_json_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "dump.json").write_text('{"type": "CheckConfig"}\n{"type": \n')
    loaded = load_path(tmp_path / "dump.json")
    assert [str(e) for e in loaded.errors] == [
        f"{tmp_path / 'dump.json'}: line 1: document 1: api_version: expected 'core/v2', got nothing",
        f"{tmp_path / 'dump.json'}: line 3: invalid JSON: Expecting value (column 1)",
    ]


def test_kinds_pipeline_does_not_run_are_refused_by_name(tmp_path: Path) -> None:
    documents = [
        ("Role", "core/v2"), ("RoleBinding", "core/v2"), ("ClusterRole", "core/v2"),
        ("ClusterRoleBinding", "core/v2"), ("User", "core/v2"), ("APIKey", "core/v2"), ("TessenConfig", "core/v2"),
        ("EtcdReplicator", "federation/v1"), ("CyberArkProvider", "secrets/v1"), ("VaultProvider", "secrets/v1"),
        ("EntityConfig", "core/v3"), ("Namespace", "core/v3"),
    ]  # fmt: skip
    text = "---\n".join(f"type: {kind}\napi_version: {version}\nmetadata: {{name: x}}\nspec: {{}}\n"
                        for kind, version in documents)  # fmt: skip
    (tmp_path / "dump.yml").write_text(text)
    errors = [str(e) for e in load_path(tmp_path).errors]
    assert len(errors) == len(documents)
    for number, ((kind, version), error) in enumerate(zip(documents, errors, strict=True), start=1):
        line = 4 * (number - 1) + number
        assert error.startswith(f"{tmp_path / 'dump.yml'}: line {line}: document {number}: type: "
                                f"pipeline does not support Sensu Go's {kind} ({version})")  # fmt: skip
    assert errors[0].endswith("access is given by API keys with a role (pipeline key create --role)")
    assert errors[-1].endswith("write its core/v2 form (Entity, Namespace)")


def test_a_namespace_has_no_metadata(tmp_path: Path) -> None:
    (tmp_path / "ns.yml").write_text(
        "type: Namespace\napi_version: core/v2\nmetadata: {name: ops}\nspec: {name: ops}\n"
    )
    (error,) = [str(e) for e in load_path(tmp_path).errors]
    assert error.endswith("metadata: a Namespace has no metadata: its name is spec.name")
