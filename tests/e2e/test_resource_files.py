"""Resource files from outside: ``pipeline validate`` and ``pipeline create -f`` print the same
errors for the same file, and ``create -f`` applies a file all or nothing, against a running backend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio

from tests.support import admin_headers, loopback_backend, pipeline_command, write_config

pytestmark = pytest.mark.e2e

NS = "/api/core/v2/namespaces/default"
Cli = Callable[..., Awaitable[tuple[int, str, str]]]

BROKEN = """\
type: CheckConfig
api_version: core/v2
metadata: {name: good}
spec: {command: x, interval: 10, subscriptions: [web]}
---
type: CheckConfig
api_version: core/v2
metadata: {name: bad}
spec:
  command: x
  interval: often
  subscriptions: [web]
"""


@asynccontextmanager
async def backend_and_cli(tmp_path: Path, config: str = "---\n") -> AsyncIterator[tuple[httpx.AsyncClient, Cli]]:
    """A running backend on ``config``, an API client and the ``pipeline`` command for it."""
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", config))
    async with trio.open_nursery() as nursery:
        url = (await nursery.start(backend.run)).api_url

        async def cli(*args: str) -> tuple[int, str, str]:
            command = pipeline_command(*args, "--api-url", url, "--data", str(tmp_path / "data"))
            done = await trio.run_process(command, capture_stdout=True, capture_stderr=True, check=False)
            return done.returncode, done.stdout.decode(), done.stderr.decode()

        async with httpx.AsyncClient(base_url=url, headers=admin_headers(backend)) as client:
            yield client, cli
        nursery.cancel_scope.cancel()


async def validate(path: Path) -> tuple[int, str, str]:
    done = await trio.run_process(pipeline_command("validate", str(path)), capture_stdout=True, capture_stderr=True,
                                  check=False)  # fmt: skip
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_validate_and_create_print_the_same_error_lines_and_nothing_is_applied(tmp_path: Path) -> None:
    file = tmp_path / "checks.yml"
    file.write_text(BROKEN)
    with trio.fail_after(60):
        async with backend_and_cli(tmp_path) as (client, cli):
            checked = await validate(file)
            created = await cli("create", "-f", str(file))
            checked_dir = await validate(tmp_path)  # the directory: the same line for the same file
            listed = (await client.get(f"{NS}/checks")).json()
    expected = [
        f"{file}: line 11: document 2: CheckConfig 'bad': spec.interval: expected integer, got string 'often'",
        f"1 error(s) in {file}",
    ]
    assert checked == (1, "", "\n".join(expected) + "\n")
    assert created[0] == 1
    assert created[2].splitlines() == [*expected, "nothing applied"]
    assert checked_dir[2].splitlines()[0] == expected[0]
    assert listed == []  # the good check was not applied either


async def test_a_refusal_only_the_backend_can_make_changes_nothing(tmp_path: Path) -> None:
    """A handler set loop formed with a handler the API already has: the file is valid alone."""
    file = tmp_path / "sets.yml"
    file.write_text(
        "type: CheckConfig\napi_version: core/v2\nmetadata: {name: c}\nspec: {command: x, interval: 10,"
        " subscriptions: [web], handlers: [b]}\n---\n"
        "type: Handler\napi_version: core/v2\nmetadata: {name: b}\nspec:\n  type: set\n  handlers: [a]\n"
    )
    with trio.fail_after(60):
        async with backend_and_cli(tmp_path) as (client, cli):
            assert (await client.put(f"{NS}/handlers/a", json={"type": "set", "handlers": ["b"]})).status_code == 201
            checked = await validate(file)
            created = await cli("create", "-f", str(file))
            checks = (await client.get(f"{NS}/checks")).json()
            handlers = [h["metadata"]["name"] for h in (await client.get(f"{NS}/handlers")).json()]
    assert checked[0] == 0
    assert checked[2] == f"warning: {file}: line 11: document 2: Handler 'b': spec.handlers[0]: no Handler 'a'\n"
    assert created[0] == 1
    assert created[2].splitlines()[-2:] == [
        f"{file}: line 11: document 2: Handler 'b': spec.handlers: handler sets loop: b -> a -> b",
        "nothing applied",
    ]
    assert (checks, handlers) == ([], ["a"])


async def test_the_apply_endpoint_takes_all_or_nothing(tmp_path: Path) -> None:
    check = {"type": "CheckConfig", "api_version": "core/v2", "metadata": {"name": "one"},
             "spec": {"command": "x", "interval": 10, "subscriptions": ["web"]}}  # fmt: skip
    silence = {"type": "Silenced", "api_version": "core/v2", "metadata": {}, "spec": {"check": "one"}}
    bad = {**check, "metadata": {"name": "two"}, "spec": {"command": "x", "interval": -1}}
    with trio.fail_after(60):
        async with backend_and_cli(tmp_path) as (client, _):
            refused = await client.post("/api/pipeline/v1/apply", json=[check, silence, bad])
            before = ((await client.get(f"{NS}/checks")).json(), (await client.get(f"{NS}/silenced")).json())
            applied = await client.post("/api/pipeline/v1/apply", json=[check, silence])
            after = [c["metadata"]["name"] for c in (await client.get(f"{NS}/checks")).json()]
            silenced = [s["metadata"]["name"] for s in (await client.get(f"{NS}/silenced")).json()]
    assert refused.status_code == 400
    assert refused.json()["message"] == "nothing applied: 1 document(s) refused"
    (error,) = refused.json()["errors"]
    assert (error["document"], error["field"]) == (3, "spec.interval")
    assert before == ([], [])
    assert applied.status_code == 200
    assert applied.json()["applied"] == ["CheckConfig default/one", "Silenced default/*:one"]
    assert (after, silenced) == (["one"], ["*:one"])


DUMP = """\
type: Namespace
api_version: core/v2
metadata: {}
spec: {name: default}
---
type: Entity
api_version: core/v2
metadata: {name: router1, labels: {site: lyon}}
spec: {entity_class: proxy, subscriptions: [snmp], last_seen: 0, deregister: false, deregistration: {}}
---
type: Handler
api_version: core/v2
metadata: {name: slack}
spec: {type: pipe, command: cat}
"""


async def test_a_dump_with_an_entity_through_create_and_in_the_config_directory(tmp_path: Path) -> None:
    file = tmp_path / "dump.yml"
    file.write_text(DUMP)
    with trio.fail_after(60):
        async with backend_and_cli(tmp_path) as (client, cli):
            created = await cli("create", "-f", str(file))
            entity = (await client.get(f"{NS}/entities/router1")).json()
            handlers = [h["metadata"]["name"] for h in (await client.get(f"{NS}/handlers")).json()]
        async with backend_and_cli(tmp_path / "second", DUMP) as (client, _):  # the same file as the config directory
            registered = (await client.get(f"{NS}/entities/router1")).json()
    assert created[0] == 0, created
    assert created[1].splitlines()[-1] == "3 of 3 resources saved"
    assert (entity["metadata"]["labels"], entity["subscriptions"]) == ({"site": "lyon"}, ["snmp"])
    assert handlers == ["slack"]
    assert (registered["entity_class"], registered["subscriptions"]) == ("proxy", ["snmp"])


async def test_deleting_what_is_named_is_refused_naming_who_and_dangling_names_are_on_metrics(tmp_path: Path) -> None:
    config = """\
