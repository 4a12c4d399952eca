"""The shipped handlers (jsonl, influxdb, webhook, email), in-process and as pipe programs,
against real servers on loopback: an HTTP app that records requests, and aiosmtpd.

Each case runs twice: ``plugin`` loads the handler by its entry point name and awaits
``handle``; ``pipe`` runs ``handlers/<name>`` as a subprocess with the event on stdin and the
options as flags. Servers answer before the handler returns, so nothing waits on a clock.
"""

from __future__ import annotations

import base64
import copy
import email
import email.policy
import json
import math
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trio
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pipeline.core.templates import RenderError
from pipeline.errors import HandlerError
from pipeline.http import serve_app
from pipeline.model import Check, Entity, Event, MetricPoint, Metrics, MetricTag, ObjectMeta
from pipeline.plugins import load
from pipeline.plugins.jsonl import JSONLinesHandler
from tests.support import REPO

pytestmark = pytest.mark.e2e

VIA = pytest.mark.parametrize("via", ["plugin", "pipe"])


def check_event(output: str = "DISK CRITICAL - / at 97%\n") -> Event:
    return Event(
        timestamp=1700000005,
        entity=Entity(metadata=ObjectMeta(name="web1", namespace="default")),
        check=Check(metadata=ObjectMeta(name="disk", namespace="default"), output=output, status=2, state="failing",
                    occurrences=3),
        id="0b7c1e1a-7f0e-4b8e-9b52-8f1a3c2d4e5f",
    )  # fmt: skip


def metrics_event() -> Event:
    event = check_event()
    event.metrics = Metrics(points=[
        MetricPoint(name="disk.used", value=81.5, timestamp=1700000000, tags=[MetricTag("mount", "/")]),
        MetricPoint(name="disk used,total", value=2.0, timestamp=0,
                    tags=[MetricTag("mount point", "/var/lib a=b,c"), MetricTag("empty", "")]),
        MetricPoint(name="disk.nan", value=float("nan"), timestamp=1700000000),
    ])  # fmt: skip
    return event


def flags(options: dict[str, Any]) -> list[str]:
    """Plugin options as the pipe program's flags."""
    argv: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            argv.append(flag if value else f"--no-{flag[2:]}")
        elif isinstance(value, list):
            argv += [arg for item in value for arg in (flag, item)]
        elif isinstance(value, dict):  # headers
            argv += [arg for name, text in value.items() for arg in ("--header", f"{name}: {text}")]
        else:
            argv += [flag, str(value)]
    return argv


