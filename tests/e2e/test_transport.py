"""The agent transport under trouble: silent peers, wrong credentials, TLS, a non-loopback address."""

from __future__ import annotations

import subprocess
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
import trustme

from pipeline.agent.agent import Agent
from pipeline.agent.settings import AgentConfig, agent_entity
from pipeline.backend.auth import AgentCredentials
from pipeline.backend.server import Backend
from pipeline.errors import StoreError
from pipeline.model.codec import encode
from pipeline.tls import TLSFiles, client_context
from pipeline.wire import protocol
from pipeline.wire.messages import Hello, Welcome, encode_message, message_type
from pipeline.wire.stream import MessageStream
from tests.support import loopback_backend, pipeline_command, wire_map, write_config

pytestmark = pytest.mark.e2e

EMPTY = "---\n"


def backend_with(tmp_path: Path, **config: Any) -> Backend:
    return loopback_backend(tmp_path, write_config(tmp_path / "config", EMPTY), **config)


def hello(credentials: dict[str, str] | None = None, **kwargs: Any) -> Hello:
    entity = encode(agent_entity(AgentConfig(name="raw", backend_addrs=[])))
    return Hello("raw", "default", (), entity, **(credentials or {}), **kwargs)


async def test_the_agent_drops_a_half_open_connection_and_reconnects() -> None:
    """A backend that welcomes the agent and then says nothing (a dead peer behind a NAT)."""
    hellos: list[dict[str, Any]] = []
    reconnected = trio.Event()

    async def silent_backend(stream: trio.SocketStream) -> None:
        conn = MessageStream(stream, "agent")
        message = await conn.receive()
        assert message is not None
        hellos.append(encode_message(message))
        if len(hellos) == 2:
            reconnected.set()
        await conn.send(Welcome("silent"))
        await trio.sleep_forever()  # never reads, never answers a ping

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(partial(trio.serve_tcp, silent_backend, 0, host="127.0.0.1"))
            port = listeners[0].socket.getsockname()[1]
            agent = Agent(AgentConfig(name="web1", backend_addrs=[("127.0.0.1", port)], api_addr=None,
                                      heartbeat_interval=0.2, heartbeat_timeout=0.6))  # fmt: skip
            await nursery.start(agent.run)
            await reconnected.wait()
            nursery.cancel_scope.cancel()
    assert hellos[0]["heartbeat_timeout"] == 0.6
    assert agent.metrics.registry.get_sample_value("pipeline_agent_connection_failures_total") == 1


async def test_the_backend_closes_a_connection_that_falls_silent(tmp_path: Path) -> None:
    backend = backend_with(tmp_path)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(backend.run)
            conn = MessageStream(await trio.open_tcp_stream(*addresses.transport), "backend")
            await conn.send(hello(heartbeat_timeout=0.3))
            kinds = []
            while (message := await conn.receive()) is not None:
                kinds.append(message_type(message))
            await conn.aclose()
            nursery.cancel_scope.cancel()
    assert kinds[:2] == ["welcome", "checks"]  # then silence from us, and the backend hung up
    assert backend.metrics.registry.get_sample_value("pipeline_transport_errors_total", {"reason": "heartbeat"}) == 1


