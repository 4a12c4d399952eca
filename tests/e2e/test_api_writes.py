"""Writes through the API as Sensu Go's clients make them, for every kind alike: POST creates
(409 when the name is taken), PUT creates or replaces, PATCH merges (RFC 7396) under ETag
conditions, bodies flat or wrapped, unknown fields dropped and said, and what pipeline does not
have refused as such."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sensu_go
import trio

from tests.support import loopback_backend, served, write_config

pytestmark = pytest.mark.e2e

NS = "/api/core/v2/namespaces/default"
PATCH = {"Content-Type": "application/merge-patch+json"}
CPU: dict[str, Any] = {
    "metadata": {"name": "check_cpu", "labels": {"team": "ops", "tier": "1"}},
    "command": "check-cpu-usage.sh -w 75 -c 90",
    "interval": 60,
    "subscriptions": ["system"],
}


async def test_patch_merges_under_etag_conditions_and_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", "---\n"))
    async with served(backend) as up:
        client = up.client
        url = f"{NS}/checks/check_cpu"
        created = await client.post(f"{NS}/checks", json=CPU)
        taken = await client.post(f"{NS}/checks", json=CPU)
        read = await client.get(url)
        # Sensu's documentation's example, plus a label changed and one removed by null
        patch = {"subscriptions": ["system", "health"], "metadata": {"labels": {"team": "sre", "tier": None}}}
        patched = await client.patch(url, json=patch, headers={**PATCH, "If-Match": read.headers["ETag"]})
        stale = await client.patch(url, json={"interval": 30}, headers={**PATCH, "If-Match": read.headers["ETag"]})
        unwanted = await client.patch(url, json={"interval": 30},
                                      headers={**PATCH, "If-None-Match": patched.headers["ETag"]})  # fmt: skip
        plain_json = await client.patch(url, json={"interval": 30})
        renamed = await client.patch(url, json={"metadata": {"name": "other"}}, headers=PATCH)
        invalid = await client.patch(url, json={"interval": None}, headers=PATCH)  # no schedule left
        missing = await client.patch(f"{NS}/checks/nope", json={"interval": 30}, headers=PATCH)
        after = (await client.get(url)).json()
    assert (created.status_code, taken.status_code, read.status_code) == (201, 409, 200)
    assert taken.json() == {"code": 4, "message": "CheckConfig check_cpu already exists in namespace default"}
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["subscriptions"] == ["system", "health"]
    assert body["metadata"]["labels"] == {"team": "sre"}
    assert (body["command"], body["interval"]) == (CPU["command"], 60)  # what the patch did not name is kept
    assert patched.headers["ETag"] != read.headers["ETag"]
    assert (stale.status_code, unwanted.status_code) == (412, 412)
    assert (plain_json.status_code, plain_json.json()["message"]) == (
        415,
        "PATCH takes a JSON merge patch: Content-Type: application/merge-patch+json",
    )
    assert (renamed.status_code, renamed.json()["message"]) == (
        400,
        "metadata.name: cannot be changed by PATCH; use PUT",
    )
    assert (invalid.status_code, invalid.json()["message"].split(":")[0]) == (400, "spec.interval"), invalid.text
    assert missing.status_code == 404
    assert after == body  # none of the refused patches changed anything


async def test_every_kind_takes_flat_and_wrapped_bodies_and_says_what_it_dropped(tmp_path: Path) -> None:
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", "---\n"))
    wrapped_handler = {"type": "Handler", "api_version": "core/v2", "metadata": {"name": "file"},
                       "spec": {"type": "pipe", "command": "cat > /dev/null"}}  # fmt: skip
    wrapped_entity = {"type": "Entity", "api_version": "core/v2", "metadata": {"name": "router1"},
                      "spec": {"entity_class": "proxy", "subscriptions": ["snmp"]}}  # fmt: skip
    wrapped_silence = {"type": "Silenced", "api_version": "core/v2", "metadata": {},
                       "spec": {"check": "check_cpu", "reason": "maintenance"}}  # fmt: skip
    async with served(backend) as up:
        client = up.client
        answers = {
            "handler": await client.put(f"{NS}/handlers/file", json=wrapped_handler),
            "entity": await client.put(f"{NS}/entities/router1", json=wrapped_entity),
            "silence": await client.post(f"{NS}/silenced", json=wrapped_silence),
            "silence again": await client.post(f"{NS}/silenced", json=wrapped_silence),
            "wrong type": await client.put(f"{NS}/handlers/file", json={**wrapped_handler, "type": "Mutator"}),
            "typo": await client.put(f"{NS}/checks/check_cpu", json={**CPU, "intervall": 30, "stdin": False}),
            "roles": await client.get(f"{NS}/roles"),
        }
        handler = (await client.get(f"{NS}/handlers/file")).json()
        entity = (await client.get(f"{NS}/entities/router1")).json()
        silence = (await client.get(f"{NS}/silenced/*:check_cpu")).json()
        patched_entity = await client.patch(f"{NS}/entities/router1", json={"subscriptions": ["icmp"]},
                                            headers=PATCH)  # fmt: skip
        patched_silence = await client.patch(f"{NS}/silenced/*:check_cpu", json={"reason": "upgrade"},
                                             headers=PATCH)  # fmt: skip
    for what in ("handler", "entity", "silence", "typo"):
        assert answers[what].status_code == 201, (what, answers[what].text)
    assert (handler["type"], handler["command"]) == ("pipe", "cat > /dev/null")
    assert (entity["entity_class"], entity["subscriptions"]) == ("proxy", ["snmp"])
    assert (silence["check"], silence["reason"]) == ("check_cpu", "maintenance")
    assert answers["silence again"].status_code == 409  # a silence is named by what it silences
    assert (answers["wrong type"].status_code, answers["wrong type"].json()["message"]) == (
        400,
        "type: expected 'Handler' at this path, got 'Mutator'",
    )
    assert answers["typo"].headers["Warning"] == '299 - "unknown fields ignored: intervall"'
    assert answers["typo"].json()["interval"] == 60
    assert (answers["roles"].status_code, answers["roles"].json()) == (
        501,
        {"code": 1, "message": "pipeline does not support Sensu Go's Role resources"},
    )
    assert (patched_entity.status_code, patched_entity.json()["subscriptions"]) == (200, ["icmp"])
    assert (patched_silence.status_code, patched_silence.json()["reason"]) == (200, "upgrade")
    assert backend.metrics.registry.get_sample_value("pipeline_api_fields_ignored_total") == 1


async def test_the_sensu_go_client_creates_reads_updates_and_deletes_every_kind(tmp_path: Path) -> None:
    """The real ``sensu-go`` PyPI client's CRUD (it creates by GET then PUT, and updates by GET,
    change, PUT of the whole resource) on each kind pipeline has."""
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", "---\n"))
    specs: dict[str, dict[str, Any]] = {
        "handlers": {"type": "pipe", "command": "cat"},
        "hooks": {"command": "ps aux", "timeout": 10},
        "filters": {"action": "allow", "expressions": ["event.check.status != 0"]},
        "mutators": {"command": "cat"},
        "checks": {"command": "true", "interval": 60, "subscriptions": ["linux"], "handlers": ["thing"]},
        "entities": {"entity_class": "proxy", "subscriptions": ["snmp"]},
        "assets": {"url": "https://assets.example/check-disk.tar.gz", "sha512": "ab" * 64},
    }

    def drive(url: str, key: str) -> dict[str, Any]:
        client = sensu_go.Client(url, api_key=key)
        seen: dict[str, Any] = {}
        for collection, spec in specs.items():
            api = getattr(client, collection)
            api.create(spec=spec, metadata={"name": "thing", "namespace": "default", "labels": {"v": "1"}})
            thing = api.get("thing")
            thing.metadata["labels"]["v"] = "2"
            thing.save()
            seen[collection] = (api.get("thing").metadata["labels"], [t.metadata["name"] for t in api.list()])
        for collection in ("checks", "entities", "filters", "handlers", "hooks", "mutators", "assets"):
            getattr(client, collection).delete("thing")
            seen[f"{collection} left"] = [t.metadata["name"] for t in getattr(client, collection).list()]
        client.silences.create(spec={"check": "thing", "reason": "upgrade"}, metadata={"name": "*:thing"})
        silence = client.silences.get("*:thing")
        silence.spec["reason"] = "longer upgrade"
        silence.save()
        seen["silences"] = [(s.metadata["name"], s.spec["reason"]) for s in client.silences.list()]
        client.silences.delete("*:thing")
        seen["silences left"] = list(client.silences.list())
        for what, call in (("users", lambda: list(client.users.list())),
                           ("user", lambda: client.users.get("admin"))):  # fmt: skip
            try:
                call()
            except sensu_go.errors.ResponseError as exc:
                seen[what] = (exc.status, json.loads(exc.text)["message"])
        return seen

    async with served(backend, seconds=60) as up:
        seen = await trio.to_thread.run_sync(drive, up.addresses.api_url, up.api_key)
    for collection in specs:
        assert seen[collection] == ({"v": "2"}, ["thing"]), collection
        assert seen[f"{collection} left"] == [], collection
    assert seen["silences"] == [("*:thing", "longer upgrade")]
    assert seen["silences left"] == []
    assert seen["users"] == seen["user"] == (501, "pipeline does not support Sensu Go's User resources")


async def test_hooks_assigned_to_a_check_and_taken_off_as_sensu_documents(tmp_path: Path) -> None:
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", "---\n"))
    async with served(backend) as up:
        client = up.client
        for name in ("process_tree", "lsof"):
            hook = {"metadata": {"name": name}, "command": "ps aux", "timeout": 10}
            assert (await client.put(f"{NS}/hooks/{name}", json=hook)).status_code == 201
        assert (await client.put(f"{NS}/checks/check_cpu", json=CPU)).status_code == 201
        hooks = f"{NS}/checks/check_cpu/hooks/critical"
        assigned = await client.put(hooks, json={"critical": ["process_tree"]})  # the documentation's example
        again = await client.put(hooks, json={"critical": ["process_tree", "lsof"]})
        after_assign = (await client.get(f"{NS}/checks/check_cpu")).json()["check_hooks"]
        removed = await client.delete(f"{hooks}/hook/process_tree")
        removed_again = await client.delete(f"{hooks}/hook/process_tree")
        wrong_type = await client.put(hooks, json={"warning": ["lsof"]})
        bad_type = await client.put(f"{NS}/checks/check_cpu/hooks/sometimes", json={"sometimes": ["lsof"]})
        no_check = await client.put(f"{NS}/checks/nope/hooks/critical", json={"critical": ["lsof"]})
        after_remove = (await client.get(f"{NS}/checks/check_cpu")).json()["check_hooks"]
    assert (assigned.status_code, again.status_code) == (201, 201)
    assert after_assign == [{"critical": ["process_tree", "lsof"]}]
    assert (removed.status_code, removed_again.status_code) == (204, 404)
    assert removed_again.json()["message"] == "check check_cpu has no critical hook process_tree"
    assert (wrong_type.status_code, bad_type.status_code, no_check.status_code) == (400, 400, 404)
    assert bad_type.json()["message"].startswith("spec.check_hooks[1].sometimes: hook type must be")
    assert after_remove == [{"critical": ["lsof"]}]


async def test_if_match_and_if_none_match_rule_put_and_delete_too(tmp_path: Path) -> None:
    """A condition a client sends is acted on wherever it writes, not only on PATCH."""
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", "---\n"))
    async with served(backend) as up:
        client = up.client
        url = f"{NS}/checks/check_cpu"
        create_only = {"If-None-Match": "*"}
        created = await client.put(url, json=CPU, headers=create_only)
        again = await client.put(url, json=CPU, headers=create_only)
        tag = (await client.get(url)).headers["ETag"]
        over_read = await client.put(url, json={**CPU, "interval": 30}, headers={"If-Match": tag})
        over_stale = await client.put(url, json={**CPU, "interval": 90}, headers={"If-Match": tag})
        missing = await client.put(f"{NS}/checks/other", json={**CPU, "metadata": {"name": "other"}},
                                   headers={"If-Match": tag})  # fmt: skip
        delete_stale = await client.delete(url, headers={"If-Match": tag})
        interval = (await client.get(url)).json()["interval"]
        current = (await client.get(url)).headers["ETag"]
        delete_read = await client.delete(url, headers={"If-Match": current})
        entity = await client.put(f"{NS}/entities/router1", json={"metadata": {"name": "router1"}})
        entity_tag = (await client.get(f"{NS}/entities/router1")).headers["ETag"]
        entity_kept = await client.delete(f"{NS}/entities/router1", headers={"If-None-Match": entity_tag})
        entity_gone = await client.delete(f"{NS}/entities/router1", headers={"If-Match": entity_tag})
    assert (created.status_code, again.status_code) == (201, 412)
    assert (over_read.status_code, over_stale.status_code, missing.status_code) == (201, 412, 412)
    assert (delete_stale.status_code, interval) == (412, 30)  # the refused writes changed nothing
    assert delete_read.status_code == 204
    assert (entity.status_code, entity_kept.status_code, entity_gone.status_code) == (201, 412, 204)
