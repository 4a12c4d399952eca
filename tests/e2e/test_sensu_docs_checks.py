"""Sensu Go's documented checks, from outside: one ``pipeline backend`` and two ``pipeline agent``
processes, the backend's configuration directory holding the resource YAML of Sensu Go's
documentation (6.8), the proxy entities created with ``pipeline create -f`` as the docs create
them with ``sensuctl create``.

What an operator moving from Sensu Go relies on, checked on the events the checks produce (a
handler writes each into a FIFO the test reads; no sleeps):

- ``round_robin: true``: each execution runs on exactly one agent, the agents taking turns;
- ``subdues``: a check subdued now never runs, while its twin, subdued at another hour, does;
- ``proxy_requests``: one execution per matching proxy entity, with its tokens, the event
  about that entity;
- ``secrets`` from the ``Env`` provider: the value reaches the command, never an event, the
  store, an agent's files or a log line;
- ``runtime_assets``: the build for this host is fetched once per agent and its program is
  found on ``PATH``.

Where the documented YAML is changed, a comment at the change says which line and why. The
changes are of three kinds only: ``interval: 60`` becomes ``interval: 1`` (a test cannot wait
minutes), URLs and checksums of assets point at the test's HTTP server (Bonsai cannot be reached
here), and subdue windows are placed relative to now (the documented ones depend on the day).
"""

from __future__ import annotations

import hashlib
import os
import platform
import textwrap
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trustme

from tests.asset_support import AssetServer, asset_server, sha512, tarball
from tests.support import Daemon, EventPipe, capture_handler, free_port, pipeline_command

pytestmark = pytest.mark.e2e

NS = "/api/core/v2/namespaces/default"
TOKEN = "ghp-d0cs-t0ken-5e3f9a1c"
AGENTS = ("agent-a", "agent-b")
DEADLINE = 90

#: The builds of the documented ``check-cpu-usage`` asset, as its URLs name them.
BUILDS = ("windows_amd64", "darwin_amd64", "linux_armv7", "linux_arm64", "linux_386", "linux_amd64")
ASSET_DIR = "/a7ced27e881989c44522112aa05dd3f25c8f1e49"


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


# --- Sensu Go's documentation, content/sensu-go/6.8 of github.com/sensu/sensu-docs -----------

#: plugins/assets.md, "Asset example: Multiple builds". Changed: each ``url`` (the host and
#: path prefix, <<BASE>>, is the test's server instead of assets.bonsai.sensu.io) and each
#: ``sha512`` (<<SHA:build>>, the checksum of the tarball served for that build). The docs'
#: trailing space after ``labels:`` is dropped (the same YAML: a null).
ASSET = """
---
type: Asset
api_version: core/v2
metadata:
  name: check-cpu-usage
  labels:
  annotations:
    io.sensu.bonsai.url: https://bonsai.sensu.io/assets/sensu/check-cpu-usage
    io.sensu.bonsai.api_url: https://bonsai.sensu.io/api/v1/assets/sensu/check-cpu-usage
    io.sensu.bonsai.tier: Community
    io.sensu.bonsai.version: 0.2.2
    io.sensu.bonsai.namespace: sensu
    io.sensu.bonsai.name: check-cpu-usage
    io.sensu.bonsai.tags: ''
spec:
  builds:
  - url: <<BASE>>/check-cpu-usage_0.2.2_windows_amd64.tar.gz
    sha512: <<SHA:windows_amd64>>
    filters:
    - entity.system.os == 'windows'
    - entity.system.arch == 'amd64'
  - url: <<BASE>>/check-cpu-usage_0.2.2_darwin_amd64.tar.gz
    sha512: <<SHA:darwin_amd64>>
    filters:
    - entity.system.os == 'darwin'
    - entity.system.arch == 'amd64'
  - url: <<BASE>>/check-cpu-usage_0.2.2_linux_armv7.tar.gz
    sha512: <<SHA:linux_armv7>>
    filters:
    - entity.system.os == 'linux'
    - entity.system.arch == 'armv7'
  - url: <<BASE>>/check-cpu-usage_0.2.2_linux_arm64.tar.gz
    sha512: <<SHA:linux_arm64>>
    filters:
    - entity.system.os == 'linux'
    - entity.system.arch == 'arm64'
  - url: <<BASE>>/check-cpu-usage_0.2.2_linux_386.tar.gz
    sha512: <<SHA:linux_386>>
    filters:
    - entity.system.os == 'linux'
    - entity.system.arch == '386'
  - url: <<BASE>>/check-cpu-usage_0.2.2_linux_amd64.tar.gz
    sha512: <<SHA:linux_amd64>>
    filters:
    - entity.system.os == 'linux'
    - entity.system.arch == 'amd64'
"""