type: CheckConfig
api_version: core/v2
metadata: {name: cpu}
spec: {command: x, interval: 10, subscriptions: [web], handlers: [team, nobody], check_hooks: [{critical: [ps]}]}
---
type: HookConfig
api_version: core/v2
metadata: {name: ps}
spec: {command: ps}
---
type: Handler
api_version: core/v2
metadata: {name: team}
spec: {type: set, handlers: [slack]}
---
type: Handler
api_version: core/v2
metadata: {name: slack}
spec: {type: pipe, command: cat, filters: [only-prod], mutator: trim}
---
type: EventFilter
api_version: core/v2
metadata: {name: only-prod}
spec: {action: allow, expressions: ["event.entity.name == 'x'"]}
---
type: Mutator
api_version: core/v2
metadata: {name: trim}
spec: {type: pipe, command: cat}
"""
    with trio.fail_after(60):
        async with backend_and_cli(tmp_path, config) as (client, _):
            refused = {path: await client.delete(f"{NS}/{path}") for path in
                       ("hooks/ps", "handlers/slack", "handlers/team", "filters/only-prod", "mutators/trim")}  # fmt: skip
            metrics = (await client.get("/metrics")).text
            accepted = await client.put(
                f"{NS}/pipelines/p", json={"workflows": [{"name": "w", "handler": {"name": "x"}}]}
            )
            metrics_after = (await client.get("/metrics")).text
            assert (await client.delete(f"{NS}/checks/cpu")).status_code == 204
            freed = await client.delete(f"{NS}/hooks/ps")
    assert {path: r.status_code for path, r in refused.items()} == dict.fromkeys(refused, 409)
    assert {path: r.json()["message"] for path, r in refused.items()} == {
        "hooks/ps": "still in use: hook 'ps' is named by check 'cpu' (check_hooks)",
        "handlers/slack": "still in use: handler 'slack' is named by handler 'team' (handlers)",
        "handlers/team": "still in use: handler 'team' is named by check 'cpu' (handlers)",
        "filters/only-prod": "still in use: filter 'only-prod' is named by handler 'slack' (filters)",
        "mutators/trim": "still in use: mutator 'trim' is named by handler 'slack' (mutator)",
    }
    assert 'pipeline_resources_dangling_references{kind="CheckConfig"} 1.0' in metrics
    assert 'pipeline_resources_dangling_references{kind="Pipeline"} 0.0' in metrics
    assert accepted.status_code == 201
    assert 'pipeline_resources_dangling_references{kind="Pipeline"} 1.0' in metrics_after
    assert freed.status_code == 204


async def test_get_shows_where_each_resource_comes_from_and_revert_brings_the_files_version_back(
    tmp_path: Path,
) -> None:
    config = """\
