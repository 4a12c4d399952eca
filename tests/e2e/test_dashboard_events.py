"""The dashboard's event and entity pages against a real backend: what an operator reads on them
after a real pipe handler ran, a deploy was pushed the Sematext way, and a real agent flushed
StatsD points; and the two JSON endpoints behind them."""

from __future__ import annotations

import html
import re
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from pipeline.agent.agent import Agent
from pipeline.agent.settings import AgentConfig
from pipeline.agent.statsd import StatsdConfig
from pipeline.backend.dashboard.sessions import COOKIE
from pipeline.backend.server import Backend
from tests.support import EVENT_FILE_HANDLER, EventPipe, capture_handler, loopback_backend, served, write_config

pytestmark = pytest.mark.e2e

TOKEN = "5e1d-ingest"
OUTPUT = "<script>alert('pwned')</script>\nHTTP CRITICAL: 503 Service Unavailable"


def config(tmp_path: Path, pipe: Path) -> Path:
    return write_config(tmp_path / "config", f"""
        type: Handler
        api_version: core/v2
        metadata: {{name: notify}}
        spec: {{type: pipe, command: "{EVENT_FILE_HANDLER} {pipe}", timeout: 10, filters: [is_incident]}}
        ---
        type: Handler
        api_version: core/v2
        metadata: {{name: never}}
        spec: {{type: pipe, command: cat, filters: [not-web]}}
        ---
        type: EventFilter
        api_version: core/v2
        metadata: {{name: not-web}}
        spec: {{action: deny, expressions: ["event.entity.name.indexOf('web') === 0"]}}
        ---
        type: Handler
        api_version: core/v2
        metadata: {{name: broken}}
        spec: {{type: pipe, command: "echo 'Traceback (most recent call last):'; echo 'KeyError: pager' >&2; exit 1",
                max_attempts: 1}}
        """)  # fmt: skip


def session(client: httpx.AsyncClient, backend: Backend, role: str = "admin") -> httpx.AsyncClient:
    """A browser logged in to the dashboard (no API key: only the session cookie)."""
    sid = backend.dashboard.sessions.open("operator", role, time.time())
    return httpx.AsyncClient(base_url=str(client.base_url), cookies={COOKIE: sid})


def check_event(now: int) -> dict[str, Any]:
    return {"entity": {"entity_class": "proxy", "metadata": {"name": "web1", "namespace": "default"}},
            "check": {"metadata": {"name": "http", "namespace": "default"}, "status": 2, "output": OUTPUT,
                      "executed": now, "interval": 60, "handlers": ["notify", "never", "broken"]},
            # the perfdata an agent extracts from the output ("time=0.25s")
            "metrics": {"points": [{"name": "http.time", "value": 0.25, "timestamp": now, "tags": []}]}}  # fmt: skip


async def test_the_event_page_shows_output_escaped_what_the_pipeline_did_and_the_deploy_before_it(
    tmp_path: Path,
) -> None:
    pipe = EventPipe(tmp_path / "events.fifo")
    backend = loopback_backend(tmp_path, config(tmp_path, pipe.path), ingest_keys=[TOKEN])
    async with served(backend, seconds=60) as api:
        deploy = await api.client.post(f"/{TOKEN}/event", content=b'{"message": "shop 1.4.2 deployed", '
                                       b'"type": "deployment", "host": "web1", "tags": ["env:prod"]}')  # fmt: skip
        assert deploy.status_code == 201
        posted = await api.client.post("/api/core/v2/namespaces/default/events", json=check_event(int(time.time())))
        assert posted.status_code == 201
        handled = await pipe.next_matching(lambda e: e["check"]["metadata"]["name"] == "http")
        with trio.fail_after(20):
            await backend.handlers.drain()  # the other workflows' attempts are recorded too
        async with session(api.client, backend) as browser, httpx.AsyncClient(base_url=browser.base_url) as stranger:
            page = await browser.get("/events/default/web1/http")
            anonymous = await stranger.get("/events/default/web1/http")
            missing = await browser.get("/events/default/web1/nope")
            refused = await browser.get("/events/default/web1/http", params={"verbose": "1"})
            unkeyed = await stranger.get(f"/api/pipeline/v1/events/{handled['id']}/trace")
        trace = await api.client.get(f"/api/pipeline/v1/events/{handled['id']}/trace")
        unknown = await api.client.get("/api/pipeline/v1/events/0b7f6d8e-0000-4000-8000-000000000000/trace")
    await pipe.aclose()
    assert page.status_code == 200
    body = page.text
    # the output is text: the script tag is shown, never run
    assert "<script>alert" not in body
    assert html.escape("<script>alert('pwned')</script>", quote=True) in body or (
        "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;" in body
    )
    assert "HTTP CRITICAL: 503 Service Unavailable" in body
    assert re.search(r'<ol class="history"[^>]*>\s*<li class="status-critical"', body)
    assert 'class="occurrences">1 (highest: 1)' in body
    assert re.search(r'<td>http.time</td>.*?<td class="latest">0.25</td>', body, re.S)
    # what the pipeline did: each filter's verdict, the handler's result, the dead letter
    pipeline_part = body[body.index('id="pipeline"') : body.index('id="changes"')]
    assert re.search(r"Filter is_incident</th><td class=\"verdict-passed\">passed", pipeline_part)
    assert re.search(r"Filter not-web</th><td class=\"verdict-filtered\">filtered", pipeline_part)
    assert re.search(r"Handler notify, attempt 1</th>\s*<td>ok", pipeline_part)
    assert re.search(r"Handler broken, attempt 1</th>\s*<td>failed \(exit_status\)", pipeline_part)
    assert "KeyError: pager" in pipeline_part  # the end of the output, where the exception is named
    assert "gave up after 1 attempts" in pipeline_part
    # what changed before it: the deploy pushed a moment before, linked to its page and the timeline
    changes = body[body.index('id="changes"') :]
    assert "shop 1.4.2 deployed" in changes
    assert 'href="/events/default/web1/deployment"' in changes
    assert 'href="/timeline?entity=web1&amp;since=' in changes
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/login?next=")
    assert missing.status_code == 404
    assert refused.status_code == 400
    assert "verbose" in refused.text
    # the same trace as JSON, behind the API's key
    assert trace.status_code == 200
    workflows = {w["handler"]: w for w in trace.json()["trace"]["workflows"]}
    assert workflows["notify"]["outcome"] == "handled"
    assert [f["verdict"] for f in workflows["never"]["filters"]] == ["filtered"]
    assert workflows["broken"]["dead_letter"] == trace.json()["dead_letters"][0]["id"]
    assert unkeyed.status_code == 401
    assert unknown.status_code == 404
    assert "the last 2000 events" in unknown.json()["message"]