#: observe-schedule/checks.md, "Subdues". Changed: ``interval: 60`` -> 1; a fourth window,
#: <<NOW_WINDOW>>, added after the documented three: the whole of every day (``daily``) from
#: yesterday on, so that the check is subdued whenever the test runs (the documented windows
#: alone subdue it on nights and weekends only).
SUBDUED = """
---
type: CheckConfig
api_version: core/v2
metadata:
  name: check_cpu
spec:
  command: check-cpu-usage -w 75 -c 90
  interval: 1
  handlers:
  - slack
  publish: true
  round_robin: false
  runtime_assets:
  - check-cpu-usage
  subdues:
  - begin: "2022-04-18T17:00:00-07:00"
    end: "2022-04-19T08:00:00-07:00"
    repeat:
    - weekdays
  - begin: "2022-04-23T00:00:00-07:00"
    end: "2022-04-23T23:59:59-07:00"
    repeat:
    - weekends
  - begin: "2022-04-22T10:00:00-07:00"
    end: "2022-04-22T11:00:00-07:00"
    repeat:
    - fridays
<<NOW_WINDOW>>
  subscriptions:
  - system
"""

#: The same documented check, named ``check_cpu_awake`` (changed: ``name``), its windows
#: replaced by one hour a day twelve hours away from now (changed: ``subdues``), so that it is
#: not subdued whenever the test runs.
AWAKE = """
---
type: CheckConfig
api_version: core/v2
metadata:
  name: check_cpu_awake
spec:
  command: check-cpu-usage -w 75 -c 90
  interval: 1
  handlers:
  - slack
  publish: true
  round_robin: false
  runtime_assets:
  - check-cpu-usage
  subdues:
<<OTHER_WINDOW>>
  subscriptions:
  - system
"""

#: observe-schedule/checks.md, "Example proxy check using proxy_entity_name" (a round robin
#: check). Changed: ``interval: 60`` -> 1. ``http_check.sh`` is a script installed on the
#: agents' PATH by the test (it answers without the network).
ROUND_ROBIN = """
---
type: CheckConfig
api_version: core/v2
metadata:
  name: proxy_check
spec:
  command: http_check.sh https://sensu.io
  handlers:
  - slack
  interval: 1
  proxy_entity_name: sensu-site
  publish: true
  round_robin: true
  subscriptions:
  - run_proxies
"""

#: observe-schedule/checks.md, "Example proxy check using proxy_requests". Changed:
#: ``interval: 60`` -> 1.
PROXY_REQUESTS = """
---
type: CheckConfig
api_version: core/v2
metadata:
  name: proxy_check_proxy_requests
spec:
  command: http_check.sh {{ .labels.url }}
  handlers:
  - slack
  interval: 1
  proxy_requests:
    entity_attributes:
    - entity.labels.proxy_type == 'website'
  publish: true
  round_robin: true
  subscriptions:
  - run_proxies
"""

#: operations/manage-secrets/secrets.md, "Secret examples" (the ``Env`` provider), unchanged. No
#: ``Env`` document: "The Env secrets provider is automatically created with an empty spec when
#: you start your Sensu backend" (secrets-management.md).
SECRET = """
---
type: Secret
api_version: secrets/v1
metadata:
  name: sensu-ansible-token
spec:
  id: ANSIBLE_TOKEN
  provider: env
"""

#: observe-schedule/checks.md, "Check example that uses secrets management". Changed: ``secret:
#: github-token-vault`` -> ``sensu-ansible-token`` (the Env secret above; there is no Vault
#: here); added ``interval``, ``publish``, ``subscriptions`` and ``handlers`` (the documented
#: example has no schedule, so it would never run). ``ping-github-api.sh`` is the test's script
#: on the agents' PATH: it prints a digest of the token it was given.
SECRET_CHECK = """
---
type: CheckConfig
api_version: core/v2
metadata:
  name: ping-github-api
spec:
  check_hooks: null
  command: ping-github-api.sh $GITHUB_TOKEN
  secrets:
  - name: GITHUB_TOKEN
    secret: sensu-ansible-token
  interval: 1
  publish: true
  subscriptions:
  - system
  handlers:
  - slack
"""