async def test_wrong_credentials_are_refused_with_a_clear_error_and_counted(tmp_path: Path) -> None:
    credentials = AgentCredentials(users={"agent": "s3cret"}, tokens=("tok-1",))
    backend = backend_with(tmp_path, agent_credentials=credentials)
    refusals = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(backend.run)
            for creds in ({"user": "agent", "password": "wrong"}, {"token": "tok-2"}, {}):
                conn = MessageStream(await trio.open_tcp_stream(*addresses.transport), "backend")
                await conn.send(hello(credentials=creds))
                refusals.append(wire_map(await conn.receive()))
                assert await conn.receive() is None  # and closed
                await conn.aclose()
            for creds in ({"user": "agent", "password": "s3cret"}, {"token": "tok-1"}):
                agent = Agent(AgentConfig(name="web1", backend_addrs=[addresses.transport], api_addr=None,
                                          credentials=creds))  # fmt: skip
                scope = trio.CancelScope()

                async def run(agent: Agent = agent, scope: trio.CancelScope = scope) -> None:
                    with scope:
                        await agent.run()

                nursery.start_soon(run)
                await agent.connected.wait()
                scope.cancel()
            nursery.cancel_scope.cancel()
    assert [r["message"] for r in refusals if r] == [
        "authentication failed for user 'agent'",
        "authentication failed: unknown agent token",
        "authentication required: the agent sent no credentials (--user/--password or --token)",
    ]
    assert backend.metrics.registry.get_sample_value("pipeline_transport_auth_failures_total") == 3


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a backend certificate for 127.0.0.1, and an agent client certificate, as PEM files."""
    directory = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    files = {"ca": directory / "ca.pem", "backend": directory / "backend.pem", "agent": directory / "agent.pem"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(files["backend"]))
    ca.issue_cert("web1.agents").private_key_and_cert_chain_pem.write_to_path(str(files["agent"]))
    return files


async def test_tls_and_mutual_tls(tmp_path: Path, pki: dict[str, Path]) -> None:
    # The backend requires agents to show a certificate signed by the CA (mutual TLS).
    backend = backend_with(tmp_path, tls=TLSFiles(cert_file=pki["backend"], trusted_ca_file=pki["ca"]))
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(backend.run)
            # A client that trusts the CA but shows no certificate of its own is refused ...
            no_cert = client_context(TLSFiles(trusted_ca_file=pki["ca"]))
            raw = trio.SSLStream(await trio.open_tcp_stream(*addresses.transport), no_cert, server_hostname="127.0.0.1")
            await raw.send_all(protocol.encode_frame(hello()))  # TLS 1.3: the client's side completes
            with pytest.raises(trio.BrokenResourceError):
                await raw.receive_some(100)
            await raw.transport_stream.aclose()
            # ... an agent with its certificate gets in.
            accepted = Agent(AgentConfig(name="web1", backend_addrs=[addresses.transport], api_addr=None,
                                         tls=TLSFiles(cert_file=pki["agent"], trusted_ca_file=pki["ca"])))  # fmt: skip
            nursery.start_soon(accepted.run)
            await accepted.connected.wait()
            nursery.cancel_scope.cancel()
    # counted (once the backend's side of that connection has run its course)
    assert backend.metrics.registry.get_sample_value("pipeline_transport_errors_total", {"reason": "tls"}) == 1


async def test_an_agent_does_not_talk_to_a_backend_it_cannot_verify(tmp_path: Path, pki: dict[str, Path]) -> None:
    backend = backend_with(tmp_path, tls=TLSFiles(cert_file=pki["backend"]))
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(backend.run)
            untrusting = client_context(TLSFiles())  # the system's CAs only
            raw = trio.SSLStream(await trio.open_tcp_stream(*addresses.transport), untrusting,
                                 server_hostname="127.0.0.1")  # fmt: skip
            with pytest.raises(trio.BrokenResourceError) as refused:
                await raw.do_handshake()
            await raw.transport_stream.aclose()
            nursery.cancel_scope.cancel()
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value.__cause__)


def test_the_backend_refuses_a_network_address_without_agent_credentials(tmp_path: Path) -> None:
    write_config(tmp_path / "config", EMPTY)
    result = subprocess.run(
        pipeline_command(
            *("backend", "--config", str(tmp_path / "config"), "--data", str(tmp_path / "data")),
            *("--api-addr", "127.0.0.1:0", "--transport-addr", "0.0.0.0:0"),
        ),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "0.0.0.0:0 is not a loopback address and no agent credentials are configured" in result.stderr


async def test_a_bad_frame_after_the_handshake_closes_only_that_connection(tmp_path: Path) -> None:
    backend = backend_with(tmp_path)
    bad_frames = [b"\x00\x00\x00\x02\xc1\xc1", b"\xff\xff\xff\xff", protocol.pack_frame({"type": "nonsense"})]
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(backend.run)
            for frame in bad_frames:
                conn = MessageStream(await trio.open_tcp_stream(*addresses.transport), "backend")
                await conn.send(hello())
                assert wire_map(await conn.receive())["type"] == "welcome"
                await conn.stream.send_all(frame)
                while await conn.receive() is not None:
                    pass  # the checks message, then the backend hangs up
                await conn.aclose()
            agent = Agent(AgentConfig(name="web1", backend_addrs=[addresses.transport], api_addr=None))
            nursery.start_soon(agent.run)
            await agent.connected.wait()  # the backend is still serving
            nursery.cancel_scope.cancel()
    errors = backend.metrics.registry.get_sample_value("pipeline_transport_errors_total", {"reason": "protocol"})
    assert errors == len(bad_frames)


async def test_a_first_frame_that_is_not_a_valid_hello_is_answered_with_the_field_at_fault(tmp_path: Path) -> None:
    backend = backend_with(tmp_path)
    sent = [
        {k: v for k, v in encode_message(hello()).items() if k != "entity"},
        {**encode_message(hello()), "token": 5},
        {**encode_message(hello()), "subscriptions": "linux"},
        {"type": "launch"},
    ]
    answers = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(backend.run)
            for raw in sent:
                conn = MessageStream(await trio.open_tcp_stream(*addresses.transport), "backend")
                await conn.stream.send_all(protocol.pack_frame(raw))
                answers.append(wire_map(await conn.receive()))
                assert await conn.receive() is None  # and closed
                await conn.aclose()
            nursery.cancel_scope.cancel()
    assert answers == [
        {"type": "error", "message": "hello message lacks entity"},
        {"type": "error", "message": "hello.token: expected a string, got int"},
        {"type": "error", "message": "hello.subscriptions: expected a list of strings"},
        {"type": "error", "message": "unknown message type 'launch'"},
    ]
    errors = backend.metrics.registry.get_sample_value("pipeline_transport_errors_total", {"reason": "protocol"})
    assert errors == len(sent)


async def test_a_spool_that_cannot_be_read_drops_the_connection_not_the_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    """A failing disk under the spool: the connection goes, the agent reconnects and reads again."""
    hellos = 0
    reconnected = trio.Event()

    async def backend(stream: trio.SocketStream) -> None:
        nonlocal hellos
        conn = MessageStream(stream, "agent")
        assert await conn.receive() is not None
        hellos += 1
        if hellos == 2:
            reconnected.set()
        await conn.send(Welcome("backend"))
        while await conn.receive() is not None:
            pass

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(partial(trio.serve_tcp, backend, 0, host="127.0.0.1"))
            port = listeners[0].socket.getsockname()[1]
            agent = Agent(AgentConfig(name="web1", backend_addrs=[("127.0.0.1", port)], api_addr=None))
            read = agent.spool.next_frame
            failures = iter([StoreError("spool/00000000000000000001.seg: cannot read the spool: EIO")])

            def failing_once(seq: int, max_count: int) -> Any:
                for failure in failures:
                    raise failure
                return read(seq, max_count)

            monkeypatch.setattr(agent.spool, "next_frame", failing_once)
            await nursery.start(agent.run)
            await reconnected.wait()
            nursery.cancel_scope.cancel()
    assert agent.metrics.registry.get_sample_value("pipeline_agent_connection_failures_total") == 1