async def run_pipe(name: str, options: dict[str, Any], stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(30):
        return await trio.run_process([sys.executable, str(REPO / "handlers" / name), *flags(options)],
                                      stdin=stdin, capture_stdout=True, capture_stderr=True, check=False)  # fmt: skip


def as_piped(event: Event) -> bytes:
    """``event`` as the backend pipes it to a handler: without points that are not finite, which
    it refuses where events enter (the in-process variant still gets them, to show they are skipped)."""
    piped = copy.deepcopy(event)
    if piped.metrics is not None:
        piped.metrics.points = [p for p in piped.metrics.points if math.isfinite(p.value)]
    return piped.to_json()


async def deliver(via: str, name: str, options: dict[str, Any], event: Event) -> None:
    """Hand ``event`` to the handler ``name``, in-process or as the pipe program; it must succeed."""
    if via == "plugin":
        with trio.fail_after(30):
            await load(name, options).handle(event)
    else:
        result = await run_pipe(name, options, as_piped(event))
        assert result.returncode == 0, result.stderr.decode()


async def fails(
    via: str, name: str, options: dict[str, Any], event: Event, error: type[Exception] = HandlerError
) -> str:
    """The reason the handler ``name`` gives for failing on ``event`` (in-process, by raising ``error``)."""
    if via == "plugin":
        with trio.fail_after(30), pytest.raises(error) as caught:
            await load(name, options).handle(event)
        return str(caught.value)
    result = await run_pipe(name, options, as_piped(event))
    assert result.returncode == 1, result.stderr.decode()
    return result.stderr.decode()


# -- jsonl --------------------------------------------------------------------------------------


@VIA
async def test_jsonl_appends_the_event_as_one_line_creating_directories(via: str, tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "events.jsonl"
    event = check_event("two\nlines")
    await deliver(via, "jsonl", {"path": str(path)}, event)
    await deliver(via, "jsonl", {"path": str(path)}, metrics_event())
    sent = metrics_event().to_json() if via == "plugin" else as_piped(metrics_event())
    assert path.read_bytes().splitlines(keepends=True) == [event.to_json() + b"\n", sent + b"\n"]


async def test_jsonl_lines_stay_whole_with_concurrent_writers(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    handler = JSONLinesHandler({"path": str(path)})
    outputs = [f"{i:03} " + "x" * 200_000 for i in range(20)]
    events = [check_event(output) for output in outputs]
    async with trio.open_nursery() as nursery:
        for event in events[:16]:
            nursery.start_soon(handler.handle, event)
        for event in events[16:]:
            nursery.start_soon(deliver, "pipe", "jsonl", {"path": str(path)}, event)
    lines = path.read_bytes().splitlines()
    assert sorted(Event.from_json(line).to_dict()["check"]["output"] for line in lines) == outputs


def test_jsonl_names_a_missing_path() -> None:
    with pytest.raises(HandlerError, match=r"plugin 'jsonl': option 'path': expected a file path, got None"):
        load("jsonl", {})


# -- an HTTP server that records requests -------------------------------------------------------


@dataclass
class Recorded:
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Recorder:
    """An HTTP app that records every request and answers ``status`` with ``answer``."""

    status: int = 204
    answer: bytes = b""
    requests: list[Recorded] = field(default_factory=list)

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        self.requests.append(Recorded(request.url.path, request.url.query, dict(request.headers), body))
        return Response(self.answer, status_code=self.status)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self.endpoint, methods=["POST"])])


@pytest.fixture
async def http(nursery: trio.Nursery) -> tuple[Recorder, str]:
    recorder = Recorder()
    host, port = await nursery.start(serve_app, recorder.app(), ("127.0.0.1", 0))
    return recorder, f"http://{host}:{port}"


# -- influxdb -----------------------------------------------------------------------------------

LINES = (
    b"disk.used,check=disk,entity=web1,mount=/ value=81.5 1700000000\n"
    b"disk\\ used\\,total,check=disk,entity=web1,mount\\ point=/var/lib\\ a\\=b\\,c value=2.0 1700000005\n"
)


@VIA
async def test_influxdb_v1_writes_line_protocol_with_basic_auth(via: str, http: tuple[Recorder, str]) -> None:
    recorder, url = http
    options = {"url": url + "/", "database": "metrics", "username": "writer", "password": "s3cret"}
    await deliver(via, "influxdb", options, metrics_event())
    [request] = recorder.requests
    assert (request.path, request.query, request.body) == ("/write", "db=metrics&precision=s", LINES)
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"writer:s3cret").decode()
    assert request.headers["content-type"] == "text/plain; charset=utf-8"


@VIA
async def test_influxdb_v2_writes_line_protocol_with_a_token(via: str, http: tuple[Recorder, str]) -> None:
    recorder, url = http
    options = {"url": url, "org": "acme", "bucket": "ops metrics", "token": "t0ken=="}
    await deliver(via, "influxdb", options, metrics_event())
    [request] = recorder.requests
    assert (request.path, request.query, request.body) == (
        "/api/v2/write",
        "org=acme&bucket=ops+metrics&precision=s",
        LINES,
    )
    assert request.headers["authorization"] == "Token t0ken=="


@VIA
async def test_influxdb_sends_nothing_for_an_event_without_points(via: str, http: tuple[Recorder, str]) -> None:
    recorder, url = http
    await deliver(via, "influxdb", {"url": url, "database": "metrics"}, check_event())
    assert recorder.requests == []