#: observability-pipeline/observe-entities/monitor-external-resources.md, "Create proxy
#: entities", unchanged: applied with ``pipeline create -f`` as the guide applies it with
#: ``sensuctl create``.
ENTITIES = """
---
type: Entity
api_version: core/v2
metadata:
  name: sensu-docs
  labels:
    proxy_type: website
    url: https://docs.sensu.io
spec:
  entity_class: proxy
---
type: Entity
api_version: core/v2
metadata:
  name: packagecloud-site
  labels:
    proxy_type: website
    url: https://packagecloud.io
spec:
  entity_class: proxy
---
type: Entity
api_version: core/v2
metadata:
  name: github-site
  labels:
    proxy_type: website
    url: https://github.com
spec:
  entity_class: proxy
"""
WEBSITES = {"sensu-docs": "https://docs.sensu.io", "packagecloud-site": "https://packagecloud.io",
            "github-site": "https://github.com"}  # fmt: skip

# --- what the test provides around them ----------------------------------------------------

#: Scripts an operator would have installed on the agents' hosts.
AGENT_SCRIPTS = {
    "http_check.sh": 'echo "http_check.sh OK: HTTP Status 200 for $1"\n',
    "ping-github-api.sh": textwrap.dedent("""\
        given=$(printf %s "$1" | sha256sum | cut -c1-16)
        if [ "$1" = "$GITHUB_TOKEN" ]; then same=yes; else same=no; fi
        echo "token $given, the same in the environment: $same"
        """),
}


def build_tarball(build: str) -> bytes:
    script = f'#!/bin/sh\necho "check-cpu-usage 0.2.2 {build}: $*"\n'.encode()
    return tarball({"bin/check-cpu-usage": script})


def window(day: str, begin: str, end: str) -> str:
    return f'  - begin: "{day}T{begin}+00:00"\n    end: "{day}T{end}+00:00"\n    repeat:\n    - daily'


def backend_resources(pipe: Path, server: AssetServer, tarballs: dict[str, bytes]) -> str:
    now = datetime.now(UTC)
    yesterday = (now - timedelta(days=1)).strftime("%Y-%m-%d")
    other = (now.hour + 12) % 24
    asset = ASSET.replace("<<BASE>>", server.url + ASSET_DIR)
    for build, data in tarballs.items():
        asset = asset.replace(f"<<SHA:{build}>>", sha512(data))
    subdued = SUBDUED.replace("<<NOW_WINDOW>>", window(yesterday, "00:00:00", "23:59:59"))
    awake = AWAKE.replace("<<OTHER_WINDOW>>", window(yesterday, f"{other:02}:00:00", f"{other:02}:59:59"))
    # The documented checks send their events to ``slack``; here that is the handler writing
    # each event into the test's FIFO.
    slack = "---\n" + textwrap.dedent(capture_handler(pipe, "slack"))
    return "".join([slack, asset, subdued, awake, ROUND_ROBIN, PROXY_REQUESTS, SECRET, SECRET_CHECK])