async def test_entities_show_keepalive_state_and_the_latest_statsd_values_with_a_sparkline(tmp_path: Path) -> None:
    pipe = EventPipe(tmp_path / "events.fifo")
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", capture_handler(pipe.path)))
    statsd = StatsdConfig(addr=("127.0.0.1", 0), flush_interval=0.2, event_handlers=["capture"])

    async def gauge_flushed(value: float) -> None:
        await pipe.next_matching(lambda e: any(p["name"] == "stats.gauges.queue" and p["value"] == value
                                               for p in e.get("metrics", {}).get("points", [])))  # fmt: skip

    async with served(backend, seconds=60) as api, trio.open_nursery() as nursery:
        agent = Agent(AgentConfig(name="web1", backend_addrs=[api.addresses.transport], api_addr=None,
                                  statsd=statsd, subscriptions=["linux"]))  # fmt: skip
        started = await nursery.start(agent.run)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.sendto(b"queue:333|g", started.statsd)
            await gauge_flushed(333)
            client.sendto(b"queue:444|g", started.statsd)
            await gauge_flushed(444)
        async with session(api.client, backend, role="viewer") as browser:
            listing = await browser.get("/entities", params={"class": "agent"})
            proxies = await browser.get("/entities", params={"class": "proxy"})
            bad_page = await browser.get("/entities", params={"page": "x"})
            entity = await browser.get("/entities/default/web1")
        metrics = await api.client.get("/api/pipeline/v1/entities/default/web1/metrics")
        nursery.cancel_scope.cancel()
    await pipe.aclose()
    assert listing.status_code == 200
    assert 'href="/entities/default/web1"' in listing.text
    assert re.search(r"<td>linux</td>", listing.text)
    assert '<span class="badge status-ok">OK</span>' in listing.text  # its keepalive
    assert "web1" not in proxies.text.split("<tbody>")[1]
    assert bad_page.status_code == 400
    assert "page" in bad_page.text
    assert entity.status_code == 200
    row = re.search(r'<tr class="series">\s*<td>stats.gauges.queue</td>(.*?)</tr>', entity.text, re.S)
    assert row is not None
    assert '<td class="latest">444</td>' in row.group(1)
    assert re.search(r'<svg class="spark"[^>]*><polyline points="[0-9.]+,[0-9.]+ [0-9., ]+"/></svg>', row.group(1))
    assert "metrics only (StatsD)" in row.group(1)
    assert 'href="/events/default/web1/keepalive"' in entity.text
    series = {s["name"]: s for s in metrics.json()["series"]}
    assert series["stats.gauges.queue"]["latest"]["value"] == 444
    values = [v for _, v in series["stats.gauges.queue"]["points"]]  # each flush re-sends the gauge
    assert values[-1] == 444
    assert 333 in values
    assert metrics.json()["window"] == {"points_per_series": 60, "seconds": 3600, "series_per_entity": 200,
                                        "series_total": 10_000}  # fmt: skip


async def test_pages_show_times_past_what_a_calendar_holds(tmp_path: Path) -> None:
    """``executed`` and a silence's ``expire_at`` may be any int64: the event, its entity and the
    entities page show such a time as its number, not an error page."""
    last = 2**63 - 1
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", "---\n"))
    async with served(backend, seconds=30) as api:
        silence = {"metadata": {"name": "entity:web1:*"}, "subscription": "entity:web1", "expire": 2**62}
        assert (await api.client.post("/api/core/v2/namespaces/default/silenced", json=silence)).status_code == 201
        late = {"entity": {"metadata": {"name": "web1"}},
                "check": {"metadata": {"name": "late"}, "status": 2, "executed": last}}  # fmt: skip
        assert (await api.client.post("/api/core/v2/namespaces/default/events", json=late)).status_code == 201
        async with session(api.client, backend) as browser:
            pages = {path: await browser.get(path) for path in
                     ("/events/default/web1/late", "/entities/default/web1", "/entities")}  # fmt: skip
    for path, page in pages.items():
        assert page.status_code == 200, (path, page.text[-500:])
    assert f"{last} (epoch seconds)" in pages["/events/default/web1/late"].text
    assert "(epoch seconds)" in pages["/entities/default/web1"].text