@VIA
async def test_influxdb_reports_an_error_answer(via: str, http: tuple[Recorder, str]) -> None:
    recorder, url = http
    recorder.status, recorder.answer = 400, b'{"error":"unable to parse"}'
    reason = await fails(via, "influxdb", {"url": url, "database": "metrics"}, metrics_event())
    assert f"POST to {url} answered 400 Bad Request: " + '{"error":"unable to parse"}' in reason


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": "http://x", "database": "m", "bucket": "b"}, r"options \['bucket', 'database'\] mix InfluxDB 1.x"),
        ({"url": "http://x", "org": "o", "bucket": "b"}, r"option 'token' is required"),
        ({"url": "http://x", "database": "m", "username": "u"}, r"options 'username' and 'password' go together"),
        (
            {"url": "http://x", "database": "m", "timeout": "soon"},
            r"option 'timeout': expected a positive number of seconds, got 'soon'",
        ),
        ({"database": "m"}, r"option 'url' is required"),
    ],
)
def test_influxdb_names_a_bad_option(options: dict[str, Any], message: str) -> None:
    with pytest.raises(HandlerError, match=r"plugin 'influxdb': " + message):
        load("influxdb", options)


# -- webhook ------------------------------------------------------------------------------------


@VIA
async def test_webhook_posts_the_event_json_by_default(via: str, http: tuple[Recorder, str]) -> None:
    recorder, url = http
    await deliver(via, "webhook", {"url": url + "/hooks/T000/B000/XXXX"}, check_event())
    [request] = recorder.requests
    assert request.path == "/hooks/T000/B000/XXXX"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.body) == check_event().to_dict()


SLACK = '{"text": {{ (event.entity.metadata.name ~ "/" ~ event.check.metadata.name ~ ": " ~ event.check.output) | tojson }}, "status": {{ event.check.status }}}'


@VIA
async def test_webhook_renders_the_body_template_and_sends_headers(via: str, http: tuple[Recorder, str]) -> None:
    recorder, url = http
    options = {
        "url": url + "/notify",
        "body_template": SLACK,
        "headers": {"X-Api-Key": "k3y", "Content-Type": "application/vnd.x+json"},
    }
    await deliver(via, "webhook", options, check_event('"quoted" {{ not rendered }}\n'))
    [request] = recorder.requests
    assert json.loads(request.body) == {"text": 'web1/disk: "quoted" {{ not rendered }}\n', "status": 2}
    assert (request.headers["x-api-key"], request.headers["content-type"]) == ("k3y", "application/vnd.x+json")


@VIA
async def test_webhook_reports_a_server_error(via: str, http: tuple[Recorder, str]) -> None:
    recorder, url = http
    recorder.status, recorder.answer = 500, b"pager service down"
    reason = await fails(via, "webhook", {"url": url + "/secret/path"}, check_event())
    assert f"POST to {url} answered 500 Internal Server Error: pager service down" in reason
    assert "secret" not in reason
    assert len(recorder.requests) == 1


@VIA
async def test_webhook_refuses_a_body_that_is_not_json(via: str, http: tuple[Recorder, str]) -> None:
    recorder, url = http
    options = {"url": url, "body_template": '{"text": "{{ event.check.output }}"}'}
    reason = await fails(via, "webhook", options, check_event('say "hi"'), RenderError)
    assert "body_template: rendered body is not JSON" in reason
    assert recorder.requests == []


async def test_webhook_reports_a_server_that_does_not_answer() -> None:
    with trio.socket.socket() as sock:  # a port that is bound but does not listen refuses connections
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with pytest.raises(HandlerError, match=rf"POST to http://127.0.0.1:{port} failed: ConnectError: "):
            await load("webhook", {"url": f"http://127.0.0.1:{port}/x", "timeout": 5}).handle(check_event())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"url": "http://x", "body_template": "{{ event.check.output "},
            r"body_template: template syntax error on line 1",
        ),
        ({"url": "hooks.slack.com/x"}, r"option 'url': expected an http:// or https:// URL, got 'hooks.slack.com/x'"),
        ({"url": "http://[::1"}, r"option 'url': 'http://\[::1' is not a URL"),
        (
            {"url": "http://x", "headers": {"X-Retries": 3}},
            r"option 'headers': expected a mapping of header names to strings",
        ),
        ({"url": "http://x", "timeout": 0}, r"option 'timeout': expected a positive number of seconds, got 0"),
        ({"url": "http://x", "body": "{}"}, r"unknown options \['body'\]"),
    ],
)
def test_webhook_names_a_bad_option(options: dict[str, Any], message: str) -> None:
    with pytest.raises(HandlerError, match=r"plugin 'webhook': " + message):
        load("webhook", options)