@dataclass
class Setup:
    tmp: Path
    pipe: EventPipe
    transport: int = field(default_factory=free_port)
    api: int = field(default_factory=free_port)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api}"

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", ""), **extra}

    def pki(self) -> tuple[Path, Path]:
        ca = trustme.CA()
        ca_file, backend_file = self.tmp / "ca.pem", self.tmp / "backend.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(backend_file))
        return ca_file, backend_file

    def agent_bin(self) -> Path:
        directory = self.tmp / "agent-bin"
        directory.mkdir()
        for name, body in AGENT_SCRIPTS.items():
            (directory / name).write_text("#!/bin/sh\n" + body)
            (directory / name).chmod(0o755)
        return directory

    async def start(self, nursery: trio.Nursery, server: AssetServer, tarballs: dict[str, bytes]) -> list[Daemon]:
        config = self.tmp / "config"
        config.mkdir()
        (config / "sensu-docs.yml").write_text(backend_resources(self.pipe.path, server, tarballs))
        ca_file, backend_pem = self.pki()
        backend = await nursery.start(Daemon("backend").run, [
            "backend", "--config", str(config), "--data", str(self.tmp / "backend"),
            "--api-addr", f"127.0.0.1:{self.api}", "--transport-addr", f"127.0.0.1:{self.transport}",
            "--cert-file", str(backend_pem), "--log-level", "debug"], self.env(ANSIBLE_TOKEN=TOKEN),
            "backend ready")  # fmt: skip
        path = f"{self.agent_bin()}:{os.environ['PATH']}"
        agents = []
        for name in AGENTS:
            agents.append(await nursery.start(Daemon(name).run, [
                "agent", "--name", name, "--subscriptions", "system,run_proxies",
                "--backend-addr", f"127.0.0.1:{self.transport}", "--trusted-ca-file", str(ca_file),
                "--data", str(self.tmp / name), "--api-addr", "", "--socket-addr", "", "--statsd-addr", "",
                "--log-level", "debug"],
                self.env(PATH=path), "connected to backend"))  # fmt: skip
        return [backend, *agents]

    async def create_entities(self) -> str:
        (self.tmp / "entities.yml").write_text(ENTITIES)
        done = await trio.run_process(pipeline_command("create", "-f", str(self.tmp / "entities.yml"),
                                                       "--api-url", self.api_url, "--data", str(self.tmp / "backend")),
                                      env=self.env(), capture_stdout=True, capture_stderr=True, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr.decode()
        return str(done.stdout.decode())


def name_of(event: dict[str, Any]) -> str:
    return str(event["entity"]["metadata"]["name"])


def check_of(event: dict[str, Any]) -> str:
    return str(event["check"]["metadata"]["name"])


class Seen:
    """The events the ``slack`` handler got, by check, and whether there are enough of each."""

    def __init__(self) -> None:
        self.events: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.raw: list[dict[str, Any]] = []

    def add(self, event: dict[str, Any]) -> None:
        self.raw.append(event)
        self.events[check_of(event)].append(event)

    def by(self, check: str, key: str) -> Counter[str]:
        return Counter(event["check"].get(key, "") for event in self.events[check])

    def enough(self) -> bool:
        rounds = Counter(name_of(e) for e in self.events["proxy_check_proxy_requests"])
        return (
            len(self.events["proxy_check"]) >= 8
            and all(self.by("proxy_check", "processed_by")[a] >= 3 for a in AGENTS)
            and set(rounds) == set(WEBSITES)
            and min(rounds.values()) >= 4
            and all(Counter(name_of(e) for e in self.events["check_cpu_awake"])[a] >= 3 for a in AGENTS)
            and all(Counter(name_of(e) for e in self.events["ping-github-api"])[a] >= 2 for a in AGENTS)
        )


async def test_sensu_documented_checks_on_one_backend_and_two_agents(tmp_path: Path) -> None:
    pipe = EventPipe(tmp_path / "events.fifo")
    tarballs = {build: build_tarball(build) for build in BUILDS}
    files = {f"{ASSET_DIR}/check-cpu-usage_0.2.2_{build}.tar.gz": data for build, data in tarballs.items()}
    seen = Seen()
    with asset_server(files) as server:
        setup = Setup(tmp_path, pipe)
        with trio.fail_after(DEADLINE):
            async with trio.open_nursery() as nursery:
                daemons = await setup.start(nursery, server, tarballs)
                created = await setup.create_entities()
                while not seen.enough():
                    seen.add(await pipe.next_event())
                key = (tmp_path / "backend" / "admin.key").read_text().strip()
                async with httpx.AsyncClient(base_url=setup.api_url, headers={"Authorization": f"Key {key}"}) as api:
                    stored = (await api.get(f"{NS}/events")).json()
                    subdued = [(await api.get(f"{NS}/events/{a}/check_cpu")).status_code for a in AGENTS]
                    docs_site = (await api.get(f"{NS}/events/sensu-docs/proxy_check_proxy_requests")).json()
                nursery.cancel_scope.cancel()
    await pipe.aclose()
    assert "3 of 3 resources saved" in created

    assert_round_robin(seen.events["proxy_check"])
    assert_proxy_requests(seen.events["proxy_check_proxy_requests"], docs_site)
    assert_subdues(seen, subdued, stored)
    assert_asset(seen.events["check_cpu_awake"], server, tmp_path)
    assert_secret(seen, stored, daemons, tmp_path)


def assert_round_robin(events: list[dict[str, Any]]) -> None:
    """One agent per execution, the two taking turns once both are there."""
    executed = Counter(e["check"]["executed"] for e in events)
    assert max(executed.values()) == 1, executed  # never two agents for one execution
    assert {name_of(e) for e in events} == {"sensu-site"}  # the proxy entity, created by its events
    assert {e["entity"]["entity_class"] for e in events} == {"proxy"}
    turns = [e["check"]["processed_by"] for e in events[-6:]]
    assert turns in ([*AGENTS] * 3, [*reversed(AGENTS)] * 3), turns
    assert all(e["check"]["output"] == "http_check.sh OK: HTTP Status 200 for https://sensu.io\n" for e in events)


def assert_proxy_requests(events: list[dict[str, Any]], docs_site: dict[str, Any]) -> None:
    """One execution per matching proxy entity each time, with its ``url``; round robin: one agent each."""
    runs = Counter((name_of(e), e["check"]["issued"]) for e in events)
    assert max(runs.values()) == 1, runs
    per_issue = Counter(e["check"]["issued"] for e in events)
    complete = [issued for issued, count in per_issue.items() if count == len(WEBSITES)]
    assert len(complete) >= 3, per_issue  # whole rounds: every website once
    for event in events:
        name = name_of(event)
        assert event["check"]["output"] == f"http_check.sh OK: HTTP Status 200 for {WEBSITES[name]}\n"
        assert event["check"]["proxy_entity_name"] == name
        assert event["entity"]["entity_class"] == "proxy"
        assert event["check"]["processed_by"] in AGENTS
    assert {e["check"]["processed_by"] for e in events} == set(AGENTS)
    assert name_of(docs_site) == "sensu-docs"
    assert docs_site["check"]["output"] == "http_check.sh OK: HTTP Status 200 for https://docs.sensu.io\n"


def assert_subdues(seen: Seen, subdued: list[int], stored: list[dict[str, Any]]) -> None:
    assert "check_cpu" not in seen.events  # subdued the whole time ...
    assert subdued == [404, 404]
    assert not [e for e in stored if check_of(e) == "check_cpu"]
    assert len(seen.events["check_cpu_awake"]) >= 6  # ... while its twin ran on both agents


def assert_asset(events: list[dict[str, Any]], server: AssetServer, tmp_path: Path) -> None:
    build = {"x86_64": "linux_amd64", "aarch64": "linux_arm64"}[platform.machine()]
    expected = (0, f"check-cpu-usage 0.2.2 {build}: -w 75 -c 90\n")
    assert [(e["check"]["status"], e["check"]["output"]) for e in events] == [expected] * len(events)
    path = f"{ASSET_DIR}/check-cpu-usage_0.2.2_{build}.tar.gz"
    assert server.count(path) == 2  # once per agent: later runs use each agent's cache
    assert [p for p, _ in server.requests if p != path] == []  # the build of this host only


def assert_secret(seen: Seen, stored: list[dict[str, Any]], daemons: list[Daemon], tmp_path: Path) -> None:
    for event in seen.events["ping-github-api"]:
        assert event["check"]["status"] == 0, event["check"]["output"]
        assert event["check"]["output"] == f"token {digest(TOKEN)}, the same in the environment: yes\n"
        assert event["check"]["secrets"] == [{"name": "GITHUB_TOKEN", "secret": "sensu-ansible-token"}]
    assert TOKEN not in repr(seen.raw)  # no event the handler got
    assert TOKEN not in repr(stored)  # nor the events API
    assert all("check executed on request" in agent.text for agent in daemons[1:])  # debug lines are there
    for daemon in daemons:  # nor a log line, at debug level
        assert TOKEN not in daemon.text, daemon.name
    written = [p for d in ("backend", *AGENTS) for p in (tmp_path / d).rglob("*") if p.is_file()]
    assert written
    for path in written:  # nor the store, an agent's spool or remembered checks
        assert TOKEN.encode() not in path.read_bytes(), path
