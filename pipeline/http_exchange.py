"""One request and its response as the ASGI app sees them (:class:`Exchange`), and the two ways
a request ends early (:class:`Refused`, :class:`PeerGone`): the part of :mod:`pipeline.http`
that speaks ASGI, apart from the connection loop that reads, frames and times requests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import unquote

import trio
from starlette.types import Message, Scope

from pipeline import http_wire as wire
from pipeline.http_answers import mask_secrets
from pipeline.logs import get_logger

if TYPE_CHECKING:
    from pipeline.http import _Connection

log = get_logger("http")

#: A whole answer: status, headers, body (``Content-Length`` given by the headers, as an app's).
Answer: TypeAlias = tuple[int, list[tuple[bytes, bytes]], bytes]
#: What makes the answer of a request from its whole body.
BodyTaker: TypeAlias = Callable[[bytes], Awaitable[Answer]]
#: An app's direct route (its attribute ``direct``): given a request's method, target, headers and
#: client, its answer at once (a refusal, the body unread), a :data:`BodyTaker`, or None for the
#: app to serve it through ASGI. The hot routes skip the ASGI scope, messages and exchange: about
#: a fifth of a request's CPU (``bench/api_events.py``).
Direct: TypeAlias = Callable[
    [bytes, bytes, list[tuple[bytes, bytes]], "tuple[str, int] | None"], Answer | BodyTaker | None
]


class Refused(Exception):
    """The request cannot be served; answered with ``status`` (when possible) and the connection closed."""

    def __init__(self, reason: str, status: int, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status


class PeerGone(Exception):
    """The client closed the connection or stopped sending: nothing to answer."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Exchange:
    """One request and its response, as the ASGI app sees them."""

    def __init__(self, connection: _Connection, request: wire.Request) -> None:
        self.connection = connection
        self.request = request
        self.response: wire.Response | None = None
        self.head_sent = False
        #: set once the whole response is sent; a receive() after the body waits for it
        self.finished = trio.Event()
        #: why the request was cut off while the app read it; from then on the app's sends are ignored
        #: (a framework answers the exception with a 500 of its own, which must not go out)
        self.cut: Refused | PeerGone | None = None

    @property
    def complete(self) -> bool:
        return self.finished.is_set()

    async def run(self) -> None:
        connection, request = self.connection, self.request
        try:
            await connection.app(self.scope(), self.receive, self.send)
        except (Refused, PeerGone):
            raise
        except Exception as exc:
            if self.cut is not None:
                raise self.cut from exc
            log.exception("HTTP app failed", peer=connection.peer, method=request.method.decode(),
                          target=mask_secrets(request.target.decode("latin-1")))  # fmt: skip
            if not self.head_sent:
                raise Refused("app_error", 500, "internal server error") from exc
            connection.count_error("app_error")  # the response is cut short: the connection closes
            return
        if self.cut is not None:
            raise self.cut  # the app caught it and went on
        if not self.head_sent:
            raise Refused("app_error", 500, "the application sent no response")

    def scope(self) -> Scope:
        request = self.request
        raw_path, _, query = request.target.partition(b"?")
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": request.http_version.decode(),
            "method": request.method.decode(),
            "scheme": "http",
            "path": unquote(raw_path.decode("latin-1")),
            "raw_path": raw_path,
            "query_string": query,
            "root_path": "",
            "headers": list(request.headers),
            "client": self.connection.client,
            "server": self.connection.server,
        }

    async def receive(self) -> Message:
        try:
            return await self._read_body()
        except (Refused, PeerGone) as cut:
            self.cut = cut
            raise

    async def _read_body(self) -> Message:
        if self.connection.body_done:
            await self.finished.wait()  # nothing more will come; ASGI says so with a disconnect
            return {"type": "http.disconnect"}
        body, more = await self.connection.read_body_part()
        return {"type": "http.request", "body": body, "more_body": more}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start" and self.response is None:
            self.response = response(message["status"], message.get("headers", []))
            return
        if kind != "http.response.body" or self.finished.is_set() or self.cut is not None:
            return  # ignored, as ASGI allows: a message after the response is complete
        if self.response is None:
            raise RuntimeError("ASGI: http.response.body before http.response.start")
        events: list[Any] = []
        if not self.head_sent:
            events.append(self.response)
        body = message.get("body", b"")
        if body and self.request.method != b"HEAD":
            events.append(wire.Data(data=body))
        if not message.get("more_body", False):
            events.append(wire.EndOfMessage())
        await self.connection.send(*events)
        if not self.head_sent:
            self.head_sent = True
            self.connection.count_response(self.response.status_code)
        if not message.get("more_body", False):
            self.finished.set()


def response(status: int, headers: Any) -> wire.Response:
    return wire.Response(status_code=status, headers=headers, reason=wire.REASONS.get(status, b""))


def check_framing(request: wire.Request, max_body: int) -> None:
    """Refuse, before the app sees it, a body whose length is ambiguous or declared too large."""
    declared = None
    for name, value in request.headers:
        if name == b"content-length":
            declared = int(value)  # the parser has checked that it is a number
            break
    if declared is None:
        return
    if any(name == b"transfer-encoding" for name, _ in request.headers):
        raise Refused("ambiguous_framing", 400,
                      "both Content-Length and Transfer-Encoding: the body's length is ambiguous")  # fmt: skip
    if declared > max_body:
        raise Refused("body_too_large", 413, f"body of {declared} bytes exceeds {max_body}")
