"""The operator's command line against a real backend, as real subprocesses: a closed pipe ends
it quietly, ``--format json|yaml`` parse, no colour reaches a pipe, ``event list`` filters and
leaves change events to the timeline, silences are created, listed and deleted, and the
commands find the running backend and its key from any directory through the state file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio
import yaml

from tests.support import Daemon, loopback_backend, pipeline_command, served, wait_for_exit, write_config

pytestmark = pytest.mark.e2e

NS = "/api/core/v2/namespaces/default"


def result(status: int, entity: str, check: str = "disk", **labels: str) -> dict[str, object]:
    return {"entity": {"metadata": {"name": entity}, "entity_class": "proxy"},
            "check": {"metadata": {"name": check, "labels": labels}, "status": status,
                      "output": f"{check} on {entity} " + "x" * 1000}}  # fmt: skip


async def post_events(client: httpx.AsyncClient, count: int) -> None:
    for i in range(count):
        assert (await client.post(f"{NS}/events", json=result(i % 3, f"web{i}", team=f"t{i % 2}"))).status_code == 201
    deploy = result(0, "web1", "deployment", **{"pipeline.io/event-kind": "change"})
    assert (await client.post(f"{NS}/events", json=deploy)).status_code == 201


async def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[int, str, str]:
    done = await trio.run_process(pipeline_command(*args), capture_stdout=True, capture_stderr=True, check=False,
                                  env=env, cwd=cwd)  # fmt: skip
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_a_closed_pipe_ends_the_command_quietly(tmp_path: Path) -> None:
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", ""))
    async with served(backend, seconds=120) as api:
        await post_events(api.client, 150)  # 150 kB of table: more than a pipe holds
        command = " ".join(pipeline_command("event", "list", "--api-url", api.addresses.api_url,
                                            "--api-key", api.api_key))  # fmt: skip
        done = await trio.run_process(["bash", "-o", "pipefail", "-c", f"{command} | head -1"], capture_stdout=True,
                                      capture_stderr=True, check=False)  # fmt: skip
    assert done.stderr == b""
    assert done.returncode == 0
    assert done.stdout.decode().split() == ["ENTITY", "CHECK", "STATUS", "STATE", "OCCURRENCES", "OUTPUT"]


async def test_formats_filters_and_no_colour_on_a_pipe(tmp_path: Path) -> None:
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", ""))
    async with served(backend, seconds=120) as api:
        await post_events(api.client, 6)
        flags = ("--api-url", api.addresses.api_url, "--api-key", api.api_key)
        table = await run("event", "list", *flags)
        as_json = await run("event", "list", "--format", "json", *flags)
        as_yaml = await run("entity", "list", "--format", "yaml", *flags)
        critical = await run("event", "list", "--status", "critical", "--label", "team=t1", "--format", "json", *flags)
        bad = await run("event", "list", "--status", "purple", *flags)
        timeline = await run("timeline", "--type", "deployment", "--format", "json", *flags)
        singular = await run("get", "check", "--format", "json", *flags)
    code, out, err = table
    assert (code, err) == (0, "")
    assert "\x1b[" not in out
    assert "x" * 1000 in out  # a pipe gets whole lines
    assert "deployment" not in out
    assert len(out.splitlines()) == 2 + 6
    assert len(json.loads(as_json[1])) == 6
    assert sorted(e["metadata"]["name"] for e in yaml.safe_load(as_yaml[1])) == [f"web{i}" for i in range(6)]
    assert [(e["entity"]["metadata"]["name"], e["check"]["status"]) for e in json.loads(critical[1])] == [("web5", 2)]
    assert bad[0] == 2
    assert "--status: expected ok, warning, critical" in bad[2]
    assert [e["check"]["metadata"]["name"] for e in json.loads(timeline[1])] == ["deployment"]
    assert singular[:2] == (0, "[]\n")


async def test_silences_from_any_directory_through_the_state_file(tmp_path: Path) -> None:
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", ""))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    state = tmp_path / "state"
    env = {**os.environ, "PIPELINE_STATE_DIR": str(state), "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    env.pop("PIPELINE_API_KEY", None)
    async with served(backend, seconds=120) as api:
        await post_events(api.client, 3)
        state.mkdir()
        # what `pipeline backend` writes once it is ready (tested with the daemon in test_up)
        record = {"api_url": api.addresses.api_url, "data": str(tmp_path / "data"), "pid": os.getpid()}
        (state / "backend.json").write_text(json.dumps(record))
        created = await run("silence", "create", "--subscription", "entity:web2", "--check", "disk",
                            "--duration", "2h", "--reason", "on it", env=env, cwd=elsewhere)  # fmt: skip
        listed = await run("silence", "list", "--format", "json", env=env, cwd=elsewhere)
        silenced = await run("event", "list", "--silenced", "--format", "json", env=env, cwd=elsewhere)
        loud = await run("event", "list", "--no-silenced", "--format", "json", env=env, cwd=elsewhere)
        deleted = await run("silence", "delete", "entity:web2:disk", env=env, cwd=elsewhere)
        after = await run("silence", "list", env=env, cwd=elsewhere)
        nothing = await run("silence", "create", "--reason", "x", env=env, cwd=elsewhere)
    assert created == (0, "silence entity:web2:disk created (for 7200 s)\n", "")
    [entry] = json.loads(listed[1])
    assert (entry["subscription"], entry["check"], entry["reason"], entry["creator"]) == (
        "entity:web2", "disk", "on it", "pipeline")  # fmt: skip
    assert 7190 < entry["expire_at"] - entry["begin"] <= 7200
    assert [e["entity"]["metadata"]["name"] for e in json.loads(silenced[1])] == ["web2"]
    assert sorted(e["entity"]["metadata"]["name"] for e in json.loads(loud[1])) == ["web0", "web1"]
    assert deleted == (0, "silence entity:web2:disk deleted\n", "")
    assert after == (0, "no silences\n", "")
    assert nothing[0] == 2
    assert "give --subscription, --check or both" in nothing[2]


def test_help_answers_without_a_traceback() -> None:
    for args in (["--help"], ["event", "list", "--help"], ["silence", "create", "--help"], ["up", "--help"]):
        done = subprocess.run([sys.executable, "-m", "pipeline.cli.main", *args], capture_output=True, check=False)
        assert (done.returncode, done.stderr) == (0, b""), args


RESOURCES = """
type: Handler
api_version: core/v2
metadata: {name: pager}
spec: {type: pipe, command: cat}
---
type: CheckConfig
api_version: core/v2
metadata: {name: ping, labels: {team: ops}}
spec: {command: "true", interval: 60, subscriptions: [linux], handlers: [pager]}
"""
#: a document of `sensuctl dump all` that pipeline does not run
USER = "type: User\napi_version: core/v2\nmetadata: {name: ops}\nspec: {username: ops, disabled: false}\n---\n"


async def test_dump_and_restore_in_sensuctl_dump_format(tmp_path: Path) -> None:
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", ""))
    files = write_config(tmp_path / "files", RESOURCES)
    async with served(backend, seconds=120) as api:
        flags = ("--api-url", api.addresses.api_url, "--api-key", api.api_key)
        await post_events(api.client, 2)
        assert (await run("create", "-f", str(files), *flags))[0] == 0
        assert (await run("silence", "create", "--check", "ping", *flags))[0] == 0
        as_yaml = await run("dump", *flags)
        as_json = await run("dump", "--format", "wrapped-json", "-f", str(tmp_path / "dump.json"), *flags)
        for kind, name in (("check", "ping"), ("handler", "pager"), ("silenced", "*:ping")):
            assert (await run("delete", kind, name, *flags))[0] == 0
        assert (await run("entity", "delete", "web1", *flags))[0] == 0
        (tmp_path / "dump.yml").write_text(USER + as_yaml[1])
        restored = await run("restore", str(tmp_path / "dump.yml"), *flags)
        checks = await run("get", "checks", "--format", "json", *flags)
        entities = await run("entity", "list", "--format", "json", *flags)
        again = await run("restore", str(tmp_path / "dump.json"), *flags)
        (tmp_path / "broken.yml").write_text(as_yaml[1].replace("timeout: 0", "timeout: ten", 1))
        refused = await run("restore", str(tmp_path / "broken.yml"), *flags)
        no_agent = await run("check", "execute", "ping", *flags)
    documents = list(yaml.safe_load_all(as_yaml[1]))
    assert [d["type"] for d in documents] == ["Handler", "CheckConfig", "Silenced", "Entity", "Entity"]
    assert all(
        set(d) == {"type", "api_version", "metadata", "spec"} and d["api_version"] == "core/v2" for d in documents
    )
    assert documents[1]["metadata"] == {"name": "ping", "namespace": "default", "labels": {"team": "ops"}}
    assert documents[1]["spec"]["handlers"] == ["pager"]
    lines = (tmp_path / "dump.json").read_text().splitlines()
    assert [json.loads(line) for line in lines] == documents
    assert as_json[2].startswith("5 resources written to ")
    assert restored == (0, f"5 resources restored from {tmp_path / 'dump.yml'}\n",
                        "left out: 1 User (pipeline does not run them)\n")  # fmt: skip
    assert [c["metadata"]["name"] for c in json.loads(checks[1])] == ["ping"]
    assert sorted(e["metadata"]["name"] for e in json.loads(entities[1])) == ["web0", "web1"]
    assert again[0] == 0
    assert refused[0] == 1
    assert "document 1: Handler 'pager': spec.timeout" in refused[2]
    assert refused[2].endswith("nothing restored\n")
    assert no_agent[0] == 1
    assert "check 'ping': no connected agent is subscribed to the check's subscriptions" in no_agent[2]


async def test_up_from_any_directory_on_the_shipped_config_and_commands_that_find_it(tmp_path: Path) -> None:
    """No --config, no --api-url, no --data, run elsewhere than the clone: the backend runs the
    configuration inside the package, logs no problem, and the commands find it and its key."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    state = tmp_path / "state"
    env = {**os.environ, "PIPELINE_STATE_DIR": str(state)}
    env.pop("PIPELINE_API_KEY", None)
    flags = ["--data", str(tmp_path / "data"), "--api-addr", "127.0.0.1:0", "--transport-addr", "127.0.0.1:0",
             "--agent-api-addr", "", "--agent-socket-addr", "", "--statsd-addr", "", "--log-level", "debug"]  # fmt: skip
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            daemon = Daemon("up")
            await nursery.start(partial(daemon.run, ["up", *flags], env, "pipeline is up", cwd=elsewhere))
            await daemon.wait_for('"check executed"')
            await daemon.wait_for('"handler ran" handler=event-file')
            record = json.loads((state / "backend.json").read_text())
            listed = await run("event", "list", "--format", "json", env=env, cwd=elsewhere)
            checks = await run("get", "checks", env=env, cwd=elsewhere)
            os.kill(record["pid"], 2)
            await wait_for_exit(record["pid"])
            nursery.cancel_scope.cancel()
    assert record["data"] == str(tmp_path / "data")
    assert listed[0] == 0, listed
    names = {e["check"]["metadata"]["name"] for e in json.loads(listed[1])}
    assert "keepalive" in names
    assert "agent_started" not in names  # a change event: on the timeline
    assert {"load", "disk", "memory"} <= {line.split()[0] for line in checks[1].splitlines()[2:]}
    problems = [line for line in daemon.text.splitlines()
                if any(word in line for word in (" warning ", " error ", "problem", "not found"))]  # fmt: skip
    assert problems == []
    assert not (state / "backend.json").exists()  # a stopped backend no longer names itself


