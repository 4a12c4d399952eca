"""An app's direct route (``app.direct``, the events API's submissions take it) answers every
request byte for byte as the same app does through ASGI: bodies however framed, 100-continue,
refusals before the body is read, limits, a failing app, HTTP/1.0; and counts the same."""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest
import trio
from prometheus_client import CollectorRegistry
from starlette.types import Receive, Scope, Send

from pipeline.http import Limits, serve_app
from pipeline.http_exchange import Answer, BodyTaker
from pipeline.metrics import HttpMetrics


def answer(method: str, path: str, body: bytes) -> Answer:
    """What the app answers: a 401 to ``/deny`` (body unread), else what it was sent."""
    if path == "/deny":
        text = b'{"code": 6, "message": "no"}'
        return 401, [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(text))], text
    text = json.dumps({"method": method, "path": path, "body": body.decode()}).encode()
    return 200, [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(text))], text


async def asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["path"] == "/fail":
        raise RuntimeError("the app broke")
    body = b""
    if scope["path"] != "/deny":
        while True:
            message = await receive()
            body += message["body"]
            if not message["more_body"]:
                break
    status, headers, text = answer(scope["method"], scope["path"], body)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": text})


class DirectApp:
    """The same app, answering every request by its direct route."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("served through ASGI")

    def direct(
        self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], client: tuple[str, int] | None
    ) -> Answer | BodyTaker | None:
        path = target.decode()
        if path == "/deny":
            return answer(method.decode(), path, b"")

        async def take(body: bytes) -> Answer:
            if path == "/fail":
                raise RuntimeError("the app broke")
            return answer(method.decode(), path, body)

        return take


HEAD = b"POST /echo HTTP/1.1\r\nHost: x\r\n"
LAST = b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
CHUNKED = b"Transfer-Encoding: chunked\r\n\r\n"
#: Each: what the client sends, in turns; a turn after the first is sent once the server has
#: answered something (the 100 Continue, say).
CONVERSATIONS = {
    "keep-alive, length and chunked": [HEAD + b"Content-Length: 5\r\n\r\nhello" + HEAD + CHUNKED
                                       + b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n" + LAST],
    "refused unread, then the next": [b"POST /deny HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" + LAST],
    "the app fails": [b"POST /fail HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi" + LAST],
    "declared too large": [HEAD + b"Content-Length: 2000\r\n\r\n"],
    "chunked too large": [HEAD + CHUNKED + b"300\r\n" + b"x" * 0x300 + b"\r\n300\r\n" + b"x" * 0x300 + b"\r\n"],
    "ambiguous framing": [HEAD + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"],
    "100-continue": [HEAD + b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\n", b"hello" + LAST],
    "100-continue refused": [b"POST /deny HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
                             b"hello" + LAST],
    "HTTP/1.0": [b"POST /echo HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi"],
    "cut off halfway": [HEAD + b"Content-Length: 10\r\n\r\nhal"],
}  # fmt: skip


async def converse(app: Any, turns: list[bytes]) -> tuple[bytes, dict[str, float]]:
    """Every byte the server sends back until it closes, and its responses by status."""
    registry = CollectorRegistry()
    metrics = HttpMetrics.create(registry, "test_direct")
    received = b""
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            address = await nursery.start(functools.partial(serve_app, app, ("127.0.0.1", 0),
                                                            limits=Limits(max_body=1000), metrics=metrics))  # fmt: skip
            stream = await trio.open_tcp_stream(*address)
            for turn in turns:
                if received or turn is not turns[0]:
                    received += await stream.receive_some(65536)
                await stream.send_all(turn)
            if turns[-1].endswith(b"hal"):
                await stream.send_eof()
            while data := await stream.receive_some(65536):
                received += data
            await stream.aclose()
            nursery.cancel_scope.cancel()
    counts = {
        sample.labels["code"]: sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == "test_direct_responses_total"
    }
    return received, counts


@pytest.mark.parametrize("turns", list(CONVERSATIONS.values()), ids=list(CONVERSATIONS))
async def test_the_direct_route_answers_byte_for_byte_as_the_app_through_asgi(turns: list[bytes]) -> None:
    through_asgi = await converse(asgi_app, turns)
    direct = await converse(DirectApp(), turns)
    assert direct == through_asgi
    assert through_asgi[0].startswith(b"HTTP/1.1 ")
