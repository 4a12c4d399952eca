"""Secrets from the Env provider reach the commands that ask for them, and nothing else: a real
backend (TLS transport) and agent on loopback, real subprocesses, the SQLite store on disk."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import pytest
import trio
import trustme

from pipeline.agent.agent import Agent
from pipeline.agent.settings import AgentConfig
from pipeline.tls import TLSFiles
from tests.support import EventPipe, capture_handler, loopback_backend, write_config

pytestmark = pytest.mark.e2e

TOKEN = "s3cr3t-t0ken-value-9f2c"
DIRECT = "another-direct-value-77"


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


# The commands print a digest of the value, never the value.
SHOW = 'printf %s "$TOKEN" | sha256sum | cut -c1-16'


def write_report(tmp_path: Path, pipe: Path) -> None:
    """report.sh NAME: one JSON line into the events pipe, named NAME, with the digest of $TOKEN."""
    line = r'{"check": {"metadata": {"name": "%s"}}, "digest": "%s"}\n'
    (tmp_path / "report.sh").write_text(f'printf \'{line}\' "$1" "$({SHOW})" >> {pipe}\n')


def resources(tmp_path: Path) -> str:
    return f"""
        ---
        type: Env
        api_version: secrets/v1
        metadata: {{name: env}}
        spec: {{}}
        ---
        type: Secret
        api_version: secrets/v1
        metadata: {{name: api-token, namespace: default}}
        spec: {{id: PIPELINE_TEST_TOKEN, provider: env}}
        ---
        type: CheckConfig
        api_version: core/v2
        metadata: {{name: tok}}
        spec:
          command: '{SHOW}; printf %s "$DIRECT" | sha256sum | cut -c1-16; echo "$TOKEN"'
          interval: 1
          subscriptions: [web]
          handlers: [capture, tokhandler]
          secrets: [{{name: TOKEN, secret: api-token}}, {{name: DIRECT, secret: PIPELINE_TEST_DIRECT}}]
        ---
        type: CheckConfig
        api_version: core/v2
        metadata: {{name: unset}}
        spec:
          command: echo ran
          interval: 1
          subscriptions: [web]
          handlers: [capture]
          secrets: [{{name: TOKEN, secret: PIPELINE_TEST_UNSET}}]
        ---
        type: Mutator
        api_version: core/v2
        metadata: {{name: tokmut}}
        spec:
          command: 'sh {tmp_path / "report.sh"} mutator; cat'
          secrets: [{{name: TOKEN, secret: api-token}}]
        ---
        type: Handler
        api_version: core/v2
        metadata: {{name: tokhandler}}
        spec:
          type: pipe
          mutator: tokmut
          command: sh {tmp_path / "report.sh"} handler
          secrets: [{{name: TOKEN, secret: api-token}}]
        """


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    files = {"ca": directory / "ca.pem", "backend": directory / "backend.pem"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(files["backend"]))
    return files


async def run(tmp_path: Path, tls: dict[str, Path] | None, wanted: set[str]) -> dict[str, dict[str, Any]]:
    """Run a backend and an agent until the capture handler has an event of each check of ``wanted``."""
    pipe = EventPipe(tmp_path / "events.fifo")
    write_report(tmp_path, pipe.path)
    config = write_config(tmp_path / "config", capture_handler(pipe.path) + resources(tmp_path))
    backend_tls = TLSFiles(cert_file=tls["backend"]) if tls else TLSFiles()
    backend = loopback_backend(tmp_path, config, tls=backend_tls)
    seen: dict[str, dict[str, Any]] = {}
    try:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                addresses = await nursery.start(backend.run)
                agent_tls = TLSFiles(trusted_ca_file=tls["ca"]) if tls else TLSFiles()
                agent = AgentConfig(name="web1", backend_addrs=[addresses.transport], subscriptions=["web"],
                                    api_addr=None, data_dir=tmp_path / "agent", tls=agent_tls)  # fmt: skip
                await nursery.start(Agent(agent).run)
                while not wanted <= set(seen):
                    event = await pipe.next_event()
                    seen.setdefault(event["check"]["metadata"]["name"], event)
                nursery.cancel_scope.cancel()
    finally:
        await pipe.aclose()
    return seen


def files_under(directory: Path) -> list[Path]:
    return [path for path in directory.rglob("*") if path.is_file()]


async def test_secrets_reach_checks_handlers_and_mutators_and_nothing_else(
    tmp_path: Path, pki: dict[str, Path], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PIPELINE_TEST_TOKEN", TOKEN)
    monkeypatch.setenv("PIPELINE_TEST_DIRECT", DIRECT)
    monkeypatch.delenv("PIPELINE_TEST_UNSET", raising=False)
    caplog.set_level(logging.DEBUG)
    seen = await run(tmp_path, pki, {"tok", "unset", "handler", "mutator"})

    tok = seen["tok"]["check"]
    # the command got both values (by a Secret resource, and the Env shortcut); the value it
    # echoed itself is masked before the event leaves the agent
    assert tok["output"] == f"{digest(TOKEN)}\n{digest(DIRECT)}\nREDACTED\n"
    assert tok["status"] == 0
    # the event's copy of the check names the secrets, never their values
    assert tok["secrets"] == [
        {"name": "TOKEN", "secret": "api-token"},
        {"name": "DIRECT", "secret": "PIPELINE_TEST_DIRECT"},
    ]
    # the handler and its mutator got the value in their environment too
    assert seen["handler"]["digest"] == seen["mutator"]["digest"] == digest(TOKEN)

    # an unset variable: status 3, the output names the secret; the command did not run
    unset = seen["unset"]["check"]
    assert unset["status"] == 3
    assert unset["output"] == (
        "error while getting the check's secrets: secret 'TOKEN' (PIPELINE_TEST_UNSET): "
        "the backend's environment variable PIPELINE_TEST_UNSET is not set"
    )

    # never in the store, the agent's files (spool, remembered checks) or a log line
    for path in files_under(tmp_path / "data") + files_under(tmp_path / "agent"):
        data = path.read_bytes()
        assert TOKEN.encode() not in data, path
        assert DIRECT.encode() not in data, path
    assert files_under(tmp_path / "data")
    assert (tmp_path / "agent" / "checks.msgpack").exists()
    for record in caplog.records:
        assert TOKEN not in repr(record.__dict__)
        assert DIRECT not in repr(record.__dict__)
    assert "check secrets unavailable" in caplog.text


async def test_secrets_are_sent_to_agents_over_tls_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINE_TEST_TOKEN", TOKEN)
    monkeypatch.setenv("PIPELINE_TEST_DIRECT", DIRECT)
    seen = await run(tmp_path, None, {"tok"})
    tok = seen["tok"]["check"]
    assert tok["status"] == 3
    assert tok["output"].startswith("error while getting the check's secrets: secret 'TOKEN' (api-token): ")
    assert "over TLS only" in tok["output"]
