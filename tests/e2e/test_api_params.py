"""Hostile query parameters, unknown paths and methods, from outside over real sockets: every
answer a 4xx in Sensu Go's shape ``{"code", "message"}`` naming what was wrong, never a 500 or
Starlette's plain text, and the backend serves on."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.agent.agent import Agent
from pipeline.agent.settings import AgentConfig
from tests.support import admin_headers, loopback_backend, write_config

pytestmark = pytest.mark.e2e

TIMELINE = "/api/core/v2/namespaces/default/timeline"
#: What a timeline's ``since``/``until``/``limit``/``continue`` can be sent: numbers past every range,
#: other scripts' digits, signs, huge "ago" amounts, cursors out of int64.
NASTY_VALUES = ["99999999999999999999999", "99999999999999999999d", "9" * 5000, "²", "٣", "-5", "+5", "1e5", " 5 ",
                "999999999999999999999:1", "1:-99999999999999999999999", "1:²", ":", "1:", "0001-01-01T00:00:00+14:00",
                "9999-12-31T23:59:59+00:00", "0", "1h", "\x00", "%ff", ""]  # fmt: skip
VALUES = st.sampled_from(NASTY_VALUES) | st.text(max_size=30)
PARAMS = st.dictionaries(st.sampled_from(["since", "until", "limit", "continue", "entity", "type"]), VALUES, max_size=4)


def refused_by_name(response: httpx.Response) -> bool:
    body = response.json()
    return 400 <= response.status_code < 500 and set(body) == {"code", "message"} and bool(body["message"])


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(queries=st.lists(PARAMS, min_size=30, max_size=30))
async def test_timeline_parameters_are_answered_200_or_400_never_500(
    tmp_path: Path, queries: list[dict[str, str]]
) -> None:
    backend = loopback_backend(tmp_path / f"{id(queries)}", write_config(tmp_path / "config", ""))
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            url = (await nursery.start(backend.run)).api_url
            async with httpx.AsyncClient(base_url=url, headers=admin_headers(backend)) as client:
                for value in NASTY_VALUES:
                    for name in ("since", "until", "limit", "continue"):
                        answer = await client.get(TIMELINE, params={name: value})
                        assert answer.status_code == 200 or refused_by_name(answer), (name, value, answer.text[:200])
                for params in queries:
                    answer = await client.get(TIMELINE, params=params)
                    assert answer.status_code == 200 or refused_by_name(answer), (params, answer.text[:200])
                assert (await client.get("/health")).status_code == 200
            nursery.cancel_scope.cancel()


async def test_a_time_past_every_range_is_named(tmp_path: Path) -> None:
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", ""))
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            url = (await nursery.start(backend.run)).api_url
            async with httpx.AsyncClient(base_url=url, headers=admin_headers(backend)) as client:
                huge = await client.get(TIMELINE, params={"since": "99999999999999999999999"})
                digit = await client.get(TIMELINE, params={"until": "²"})
                cursor = await client.get(TIMELINE, params={"continue": "999999999999999999999:1"})
                long_ago = await client.get(TIMELINE, params={"since": "99999999999999999999d"})
            nursery.cancel_scope.cancel()
    assert huge.status_code == 400
    assert huge.json()["message"].startswith("since: '99999999999999999999999' is out of range (0..253402300799)")
    assert digit.status_code == 400
    assert digit.json()["message"].startswith("until: '²' is not a time")
    assert cursor.status_code == 400
    assert "continue" in cursor.json()["message"]
    assert long_ago.status_code == 400
    assert long_ago.json()["message"].startswith("since: '99999999999999999999d' is out of range")


async def test_unknown_paths_and_methods_are_answered_in_sensus_shape(tmp_path: Path) -> None:
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", ""))
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(backend.run)
            agent = Agent(AgentConfig(name="web1", backend_addrs=[addresses.transport], api_addr=("127.0.0.1", 0),
                                      socket_addr=None, data_dir=tmp_path / "agent"))  # fmt: skip
            started = await nursery.start(agent.run)
            agent_url = "http://{}:{}".format(*started.api)
            answers = {}
            async with httpx.AsyncClient(base_url=addresses.api_url, headers=admin_headers(backend)) as client:
                answers["backend 404"] = await client.get("/api/core/v2/nothing/here")
                answers["backend 405"] = await client.patch("/api/core/v2/namespaces/default/events")
            async with httpx.AsyncClient(base_url=agent_url) as client:
                answers["agent 404"] = await client.get("/nothing")
                answers["agent 405"] = await client.delete("/events")
                answers["agent limit"] = await client.get("/events/set-aside", params={"limit": "²"})
            nursery.cancel_scope.cancel()
    for name, answer in answers.items():
        assert refused_by_name(answer), (name, answer.status_code, answer.text)
    assert answers["backend 404"].status_code == 404
    assert answers["backend 405"].json() == {
        "code": 2,
        "message": "method PATCH not allowed on /api/core/v2/namespaces/default/events",
    }
    assert answers["agent limit"].json()["message"] == "limit: expected 1 to 1000, got '²'"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "expected a mapping with role and name"),
        ({"role": "ingest", "nmae": "typo"}, "nmae: unknown field (expected role, name)"),
        ({"role": "root"}, "role: expected one of admin, ingest, viewer, got 'root'"),
        ({"name": 5}, "name: expected a string, got int"),
        ({"name": "x" * 257}, "name: expected at most 256 printable characters"),
        ({"name": "ci\x1b[2J"}, "name: expected at most 256 printable characters"),
    ],
)
async def test_a_key_request_that_is_not_exactly_role_and_name_is_refused_by_name(
    tmp_path: Path, body: object, message: str
) -> None:
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", ""))
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            url = (await nursery.start(backend.run)).api_url
            async with httpx.AsyncClient(base_url=url, headers=admin_headers(backend)) as client:
                refused = await client.post("/api/pipeline/v1/keys", json=body)
                listed = await client.get("/api/pipeline/v1/keys")
            nursery.cancel_scope.cancel()
    assert refused.status_code == 400
    assert refused.json() == {"code": 2, "message": message}
    assert listed.json() == []