type: Handler
api_version: core/v2
metadata: {name: slack}
spec: {type: pipe, command: from-the-file}
---
type: Handler
api_version: core/v2
metadata: {name: email}
spec: {type: pipe, command: mail}
"""
    with trio.fail_after(60):
        async with backend_and_cli(tmp_path, config) as (client, cli):
            assert (
                await client.put(f"{NS}/handlers/slack", json={"type": "pipe", "command": "from-the-api"})
            ).status_code == 201
            assert (
                await client.put(f"{NS}/handlers/pager", json={"type": "pipe", "command": "page"})
            ).status_code == 201
            assert (await client.put(f"{NS}/checks/c", json={"command": "x", "interval": 10, "subscriptions": ["w"],
                                                             "handlers": ["pager"]})).status_code == 201  # fmt: skip
            listed = await cli("get", "handlers")
            origins = (await client.get("/api/pipeline/v1/resources/origins")).json()
            reverted = await cli("revert", "handlers", "slack")
            slack = (await client.get(f"{NS}/handlers/slack")).json()
            again = await cli("revert", "handlers", "slack")
            in_use = await client.delete("/api/pipeline/v1/overrides/handlers/default/pager")
    rows = {line.split()[0]: line.split()[-1] for line in listed[1].splitlines()[2:]}
    assert rows == {"email": "file", "pager": "api", "slack": "api"}
    assert {"type": "Handler", "namespace": "default", "name": "email", "source": "file"} in origins
    assert reverted == (0, "handlers 'slack': the config directory's version runs again\n", "")
    assert slack["command"] == "from-the-file"
    assert again[0] == 1
    assert "has no API change" in again[2]
    assert (in_use.status_code, in_use.json()["message"]) == (409, "handler 'pager' is named by check 'c' (handlers)")