def on_a_terminal(command: list[str], env: dict[str, str], columns: int) -> str:
    """What ``command`` writes when its stdout is a terminal ``columns`` wide (a pseudo-terminal)."""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")}
    with subprocess.Popen(command, stdout=follower, stderr=subprocess.DEVNULL, env=env) as process:
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the command ended and closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        process.wait()
    os.close(leader)
    return b"".join(chunks).decode()


async def test_on_a_terminal_statuses_are_coloured_and_the_table_fits(tmp_path: Path) -> None:
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", ""))
    async with served(backend, seconds=120) as api:
        await post_events(api.client, 3)
        command = pipeline_command("event", "list", "--api-url", api.addresses.api_url, "--api-key", api.api_key)
        coloured = await trio.to_thread.run_sync(on_a_terminal, command, dict(os.environ), 70)
        plain = await trio.to_thread.run_sync(on_a_terminal, command, {**os.environ, "NO_COLOR": "1"}, 70)
        files = write_config(tmp_path / "files", RESOURCES)
        create = pipeline_command("create", "-f", str(files), "--api-url", api.addresses.api_url, "--api-key",
                                  api.api_key)  # fmt: skip
        created = await trio.to_thread.run_sync(on_a_terminal, create, dict(os.environ), 100)  # with a progress bar
    assert "[1/2]" in created
    assert "[2/2]" in created
    assert "2 of 2 resources saved" in created
    assert "Traceback" not in created
    assert "\x1b[31m2" in coloured  # critical in red
    assert "\x1b[32m0" in coloured  # OK in green
    assert "\x1b[" not in plain
    lines = plain.replace("\r\n", "\n").splitlines()
    assert max(len(line) for line in lines) == 70
    assert all(line.endswith("…") for line in lines[2:])
