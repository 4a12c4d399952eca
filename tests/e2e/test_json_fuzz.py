"""Well- and badly-formed JSON bodies, posted over real sockets to the backend's events API and
the agent's local API: every answer is a 2xx or a 4xx naming the problem, never a 500, and the
daemons answer the next request. (Before the strict loader, about one fuzzed input in twenty
got a 500, and deep nesting stopped the agent.)"""

from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from pipeline.agent.api import create_agent_app
from pipeline.http import serve_app
from pipeline.model import Entity, Event, ObjectMeta
from tests.support import admin_headers, loopback_backend, write_config

pytestmark = pytest.mark.e2e

EVENTS = "/api/core/v2/namespaces/default/events"
EVENT: dict[str, Any] = {
    "entity": {"metadata": {"name": "web1", "labels": {"team": "ops"}}},
    "check": {"metadata": {"name": "disk"}, "status": 1, "output": "ok", "interval": 60, "duration": 0.5},
}
#: Values that broke the parsers, as JSON text; spliced in where a value goes.
NASTY = st.sampled_from(['{"a":' * 10_000 + "1" + "}" * 10_000, "[" * 5000, '"\\ud800"', '"\\udc00x"', "NaN",
                         "Infinity", "-Infinity", "1e999", "-1e999", "1" + "0" * 5000, "1" + "0" * 400, "[]", "{}",
                         "null", "true", '"x"', "0.1", "-0", '"\\u0000"', '"' + "x" * 2000 + '"'])  # fmt: skip
#: Ordinary JSON values, integers of any size among them (the model refuses those out of a field's range).
PLAIN = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
).map(json.dumps)  # fmt: skip
PATHS = st.sampled_from([("check", "status"), ("check", "output"), ("check", "interval"), ("check", "duration"),
                         ("entity", "metadata", "labels", "team"), ("entity", "metadata", "name"), ("check",),
                         ("timestamp",), ("metrics",), ("check", "annotations"), ("extra",)])  # fmt: skip


def spliced(path: tuple[str, ...], value: str) -> bytes:
    event = json.loads(json.dumps(EVENT))
    node = event
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = "@@VALUE@@"
    return json.dumps(event).replace('"@@VALUE@@"', value).encode()


BODIES = (
    st.builds(spliced, PATHS, NASTY | PLAIN)
    | st.builds(lambda body, cut: body[:cut], st.builds(spliced, PATHS, PLAIN), st.integers(0, 200))
    | st.binary(max_size=100)
    | st.builds(lambda head, junk: head + junk, st.just(b'{"check": {"output": "'), st.binary(max_size=10))
)


def accepted_or_refused(response: httpx.Response) -> bool:
    if response.status_code < 300:
        return True
    body = response.json()
    return 400 <= response.status_code < 500 and body["code"] == 2 and bool(body["message"])


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bodies=st.lists(BODIES, min_size=40, max_size=40))
async def test_no_body_gets_a_500_or_stops_a_daemon(bodies: list[bytes]) -> None:
    received: list[Event] = []

    async def submit(event: Event) -> None:
        event.to_json()  # what the agent's spool and transport do with it must work
        received.append(event)

    agent = Entity(entity_class="agent", metadata=ObjectMeta(name="web1", namespace="default"))
    agent_app = create_agent_app(CollectorRegistry(), lambda: True, submit, agent)
    with tempfile.TemporaryDirectory() as tmp, trio.fail_after(60):
        backend = loopback_backend(Path(tmp), write_config(Path(tmp) / "config", ""))
        async with trio.open_nursery() as nursery:
            url = (await nursery.start(backend.run)).api_url
            agent_address = await nursery.start(functools.partial(serve_app, agent_app, ("127.0.0.1", 0)))
            async with (
                httpx.AsyncClient(base_url=url, headers=admin_headers(backend)) as api,
                httpx.AsyncClient(base_url="http://{}:{}".format(*agent_address)) as local,
            ):
                for body in bodies:
                    answer = await api.post(EVENTS, content=body)
                    assert accepted_or_refused(answer), (body[:200], answer.status_code, answer.text[:200])
                    answer = await local.post("/events", content=body)
                    assert accepted_or_refused(answer), (body[:200], answer.status_code, answer.text[:200])
                assert (await api.get("/health")).status_code == 200
                assert (await local.get("/healthz")).status_code == 200
            nursery.cancel_scope.cancel()
    errors = backend.metrics.registry.get_sample_value
    assert not errors("pipeline_http_errors_total", {"reason": "app_error"})
    assert not errors("pipeline_http_errors_total", {"reason": "internal"})
