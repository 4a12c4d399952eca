"""``pipeline event resolve|delete`` and ``pipeline entity info|delete`` against a running
backend, as real subprocesses: each prints one line, and on a refusal exits 1 with the API's
message. A resolve is a new OK result through the check's handlers, as sensuctl's is."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import trio

from tests.e2e.test_events_api import config
from tests.support import EventPipe, admin_headers, loopback_backend, pipeline_command

pytestmark = pytest.mark.e2e

NS = "/api/core/v2/namespaces/default"


async def test_resolve_delete_and_entity_commands(tmp_path: Path) -> None:
    pipe = EventPipe(tmp_path / "events.pipe")
    backend = loopback_backend(tmp_path, config(tmp_path, pipe.path))
    failing = {"check": {"metadata": {"name": "bgp"}, "status": 2, "output": "peer down", "handlers": ["capture"]}}
    results: dict[str, tuple[int, str, str]] = {}
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            url = (await nursery.start(backend.run)).api_url
            flags = ("--api-url", url, "--data", str(tmp_path / "data"))

            async def pipeline(name: str, *args: str) -> None:
                done = await trio.run_process(pipeline_command(*args, *flags), capture_stdout=True,
                                              capture_stderr=True, check=False)  # fmt: skip
                results[name] = (done.returncode, done.stdout.decode(), done.stderr.decode())

            async with httpx.AsyncClient(base_url=url, headers=admin_headers(backend)) as client:
                assert (await client.put(f"{NS}/events/router1/bgp", json=failing)).status_code == 201
            incident = await pipe.next_event()
            await pipeline("resolve", "event", "resolve", "router1", "bgp")
            resolution = await pipe.next_event()
            await pipeline("info", "entity", "info", "router1")
            await pipeline("list", "entity", "list")
            await pipeline("other namespace", "entity", "info", "router1", "--namespace", "lab")
            await pipeline("resolve unknown", "event", "resolve", "router1", "ospf")
            await pipeline("delete", "event", "delete", "router1", "bgp")
            await pipeline("delete again", "event", "delete", "router1", "bgp")
            # names the API could not hold are asked about as they are, never as another path
            await pipeline("hash", "entity", "info", "router1#x")
            await pipeline("query", "event", "info", "router1", "bgp?x=1")
            await pipeline("slash", "event", "delete", "router1/bgp", "x")
            await pipeline("empty", "entity", "delete", "")
            await pipeline("entity delete", "entity", "delete", "router1")
            await pipeline("entity delete again", "entity", "delete", "router1")
            nursery.cancel_scope.cancel()
    await pipe.aclose()
    assert results["resolve"] == (0, "Resolved\n", "")
    assert incident["check"]["status"] == 2
    assert (resolution["check"]["status"], resolution["check"]["output"]) == (0, "Resolved manually by pipeline")
    assert [h["status"] for h in resolution["check"]["history"]] == [2, 0]
    code, out, _ = results["info"]
    assert code == 0
    assert json.loads(out)["entity_class"] == "proxy"
    assert json.loads(out)["metadata"] == {"name": "router1", "namespace": "default"}
    code, out, _ = results["list"]
    assert code == 0
    assert out.splitlines()[2].split()[:2] == ["router1", "proxy"]
    assert results["other namespace"] == (1, "", "pipeline: entity router1 not found in namespace lab\n")
    assert results["resolve unknown"] == (1, "", "pipeline: event router1/ospf not found in namespace default\n")
    assert results["delete"] == (0, "Deleted\n", "")
    assert results["delete again"] == (1, "", "pipeline: event router1/bgp not found in namespace default\n")
    assert results["hash"] == (1, "", "pipeline: entity router1#x not found in namespace default\n")
    assert results["query"] == (1, "", "pipeline: event router1/bgp?x=1 not found in namespace default\n")
    # one segment with a slash in it (the server decodes it into two): no path, not router1/bgp's delete
    assert results["slash"] == (1, "", f"pipeline: no such path: {NS}/events/router1/bgp/x\n")
    assert results["empty"] == (1, "", "pipeline: entity: must not be empty\n")
    assert results["entity delete"] == (0, "Deleted\n", "")
    assert results["entity delete again"] == (1, "", "pipeline: entity router1 not found in namespace default\n")
