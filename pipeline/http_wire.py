"""HTTP/1.1 server-side framing for :mod:`pipeline.http`: requests parsed by httptools (llhttp,
Node.js's C parser, as uvicorn uses it), responses written here; events and states named as
h11's, which the server used before.

Why not h11: it is pure Python, and parsing a request and framing its answer cost about 90 µs
of CPU on the two shared cores of ``bench/api_events.py`` (httptools: 3 µs), more than half the
server's own cost per request.

What the server relies on, kept from h11: requests are delivered one at a time however many
arrive in one read (pipelining); a malformed request (llhttp is strict: bad characters,
``Content-Length`` that is not a number or given twice, both ``Content-Length`` and
``Transfer-Encoding``, an HTTP/1.1 request without ``Host``) raises :class:`ProtocolError`
(400) once the requests before it are served; an unfinished head over ``max_head`` bytes after
a read raises it with 431; a connection closed in the middle of a request raises it too; the
answer is framed for the request (``Content-Length`` as the app gives it, else chunked to an
HTTP/1.1 client, else closed after the body; no body to ``HEAD``, 1xx, 204, 304), and the
connection is closed after it when either side says so or HTTP/1.0 without keep-alive.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import httptools


class State(enum.Enum):
    IDLE = "idle"
    SEND_RESPONSE = "send_response"
    SEND_BODY = "send_body"
    DONE = "done"
    MUST_CLOSE = "must_close"
    CLOSED = "closed"


IDLE, SEND_RESPONSE, SEND_BODY, DONE, MUST_CLOSE, CLOSED = State


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Any = _NeedData()


@dataclass(slots=True)
class Request:
    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    http_version: bytes
    keep_alive: bool = True
    #: ``Expect: 100-continue`` was sent
    expects_continue: bool = False


@dataclass(slots=True)
class Data:
    data: bytes


@dataclass(slots=True)
class EndOfMessage:
    pass


@dataclass(slots=True)
class ConnectionClosed:
    pass


@dataclass(slots=True)
class Response:
    status_code: int
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    reason: bytes = b""


@dataclass(slots=True)
class InformationalResponse:
    status_code: int
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    reason: bytes = b""


class ProtocolError(Exception):
    """The client broke HTTP; ``error_status_hint``: the status to answer (h11's name)."""

    def __init__(self, message: str, error_status_hint: int = 400) -> None:
        super().__init__(message)
        self.error_status_hint = error_status_hint


class LocalProtocolError(Exception):
    """The app asked for an answer HTTP cannot carry (a header with a line break, say)."""


_NO_BODY_STATUS = frozenset({204, 304})
#: Response heads :meth:`ServerConnection.respond` keeps, at most (beyond, each is made anew).
MAX_HEADS_KEPT = 256
_HEADS: dict[tuple[Any, ...], tuple[bytes, bool, bool]] = {}
_VERSIONS = {"1.1": b"1.1", "1.0": b"1.0"}
#: Reason phrases by status.
REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


class ServerConnection:
    """One connection's HTTP, server side: bytes in, events out; events in, bytes out."""

    def __init__(self, max_head: int) -> None:
        self.max_head = max_head
        self._parser = httptools.HttpRequestParser(self)
        self._events: deque[Any] = deque()
        self._error: ProtocolError | None = None
        self._refused: ProtocolError | None = None  # raised by a callback, as the parser stopped
        self._eof = False
        self._upgraded = False
        # the request being parsed
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._has_host = self._expects_continue = False
        self._in_message = False
        self._head_done = False
        self._head_bytes = 0
        # the request being served
        self.their_state = IDLE
        self.our_state = IDLE
        self._request: Request | None = None
        self._body_seen = False
        self._chunked = False
        self._keep_alive = True
        self._status = 200

    # -- httptools' callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_message, self._head_done = True, False
        self._url, self._headers = b"", []
        self._has_host = self._expects_continue = False

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        # noted as they come: cheaper than a scan of the headers for each
        if name == b"host":
            self._has_host = True
        elif name == b"expect" and value.lower() == b"100-continue":
            self._expects_continue = True
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._head_done, self._head_bytes = True, 0
        parser = self._parser
        version = parser.get_http_version()
        version_bytes = _VERSIONS.get(version) or version.encode()
        if version_bytes == b"1.1" and not self._has_host:
            self._refused = ProtocolError("Missing mandatory Host: header")
            raise self._refused
        self._events.append(Request(parser.get_method(), self._url, self._headers, version_bytes,
                                    parser.should_keep_alive(), self._expects_continue))  # fmt: skip

    def on_body(self, body: bytes) -> None:
        self._events.append(Data(body))

    def on_message_complete(self) -> None:
        self._in_message = False
        self._events.append(EndOfMessage())

    # -- reading -----------------------------------------------------------------------------------

    @property
    def head_begun(self) -> bool:
        """Bytes of a request not yet delivered have arrived (a head is under way)."""
        return self._in_message and not self._head_done and not self._events

    def receive_data(self, data: bytes) -> None:
        """Bytes from the client; ``b""``: the client closed its side."""
        if self._error is not None or self._eof or (data and self._upgraded):
            return
        if not data:
            self._eof = True
            if self._in_message:
                self._fail(ProtocolError("peer closed the connection in the middle of a request"))
            else:
                self._events.append(ConnectionClosed())
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # Upgrades (WebSocket, CONNECT) are not served: the request is answered and the
            # connection closed, whatever follows.
            self._upgraded = True
            for event in self._events:
                if type(event) is Request:
                    event.keep_alive = False
            if self._in_message:
                self._in_message = False
                self._events.append(EndOfMessage())
            return
        except httptools.HttpParserError as exc:
            # a callback's own refusal (no Host) comes out of the parser as a generic error
            error, self._refused = self._refused, None
            self._fail(error or ProtocolError(str(exc) or type(exc).__name__))
            return
        if self._in_message and not self._head_done:
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head:
                self._fail(ProtocolError(f"request head over {self.max_head} bytes", 431))

    def _fail(self, error: ProtocolError) -> None:
        self._error = error
        self._in_message = False

    def next_event(self) -> Any:
        """The next event of the request being served: a :class:`Request`, its :class:`Data`, its
        :class:`EndOfMessage`, :class:`ConnectionClosed`, or NEED_DATA. Raises ProtocolError when
        the client's bytes come to a malformed request."""
        if self.their_state is DONE or self.their_state is CLOSED:
            return NEED_DATA if self.their_state is DONE else ConnectionClosed()
        if self._events:
            event = self._events.popleft()
            kind = type(event)
            if kind is Request:
                self._start(event)
            elif kind is Data:
                self._body_seen = True
            elif kind is EndOfMessage:
                self.their_state = DONE
            elif kind is ConnectionClosed:
                self.their_state = CLOSED
            return event
        if self._error is not None:
            self.their_state = CLOSED
            raise self._error
        return NEED_DATA

    def _start(self, request: Request) -> None:
        self._request = request
        self.their_state = SEND_BODY
        self.our_state = SEND_RESPONSE
        self._body_seen = False
        self._keep_alive = request.keep_alive

    @property
    def they_are_waiting_for_100_continue(self) -> bool:
        request = self._request
        return (
            request is not None
            and self.their_state is SEND_BODY
            and self.our_state is SEND_RESPONSE
            and not self._body_seen
            and request.expects_continue
            and request.http_version == b"1.1"
        )

    def start_next_cycle(self) -> None:
        if self.our_state is not DONE or self.their_state is not DONE:
            raise LocalProtocolError("not done with the request")
        self.our_state = self.their_state = IDLE
        self._request = None

    # -- writing -----------------------------------------------------------------------------------

    def send(self, event: Any) -> bytes:
        kind = type(event)
        if kind is Data:
            if not event.data or self.our_state is not SEND_BODY or not self._has_body():
                return b""
            return b"%x\r\n%b\r\n" % (len(event.data), event.data) if self._chunked else event.data
        if kind is EndOfMessage:
            self.our_state = DONE if self._keep_alive else MUST_CLOSE
            return b"0\r\n\r\n" if self._chunked and self._has_body() else b""
        if kind is InformationalResponse:
            self._body_seen = True  # the client may send its body now; no second 100
            return _head(event.status_code, event.reason, event.headers)
        return self._response_head(event)

    def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
        """A whole answer at once: what sending its Response, Data and EndOfMessage makes."""
        request = self._request
        # The same few answers go out again and again (a 201, a refusal): their head is kept by
        # everything it depends on, and only the framing state is set again.
        shape = None if request is None else (request.method == b"HEAD", request.http_version == b"1.1")
        key = (status, tuple(headers), self._keep_alive, shape)
        known = _HEADS.get(key)
        if known is None:
            head = self._response_head(Response(status, headers, REASONS.get(status, b"")))
            if len(_HEADS) < MAX_HEADS_KEPT:
                _HEADS[key] = (head, self._keep_alive, self._chunked)
        else:
            head, self._keep_alive, self._chunked = known
            self._status = status
        data = head
        if body and self._has_body():
            data += b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body) if self._chunked else body
        elif self._chunked and self._has_body():
            data += b"0\r\n\r\n"
        self.our_state = DONE if self._keep_alive else MUST_CLOSE
        return data

    def _has_body(self) -> bool:
        request = self._request
        return not (request is not None and request.method == b"HEAD") and self._status not in _NO_BODY_STATUS

    def _response_head(self, response: Response) -> bytes:
        self._status = response.status_code
        headers = list(response.headers)
        names = {name.lower() for name, _ in headers}
        request = self._request
        if request is None:  # a refusal of what could not be parsed: nothing more on this connection
            self._keep_alive = False
        if b"connection" in names and any(
            n.lower() == b"connection" and b"close" in v.lower() for n, v in headers
        ):  # fmt: skip
            self._keep_alive = False
        self._chunked = False
        if self._has_body() and b"content-length" not in names:
            if request is not None and request.http_version == b"1.1":
                self._chunked = True
                headers.append((b"transfer-encoding", b"chunked"))
            else:
                self._keep_alive = False  # the end of the body is the end of the connection
        if not self._keep_alive and b"connection" not in names:
            headers.append((b"connection", b"close"))
        self.our_state = SEND_BODY
        return _head(response.status_code, response.reason, headers)


def _head(status: int, reason: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    lines = [b"HTTP/1.1 %d %b\r\n" % (status, reason)]
    for name, value in headers:
        if b"\r" in name or b"\n" in name or b"\r" in value or b"\n" in value or b":" in name:
            raise LocalProtocolError(f"illegal header {name!r}")
        lines.append(b"%b: %b\r\n" % (name, value))
    lines.append(b"\r\n")
    return b"".join(lines)
