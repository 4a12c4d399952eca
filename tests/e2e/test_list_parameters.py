"""Sensu Go's list parameters on every list: selectors narrow, limit and continue page with the
Sensu-Continue header, and nothing is ignored (a malformed or unknown parameter is 400 naming it)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import sensu_go
import trio
from sensu_go.clients.resource.operator import Equal, In

from tests.support import admin_headers, loopback_backend, served, write_config

pytestmark = pytest.mark.e2e

NS = "/api/core/v2/namespaces/default"


def check(name: str, team: str) -> dict[str, object]:
    return {"metadata": {"name": name, "labels": {"team": team}}, "command": "true", "interval": 60,
            "subscriptions": ["linux"]}  # fmt: skip


async def test_checks_listed_by_selector_and_page_and_everything_else_refused(tmp_path: Path) -> None:
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", "---\n"))
    async with served(backend) as up:
        client = up.client
        for name, team in [("disk", "ops"), ("load", "dev"), ("cpu", "ops"), ("swap", "ops")]:
            assert (await client.post(f"{NS}/checks", json=check(name, team))).status_code == 201

        async def names(**params: str) -> tuple[list[str], str | None]:
            response = await client.get(f"{NS}/checks", params=params)
            assert response.status_code == 200, response.text
            return [c["metadata"]["name"] for c in response.json()], response.headers.get("Sensu-Continue")

        ops = await names(labelSelector="team == ops")
        by_field = await names(fieldSelector="check.name in [disk, load]")
        both = await names(labelSelector="team == ops", fieldSelector="check.name != disk")
        first = await names(limit="2")
        assert first[1] is not None
        rest = await names(limit="2", **{"continue": first[1]})
        filtered_page = await names(labelSelector="team == ops", limit="2")
        refusals = {what: await client.get(f"{NS}/checks", params=params) for what, params in {
            "labelSelector": {"labelSelector": "team ="},
            "fieldSelector": {"fieldSelector": "check.nmae == disk"},
            "limit": {"limit": "-1"},
            "continue": {"continue": "not-a-token"},
            "labelselector": {"labelselector": "team == ops"},  # a misspelt parameter is not ignored
        }.items()}  # fmt: skip
        events = await client.get(f"{NS}/events", params={"fieldSelector": "event.check.status == '2'"})
        letters = {what: await client.get("/api/pipeline/v1/deadletters", params={what: "1"})
                   for what in ("limit", "labelSelector", "limt")}  # fmt: skip
    assert ops == (["cpu", "disk", "swap"], None)
    assert by_field == (["disk", "load"], None)
    assert both == (["cpu", "swap"], None)
    assert first[0] == ["cpu", "disk"]
    assert rest == (["load", "swap"], None)
    assert filtered_page[0] == ["cpu", "disk"]
    assert filtered_page[1] is not None
    for what, response in refusals.items():
        assert response.status_code == 400, (what, response.text)
        assert response.json()["message"].startswith(what), (what, response.text)
    assert (events.status_code, events.json()) == (200, [])
    assert (letters["limit"].status_code, letters["limit"].json()) == (200, [])  # dead letters page too
    for what in ("labelSelector", "limt"):  # no selectors there, and no parameter is ignored
        assert letters[what].status_code == 400, letters[what].text
        assert letters[what].json()["message"].startswith(what)


async def test_the_sensu_go_client_lists_pages_and_deletes_only_what_its_selector_names(tmp_path: Path) -> None:
    """The real ``sensu-go`` PyPI client: its label and field selectors (bare numbers, quoted
    strings, sets), its paging by ``Sensu-Continue`` at 100 a page, and its bulk delete of a
    filtered list, which once deleted every check."""
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", "---\n"))
    teams = {f"c{i:03}": ("ops" if i % 3 == 0 else "dev") for i in range(150)}
    failing = {"entity": {"metadata": {"name": "db1"}}, "check": {"metadata": {"name": "backup"}, "status": 2}}

    def drive(url: str, key: str) -> dict[str, object]:
        client = sensu_go.Client(url, api_key=key)
        seen = {"all": sorted(c.metadata["name"] for c in client.checks.list())}
        seen["ops"] = sorted(c.metadata["name"] for c in client.checks.list(label_selector=Equal("team", "ops")))
        named = client.checks.list(field_selector=In("name", ["c001", "c002"]))
        seen["named"] = sorted(c.metadata["name"] for c in named)
        status = client.events.list(field_selector=Equal("check.status", 2))
        seen["failing"] = [e.spec["check"]["metadata"]["name"] for e in status]
        client.checks.list(label_selector=Equal("team", "ops")).delete()
        seen["left"] = sorted(c.metadata["name"] for c in client.checks.list())
        return seen

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(backend.run)
            async with httpx.AsyncClient(base_url=addresses.api_url, headers=admin_headers(backend)) as client:
                for name, team in teams.items():
                    assert (await client.post(f"{NS}/checks", json=check(name, team))).status_code == 201
                assert (await client.post(f"{NS}/events", json=failing)).status_code == 201
            key = admin_headers(backend)["Authorization"].removeprefix("Key ")
            seen = await trio.to_thread.run_sync(drive, addresses.api_url, key)
            nursery.cancel_scope.cancel()
    ops = sorted(name for name, team in teams.items() if team == "ops")
    assert seen["all"] == sorted(teams)  # 150 checks over two pages of the client's 100
    assert seen["ops"] == ops
    assert seen["named"] == ["c001", "c002"]
    assert seen["failing"] == ["backup"]
    assert seen["left"] == sorted(name for name, team in teams.items() if team == "dev")


async def test_lists_across_namespaces_at_the_kinds_own_path(tmp_path: Path) -> None:
    """``/api/core/v2/{kind}`` lists every namespace's resources, with the same parameters."""
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", "---\n"))
    async with served(backend) as up:
        client = up.client
        assert (await client.put("/api/core/v2/namespaces/staging", json={"name": "staging"})).status_code == 201
        for namespace in ("default", "staging"):
            base = f"/api/core/v2/namespaces/{namespace}"
            assert (await client.put(f"{base}/checks/disk", json=check("disk", "ops"))).status_code == 201
            entity = {"metadata": {"name": f"router-{namespace}"}}
            assert (await client.post(f"{base}/entities", json=entity)).status_code == 201
            silence = {"check": "disk", "reason": namespace}
            assert (await client.post(f"{base}/silenced", json=silence)).status_code == 201
        found = {kind: (await client.get(f"/api/core/v2/{kind}")).json()
                 for kind in ("checks", "entities", "silenced")}  # fmt: skip
        staging = await client.get("/api/core/v2/checks", params={"fieldSelector": "check.namespace == staging"})
        unknown = await client.get("/api/core/v2/chekcs")
    for kind, items in found.items():
        assert sorted(i["metadata"]["namespace"] for i in items) == ["default", "staging"], kind
    assert [c["metadata"]["namespace"] for c in staging.json()] == ["staging"]
    assert unknown.status_code == 404