# -- email --------------------------------------------------------------------------------------


@dataclass
class Mailbox:
    """An aiosmtpd handler that keeps every message it accepts, with how the client logged in."""

    messages: list[tuple[Envelope, EmailMessage]] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        message = email.message_from_bytes(envelope.content.replace(b"\r\n", b"\n"), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append((envelope, message))
        return "250 OK"

    def authenticate(
        self, server: Any, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        self.logins.append((mechanism, auth_data.login.decode()))
        return AuthResult(success=auth_data.login == b"alerts" and auth_data.password == b"s3cret", handled=False)


#: aiosmtpd warns when it offers AUTH without TLS, which these tests do on purpose.
PLAINTEXT_AUTH = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


class LoopbackController(Controller):
    """aiosmtpd's Controller on port 0: it learns the real port before its readiness probe."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@asynccontextmanager
async def smtp_server(**smtp_options: Any) -> AsyncIterator[tuple[int, Mailbox]]:
    mailbox = Mailbox()
    controller = LoopbackController(mailbox, hostname="127.0.0.1", port=0, authenticator=mailbox.authenticate,
                                    **smtp_options)  # fmt: skip
    await trio.to_thread.run_sync(controller.start)
    try:
        yield controller.port, mailbox
    finally:
        await trio.to_thread.run_sync(controller.stop)


def mail_options(port: int, **extra: Any) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": port, "starttls": False, "from": "pipeline@example.com",
            "to": ["ops@example.com", "dba@example.com"], **extra}  # fmt: skip


@VIA
async def test_email_sends_the_default_subject_and_body(via: str) -> None:
    async with smtp_server() as (port, mailbox):
        await deliver(via, "email", mail_options(port), check_event("DISK CRITICAL - / at 97%\nmore detail\n"))
    [(envelope, message)] = mailbox.messages
    assert (envelope.mail_from, envelope.rcpt_tos) == ("pipeline@example.com", ["ops@example.com", "dba@example.com"])
    assert (message["From"], message["To"]) == ("pipeline@example.com", "ops@example.com, dba@example.com")
    assert message["Subject"] == "web1/disk: failing (status 2)"
    body = message.get_content()
    assert body.startswith("DISK CRITICAL - / at 97%\nmore detail\n\n")
    assert "Entity:      web1\n" in body
    assert "Status:      2 (failing)\n" in body
    assert "Occurrences: 3\n" in body
    assert mailbox.logins == []


@PLAINTEXT_AUTH
@pytest.mark.parametrize("mechanism", ["LOGIN", "PLAIN"])
@VIA
async def test_email_logs_in_and_renders_its_templates(via: str, mechanism: str) -> None:
    other = "PLAIN" if mechanism == "LOGIN" else "LOGIN"
    options = mail_options(0, username="alerts", password="s3cret", subject_template="ALERT {{ event.check.output }}",
                           body_template="{{ event.entity.metadata.name }} says: {{ event.check.output }}")  # fmt: skip
    server = smtp_server(auth_require_tls=False, auth_required=True, auth_exclude_mechanism=[other])
    async with server as (port, mailbox):
        await deliver(via, "email", {**options, "port": port}, check_event("line one\nline two\n"))
    [(_, message)] = mailbox.messages
    assert message["Subject"] == "ALERT line one line two"
    assert message.get_content() == "web1 says: line one\nline two\n"
    assert mailbox.logins == [(mechanism, "alerts")]


@PLAINTEXT_AUTH
@VIA
async def test_email_reports_a_refused_login(via: str) -> None:
    async with smtp_server(auth_require_tls=False, auth_required=True) as (port, mailbox):
        reason = await fails(via, "email", mail_options(port, username="alerts", password="wrong"), check_event())
    assert f"mail to ops@example.com, dba@example.com via 127.0.0.1:{port} failed: (535, " in reason
    assert "wrong" not in reason
    assert mailbox.messages == []


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, str]:
    """A server context for 127.0.0.1, and a CA file that trusts it."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return server, str(ca_file)


@VIA
async def test_email_upgrades_with_starttls_and_verifies_the_server(
    via: str, certificates: tuple[ssl.SSLContext, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server_context, ca_file = certificates
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)  # read by ssl's default context, here and in the pipe program
    server = smtp_server(tls_context=server_context, require_starttls=True, auth_required=True)
    async with server as (port, mailbox):
        options = mail_options(port, starttls=True, username="alerts", password="s3cret")
        await deliver(via, "email", options, check_event())
    [(_, message)] = mailbox.messages
    assert message["Subject"] == "web1/disk: failing (status 2)"
    assert mailbox.logins == [("PLAIN", "alerts")]


async def test_email_refuses_a_server_certificate_it_cannot_verify(certificates: tuple[ssl.SSLContext, str]) -> None:
    server_context, _ = certificates
    async with smtp_server(tls_context=server_context, require_starttls=True) as (port, mailbox):
        with pytest.raises(HandlerError, match=r"CERTIFICATE_VERIFY_FAILED"):
            await load("email", mail_options(port, starttls=True)).handle(check_event())
    assert mailbox.messages == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"to": ["a@example.com"]}, r"option 'from' is required"),
        ({"from": "p@example.com", "to": []}, r"option 'to': expected a list of addresses, got \[\]"),
        ({"from": "p@example.com", "to": ["a@example.com"], "port": "25"}, r"option 'port': expected int, got '25'"),
        (
            {"from": "p@example.com", "to": ["a@example.com"], "starttls": "no"},
            r"option 'starttls': expected bool, got 'no'",
        ),
        (
            {"from": "p@example.com", "to": ["a@example.com"], "subject_template": "{% if %}"},
            r"subject_template: template syntax error",
        ),
        ({"from": "p@example.com", "to": ["a@example.com"], "form": "x"}, r"unknown options \['form'\]"),
        (
            {"from": "p@example.com", "to": ["a@example.com"], "username": "u"},
            r"options 'username' and 'password' go together",
        ),
    ],
)
def test_email_names_a_bad_option(options: dict[str, Any], message: str) -> None:
    with pytest.raises(HandlerError, match=r"plugin 'email': " + message):
        load("email", options)


