"""Say no or do it, for query parameters: every route of the backend's and the agent's API answers
a parameter it does not take with 400 naming it (and what it takes), counted, before the endpoint
runs; the push formats, other products' wire formats, take any. The routes are read from the
running apps, so a route added without a declaration is tested (and refused) here at once."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
import trio
from starlette.applications import Starlette
from starlette.routing import Match, Route

from pipeline.agent.agent import Agent
from pipeline.agent.settings import AgentConfig
from pipeline.http_params import ANY, declared
from tests.support import admin_headers, loopback_backend, write_config

pytestmark = pytest.mark.e2e

NS = "/api/core/v2/namespaces/default"
UNKNOWN = "zz_unknown"
CONFIG = """\
type: CheckConfig
api_version: core/v2
metadata: {name: disk}
spec: {command: "true", interval: 60, subscriptions: [linux]}
"""
#: A value for each path parameter, chosen so that each URL reaches its own route (checked below).
DUMMIES = {"namespace": "default", "kind": "checks", "name": "disk", "check": "disk", "entity": "web1",
           "type": "critical", "hook": "h1", "id": "x1", "token": "tok", "subscription": "linux"}  # fmt: skip


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: DUMMIES.get(m.group(1), "dummy"), path)


def routes_of(app: Starlette) -> list[tuple[Route, str, str]]:
    """Every (route, method, URL) of ``app``, each URL checked to reach that very route."""
    found = []
    for route in app.routes:
        assert isinstance(route, Route), route
        for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
            url = concrete(route.path)
            scope = {"type": "http", "path": url, "method": method, "root_path": ""}
            first = next(r for r in app.routes if r.matches(scope)[0] is Match.FULL)
            assert first is route, f"{method} {url} reaches {first}, not {route.path}: add a dummy to DUMMIES"
            found.append((route, method, url))
    return found


def expected_refusal(route: Route) -> dict[str, object]:
    takes = declared(route.endpoint)
    allowed = f"this path takes: {', '.join(takes)}" if takes else "this path takes none"
    return {"code": 2, "message": f"{UNKNOWN}: unknown query parameter ({allowed})"}


async def test_every_backend_route_refuses_a_parameter_it_does_not_take(tmp_path: Path) -> None:
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", CONFIG))
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            url = (await nursery.start(backend.run)).api_url
            assert backend.api_app is not None
            async with httpx.AsyncClient(base_url=url, headers=admin_headers(backend)) as client:
                web1 = {"metadata": {"name": "web1"}, "entity_class": "proxy"}
                assert (await client.put(f"{NS}/entities/web1", json=web1)).status_code == 201
                answers = [(route, method, target, await client.request(method, target, params={UNKNOWN: "1"}))
                           for route, method, target in routes_of(backend.api_app)]  # fmt: skip
                # nothing a refused request asked for was done
                still = [await client.get(f"{NS}/entities/web1"), await client.get(f"{NS}/checks/disk")]
                metrics = (await client.get("/metrics")).text
            nursery.cancel_scope.cancel()
    refused = 0
    for route, method, target, answer in answers:
        if declared(route.endpoint) == ANY:
            assert UNKNOWN not in answer.text, (method, target, answer.text)
            continue
        assert (answer.status_code, answer.json()) == (400, expected_refusal(route)), (method, target, answer.text)
        refused += 1
    push = [route.path for route, _, _, _ in answers if declared(route.endpoint) == ANY]
    assert sorted(push) == ["/receiver/stsAgent/intake", "/stsAgent/intake", "/{token}/event", "/{token}/events"]
    assert refused > 50  # every route of every family, each method
    assert [answer.status_code for answer in still] == [200, 200]
    timeline = f'pipeline_api_unknown_parameters_total{{path="{NS.replace("default", "{namespace}")}/timeline"}} 1.0'
    assert timeline in metrics


async def test_each_route_still_takes_what_it_documents(tmp_path: Path) -> None:
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", CONFIG), ingest_keys=["ingest-key-1"])
    events = [{"entity": {"metadata": {"name": name}}, "check": {"metadata": {"name": "disk"}, "status": status}}
              for name, status in (("web1", 0), ("web2", 2))]  # fmt: skip
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            url = (await nursery.start(backend.run)).api_url
            async with httpx.AsyncClient(base_url=url, headers=admin_headers(backend)) as client:
                for event in events:
                    assert (await client.post(f"{NS}/events", json=event)).status_code == 201
                only_web1 = await client.get(f"{NS}/timeline", params={"entity": "web1", "since": "1h", "limit": "10"})
                misspelt = await client.get(f"{NS}/timeline", params={"entitty": "web1"})
                health = await client.get("/health", params={"timeout": "3"})
                paged = await client.get(f"{NS}/events", params={"limit": "1"})
                intake = {"events": {}, "internalHostname": "web3", "collection_timestamp": 1}
                pushed = await client.post("/stsAgent/intake", params={"api_key": "ingest-key-1", "lang": "go"},
                                           json=intake)  # fmt: skip
            nursery.cancel_scope.cancel()
    assert only_web1.status_code == 200, only_web1.text
    assert {e["entity"]["metadata"]["name"] for e in only_web1.json()} == {"web1"}
    assert (misspelt.status_code, misspelt.json()) == (400, {"code": 2, "message": (
        "entitty: unknown query parameter (this path takes: since, until, entity, type, limit, continue)")})  # fmt: skip
    assert health.status_code == 200, health.text
    assert (paged.status_code, len(paged.json()), bool(paged.headers.get("Sensu-Continue"))) == (200, 1, True)
    assert pushed.status_code == 200, pushed.text  # a parameter of StackState's agent that pipeline does not read


async def test_every_agent_route_refuses_a_parameter_it_does_not_take(tmp_path: Path) -> None:
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", "---\n"))
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(backend.run)
            agent = Agent(AgentConfig(name="web1", backend_addrs=[addresses.transport], api_addr=("127.0.0.1", 0),
                                      socket_addr=None, data_dir=tmp_path / "agent"))  # fmt: skip
            started = await nursery.start(agent.run)
            assert agent.api_app is not None
            async with httpx.AsyncClient(base_url="http://{}:{}".format(*started.api)) as client:
                answers = [(route, method, target, await client.request(method, target, params={UNKNOWN: "1"}))
                           for route, method, target in routes_of(agent.api_app)]  # fmt: skip
                dry_run = await client.post("/events", params={"dry_run": "1"},
                                            json={"check": {"metadata": {"name": "cron"}, "status": 2}})  # fmt: skip
                limited = await client.get("/events/set-aside", params={"limit": "5"})
                metrics = (await client.get("/metrics")).text
            nursery.cancel_scope.cancel()
    assert sorted((route.path, method) for route, method, _, _ in answers) == [
        ("/events", "POST"),
        ("/events/set-aside", "GET"),
        ("/healthz", "GET"),
        ("/metrics", "GET"),
        ("/version", "GET"),
    ]
    for route, method, target, answer in answers:
        assert (answer.status_code, answer.json()) == (400, expected_refusal(route)), (method, target, answer.text)
    assert (dry_run.status_code, dry_run.json()["message"]) == (
        400,
        "dry_run: unknown query parameter (this path takes none)",
    )
    assert (limited.status_code, limited.json()) == (200, [])
    assert 'pipeline_agent_api_unknown_parameters_total{path="/events"} 2.0' in metrics