# -- all of them ------------------------------------------------------------------------------


MINIMAL_OPTIONS: dict[str, dict[str, Any]] = {
    "jsonl": {"path": "/nonexistent/events.jsonl"},
    "influxdb": {"url": "http://127.0.0.1:9", "database": "metrics"},
    "webhook": {"url": "http://127.0.0.1:9"},
    "email": {"from": "pipeline@example.com", "to": ["ops@example.com"]},
}


@pytest.mark.parametrize("name", MINIMAL_OPTIONS)
async def test_a_pipe_program_refuses_stdin_that_is_not_an_event(name: str) -> None:
    for stdin, problem in [
        (b'{"check": ', "malformed JSON at line 1 column 11"),
        (b'{"chekc": {}}', "chekc: unknown field"),
    ]:
        result = await run_pipe(name, MINIMAL_OPTIONS[name], stdin)
        assert result.returncode == 2
        assert f"{name}: stdin is not a Sensu event: " in result.stderr.decode()
        assert problem in result.stderr.decode()


@pytest.mark.parametrize("name", MINIMAL_OPTIONS)
def test_every_shipped_handler_is_an_entry_point_with_an_executable_pipe_program(name: str) -> None:
    assert callable(getattr(load(name, MINIMAL_OPTIONS[name]), "handle", None))
    assert (REPO / "handlers" / name).stat().st_mode & 0o111, f"handlers/{name} is not executable"
