"""The daemons' HTTP server over real loopback sockets: keep-alive, bodies however framed,
100-continue, limits, bad requests and failing apps cost one connection and are counted.

Responses are read with h11's client side, so their framing is checked by a real parser;
one test drives curl, the client most push scripts use."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import AsyncIterator
from typing import Any

import h11
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from pipeline.http import Limits, serve_app
from pipeline.metrics import HttpMetrics


async def echo_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with what it was sent; ``/fail`` raises, ``/deny`` answers without reading the body."""
    if scope["path"] == "/fail":
        raise RuntimeError("the app broke")
    body = b""
    if scope["path"] != "/deny":
        while True:
            message = await receive()
            body += message["body"]
            if not message["more_body"]:
                break
    answer = json.dumps({"method": scope["method"], "path": scope["path"], "query": scope["query_string"].decode(),
                         "body": body.decode(), "client": scope["client"][0]}).encode()  # fmt: skip
    status = 401 if scope["path"] == "/deny" else 200
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(answer))]})  # fmt: skip
    await send({"type": "http.response.body", "body": answer})


@contextlib.asynccontextmanager
async def serving(limits: Limits | None = None) -> AsyncIterator[tuple[tuple[str, int], CollectorRegistry]]:
    registry = CollectorRegistry()
    metrics = HttpMetrics.create(registry, "test_http")
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            address = await nursery.start(functools.partial(serve_app, echo_app, ("127.0.0.1", 0), limits=limits or Limits(),
                                                            metrics=metrics))  # fmt: skip
            yield address, registry
            nursery.cancel_scope.cancel()


class Client:
    """One raw connection; requests are written as given, responses parsed by h11."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def response(self) -> tuple[int, dict[bytes, bytes], bytes]:
        status, headers, body = 0, {}, b""
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                self.h11.receive_data(await self.stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                status, headers = event.status_code, dict(event.headers)
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return status, headers, body
            elif not isinstance(event, h11.InformationalResponse):
                raise AssertionError(f"unexpected {event!r}")

    async def request(self, method: str, target: str, body: bytes = b"", **headers: str) -> tuple[int, Any]:
        fields = [("host", "test"), *headers.items()]
        if body:
            fields.append(("content-length", str(len(body))))
        await self.send_raw(self.h11.send(h11.Request(method=method, target=target, headers=fields)) or b"")
        await self.send_raw((self.h11.send(h11.Data(data=body)) or b"") + (self.h11.send(h11.EndOfMessage()) or b""))
        status, _, answer = await self.response()
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
        return status, json.loads(answer) if answer else None

    async def closed_by_server(self) -> bool:
        """True once the server has closed its side (EOF), whatever it sent before."""
        while data := await self.stream.receive_some(65536):
            del data
        return True


@contextlib.asynccontextmanager
async def connect(address: tuple[str, int]) -> AsyncIterator[Client]:
    stream = await trio.open_tcp_stream(*address)
    async with stream:
        yield Client(stream)


#: Requests, well and badly formed, for the property test: a request line, some headers, a body.
REQUEST_LINES = st.sampled_from([b"GET / HTTP/1.1", b"POST /in HTTP/1.1", b"HEAD /in HTTP/1.1", b"GET /in HTTP/1.0",
                                 b"POST /deny HTTP/1.1", b"GET /fail HTTP/1.1", b"POST /in?a=%zz HTTP/1.1", b"BREW / HTCPCP/1.0"])  # fmt: skip
HEADERS = st.lists(st.sampled_from([b"Content-Length: 3", b"Content-Length: 0", b"Content-Length: -1",
                                    b"Content-Length: 99999999", b"Transfer-Encoding: chunked", b"Expect: 100-continue",
                                    b"Connection: close", b"Connection: keep-alive", b"X: \x00", b": empty"]),
                   max_size=4)  # fmt: skip
BODIES = st.sampled_from([b"", b"abc", b"3\r\nabc\r\n0\r\n\r\n", b"zz\r\n", b"ffffffff\r\n"]) | st.binary(max_size=50)
REQUESTS = st.builds(lambda line, headers, body: line + b"\r\nHost: t\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body,
                     REQUEST_LINES, HEADERS, BODIES)  # fmt: skip
GARBAGE = st.lists(REQUESTS, min_size=1, max_size=3).map(b"".join) | st.binary(min_size=1, max_size=300)


def count(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(f"test_http_{name}", labels) or 0.0


async def test_one_keep_alive_connection_carries_many_requests() -> None:
    async with serving() as (address, registry), connect(address) as client:
        answers = [await client.request("POST", f"/events?n={i}", b'{"n": %d}' % i) for i in range(3)]
        status, answer = await client.request("GET", "/health%20check")
        assert count(registry, "connections") == 1
    assert [a for _, a in answers] == [
        {"method": "POST", "path": "/events", "query": f"n={i}", "body": f'{{"n": {i}}}', "client": "127.0.0.1"}
        for i in range(3)
    ]
    assert (status, answer["path"]) == (200, "/health check")  # the path is percent-decoded, as ASGI says
    assert count(registry, "responses_total", code="200") == 4


async def test_a_chunked_body_reaches_the_app_whole() -> None:
    async with serving() as (address, _), connect(address) as client:
        await client.send_raw(b"POST /in HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                              b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")  # fmt: skip
        status, _, body = await client.response()
    assert (status, json.loads(body)["body"]) == (200, "hello world")


async def test_a_client_waiting_for_100_continue_gets_it_and_then_its_answer() -> None:
    async with serving() as (address, _), connect(address) as client:
        head = [("host", "t"), ("content-length", "4"), ("expect", "100-continue")]
        await client.send_raw(client.h11.send(h11.Request(method="POST", target="/in", headers=head)) or b"")
        interim = await client.stream.receive_some(65536)
        await client.send_raw(
            (client.h11.send(h11.Data(data=b"ping")) or b"") + (client.h11.send(h11.EndOfMessage()) or b"")
        )
        client.h11.receive_data(interim)
        status, _, body = await client.response()
    assert interim.startswith(b"HTTP/1.1 100 ")
    assert (status, json.loads(body)["body"]) == (200, "ping")


async def test_curl_posts_a_large_body_with_expect_100_continue(tmp_path: Any) -> None:
    payload = tmp_path / "body.json"
    payload.write_text(json.dumps({"message": "x" * 5000}))
    async with serving() as ((host, port), _):
        result = await trio.run_process(
            ["curl", "-sS", "--data-binary", f"@{payload}", f"http://{host}:{port}/in"], capture_stdout=True
        )
    assert json.loads(json.loads(result.stdout)["body"]) == {"message": "x" * 5000}


async def test_an_unread_body_does_not_confuse_the_next_request() -> None:
    async with serving() as (address, _), connect(address) as client:
        denied = await client.request("POST", "/deny", b"x" * 100_000)
        after = await client.request("POST", "/in", b"next")
    assert denied[0] == 401
    assert after == (200, {"method": "POST", "path": "/in", "query": "", "body": "next", "client": "127.0.0.1"})


async def test_a_declared_body_over_the_limit_is_refused_before_it_is_read() -> None:
    async with serving(Limits(max_body=10)) as (address, registry), connect(address) as client:
        await client.send_raw(b"POST /in HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n")  # and no body yet
        status, headers, body = await client.response()
        assert await client.closed_by_server()
    assert (status, json.loads(body)) == (413, {"code": 2, "message": "body of 11 bytes exceeds 10"})
    assert headers[b"connection"] == b"close"
    assert count(registry, "errors_total", reason="body_too_large") == 1


async def test_a_chunked_body_over_the_limit_is_refused_as_it_grows() -> None:
    async with serving(Limits(max_body=10)) as (address, _), connect(address) as client:
        await client.send_raw(b"POST /in HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nb\r\nhello world\r\n")
        status, _, body = await client.response()
    assert (status, json.loads(body)) == (413, {"code": 2, "message": "body exceeds 10 bytes"})


@pytest.mark.parametrize(
    ("request_bytes", "status", "reason"),
    [
        (b"NOT HTTP AT ALL\r\n\r\n", 400, "bad_request"),
        (b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: ten\r\n\r\n", 400, "bad_request"),
        (b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n", 431, "head_too_large"),
    ],
)
async def test_a_bad_request_is_answered_and_costs_only_its_connection(
    request_bytes: bytes, status: int, reason: str
) -> None:
    async with serving() as (address, registry):
        async with connect(address) as client:
            await client.send_raw(request_bytes)
            answer = await client.response()
        async with connect(address) as client:
            after = await client.request("GET", "/in")
    assert answer[0] == status
    assert "message" in json.loads(answer[2])
    assert after[0] == 200
    assert count(registry, "errors_total", reason=reason) == 1


async def test_a_failing_app_gets_500_and_the_server_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    async with serving() as (address, registry):
        async with connect(address) as client:
            failed = await client.request("GET", "/fail")
        async with connect(address) as client:
            after = await client.request("GET", "/in")
    assert failed == (500, {"code": 1, "message": "internal server error"})
    assert after[0] == 200
    assert count(registry, "errors_total", reason="app_error") == 1
    (failure,) = [r for r in caplog.records if r.getMessage() == "HTTP app failed"]
    assert failure.exc_info is not None  # the traceback is logged
    assert str(failure.exc_info[1]) == "the app broke"


async def test_head_gets_the_headers_and_no_body() -> None:
    async with serving() as (address, _), connect(address) as client:
        await client.send_raw(b"HEAD /in HTTP/1.1\r\nHost: t\r\n\r\n")
        client.h11.send(h11.Request(method="HEAD", target="/in", headers=[("host", "t")]))  # for the parser's framing
        status, headers, body = await client.response()
    assert (status, body) == (200, b"")
    assert int(headers[b"content-length"]) > 0


async def test_http_1_0_closes_after_the_response() -> None:
    async with serving() as (address, _), connect(address) as client:
        await client.send_raw(b"GET /in HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := await client.stream.receive_some(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 ")
    assert data.endswith(b'"client": "127.0.0.1"}')


async def test_an_idle_keep_alive_connection_is_closed() -> None:
    async with serving(Limits(keep_alive_timeout=0.05)) as (address, registry), connect(address) as client:
        await client.request("GET", "/in")
        assert await client.closed_by_server()
        assert count(registry, "connections") == 0  # counted down before the server's side is closed
    assert count(registry, "errors_total", reason="timeout") == 0  # idling between requests is no error


async def test_a_request_that_stops_halfway_is_cut_off_and_counted() -> None:
    async with serving(Limits(read_timeout=0.05)) as (address, registry), connect(address) as client:
        await client.send_raw(b"POST /in HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhalf")
        assert await client.closed_by_server()
    assert count(registry, "errors_total", reason="timeout") == 1


async def test_a_starlette_app_cut_off_by_the_limit_answers_413_not_its_own_500() -> None:
    async def read_all(request: Request) -> Response:
        return Response(await request.body())

    app = Starlette(routes=[Route("/in", read_all, methods=["POST"])])
    async with trio.open_nursery() as nursery:
        address = await nursery.start(functools.partial(serve_app, app, ("127.0.0.1", 0), limits=Limits(max_body=10)))
        async with connect(address) as client:
            await client.send_raw(
                b"POST /in HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nb\r\nhello world\r\n"
            )
            status, _, body = await client.response()
        nursery.cancel_scope.cancel()
    assert (status, json.loads(body)) == (413, {"code": 2, "message": "body exceeds 10 bytes"})


async def test_the_status_line_carries_the_reason_phrase() -> None:
    async with serving() as (address, _), connect(address) as client:
        await client.send_raw(b"POST /deny HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
        head = await client.stream.receive_some(65536)
    assert head.startswith(b"HTTP/1.1 401 Unauthorized\r\n")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=GARBAGE)
async def test_whatever_a_client_sends_the_server_keeps_serving(garbage: bytes) -> None:
    # 500 ms, not 50: a legitimate request after the garbage must not meet a timeout on a busy machine
    async with serving(Limits(read_timeout=0.5, keep_alive_timeout=0.5)) as (address, registry):
        async with connect(address) as client:
            # on a loaded machine the timeouts may have closed the connection (reset) before the EOF
            with contextlib.suppress(trio.BrokenResourceError):
                await client.send_raw(garbage)
                await client.stream.send_eof()
                assert await client.closed_by_server()
        async with connect(address) as client:
            assert (await client.request("GET", "/in"))[0] == 200
    assert count(registry, "errors_total", reason="internal") == 0


async def test_a_refusal_after_a_head_request_is_framed_for_the_request_it_answers() -> None:
    async with serving(Limits(read_timeout=0.05)) as (address, registry):
        async with connect(address) as client:  # a HEAD whose body never comes: 400, without a body
            await client.send_raw(b"HEAD /in HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\n")
            await client.stream.send_eof()
            client.h11.send(h11.Request(method="HEAD", target="/in", headers=[("host", "t"), ("content-length", "3")]))
            status, _, body = await client.response()
        async with connect(address) as client:  # a HEAD answered, then a malformed request: 400 with its body
            await client.send_raw(b"HEAD /in HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nContent-Length: x\r\n\r\n")
            data = b""
            while chunk := await client.stream.receive_some(65536):
                data += chunk
    assert (status, body) == (400, b"")
    assert data.count(b"HTTP/1.1 ") == 2
    assert data.endswith(b'"}')  # the second refusal's JSON body, whole
    assert count(registry, "errors_total", reason="internal") == 0


async def test_connections_beyond_the_cap_are_told_to_retry_when_none_can_be_shed() -> None:
    async with serving(Limits(max_connections=1)) as (address, registry):
        async with connect(address) as first:  # busy: the app waits for the rest of its body
            await first.send_raw(b"POST /in HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nha")
            async with connect(address) as second:
                await second.send_raw(b"GET /in HTTP/1.1\r\nHost: t\r\n\r\n")
                status, headers, _ = await second.response()
                assert await second.closed_by_server()
            await first.send_raw(b"lf")
            first.h11.send(h11.Request(method="POST", target="/in", headers=[("host", "t"), ("content-length", "4")]))
            served, _, body = await first.response()  # the one served goes on
        async with connect(address) as third:  # room again
            after = await third.request("GET", "/in")
    assert (status, headers[b"retry-after"]) == (503, b"1")
    assert (served, json.loads(body)["body"]) == (200, "half")
    assert after[0] == 200
    assert count(registry, "errors_total", reason="too_many_connections") == 1


async def test_a_full_server_sheds_an_idle_keep_alive_connection_for_a_new_one() -> None:
    async with serving(Limits(max_connections=1)) as (address, registry), connect(address) as first:
        assert (await first.request("GET", "/in"))[0] == 200
        async with connect(address) as second:
            assert (await second.request("GET", "/in"))[0] == 200
            assert await first.closed_by_server()
    assert count(registry, "errors_total", reason="shed_idle") == 1
    assert count(registry, "errors_total", reason="too_many_connections") == 0


async def trickle(address: tuple[str, int], head: bytes, line: bytes) -> tuple[int, float]:
    """A slow client: ``head``, then ``line`` every 50 ms until answered or cut off; the status
    it got (0: closed without an answer) and after how long."""
    started = trio.current_time()
    async with connect(address) as client:
        await client.send_raw(head)
        status = 0
        async with trio.open_nursery() as nursery:

            async def keep_sending() -> None:
                with contextlib.suppress(trio.BrokenResourceError):
                    while True:
                        await trio.sleep(0.05)  # the slow client's own pace
                        await client.send_raw(line)

            nursery.start_soon(keep_sending)
            with contextlib.suppress(trio.BrokenResourceError):
                while (event := client.h11.next_event()) is h11.NEED_DATA:
                    client.h11.receive_data(await client.stream.receive_some(65536))
                status = event.status_code if isinstance(event, h11.Response) else 0
            nursery.cancel_scope.cancel()
    return status, trio.current_time() - started


async def test_a_head_trickling_in_is_cut_at_the_head_deadline_with_408() -> None:
    async with serving(Limits(head_timeout=0.3, read_timeout=5)) as (address, registry):
        status, elapsed = await trickle(address, b"GET /in HTTP/1.1\r\n", b"X-Slow: 1\r\n")
        async with connect(address) as client:
            after = await client.request("GET", "/in")
    assert status == 408
    assert 0.3 <= elapsed < 3  # bytes kept coming, well within the read timeout: the head's deadline ended it
    assert after[0] == 200
    assert count(registry, "errors_total", reason="head_timeout") == 1
    assert count(registry, "responses_total", code="408") == 1


async def test_a_body_trickling_in_is_cut_at_the_body_deadline_with_408() -> None:
    async with serving(Limits(body_timeout=0.3, read_timeout=5)) as (address, registry):
        status, elapsed = await trickle(address, b"POST /in HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n", b"x")
    assert status == 408
    assert 0.3 <= elapsed < 3
    assert count(registry, "errors_total", reason="body_timeout") == 1


async def test_slow_clients_holding_every_slot_neither_keep_out_a_real_request_nor_stay() -> None:
    limits = Limits(max_connections=4, head_timeout=1.0, read_timeout=5)
    statuses: list[int] = []
    async with serving(limits) as (address, registry), trio.open_nursery() as nursery:

        async def slow() -> None:
            statuses.append((await trickle(address, b"GET /in HTTP/1.1\r\n", b"X-Slow: 1\r\n"))[0])

        for _ in range(limits.max_connections):
            nursery.start_soon(slow)
        await trio.sleep(0.2)  # the slow clients' pace: each has sent a few lines by now
        started = trio.current_time()
        async with connect(address) as client:
            served = await client.request("GET", "/in")
        waited = trio.current_time() - started
    assert served[0] == 200
    assert waited < limits.head_timeout  # served by shedding a slow client, not after the deadline
    assert sorted(statuses) == [0, 408, 408, 408]  # one shed (closed unanswered), the others cut at the deadline
    assert count(registry, "errors_total", reason="head_timeout") == 3
    assert (
        count(registry, "errors_total", reason="shed_head") + count(registry, "errors_total", reason="shed_idle") == 1
    )
    assert count(registry, "errors_total", reason="too_many_connections") == 0


@pytest.mark.parametrize(
    "head",
    [
        b"POST /in HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"POST /in HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"POST /in HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    ],
)
async def test_ambiguous_framing_is_refused(head: bytes) -> None:
    async with serving() as (address, registry), connect(address) as client:
        await client.send_raw(head)
        status, _, body = await client.response()
        assert await client.closed_by_server()
    assert status == 400
    assert json.loads(body)["code"] == 2
    assert (
        count(registry, "errors_total", reason="ambiguous_framing")
        + count(registry, "errors_total", reason="bad_request")
        == 1
    )


async def failing_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("the app broke")


async def test_secrets_in_the_request_never_reach_the_log(caplog: pytest.LogCaptureFixture) -> None:
    from pipeline.logs import LogfmtFormatter

    caplog.set_level("DEBUG")
    async with trio.open_nursery() as nursery:
        address = await nursery.start(functools.partial(serve_app, failing_app, ("127.0.0.1", 0)))
        async with connect(address) as client:  # logged as an app failure, with its target
            await client.send_raw(b"POST /Sekrit-path-token/events?api_key=Sekrit-query-key&x=1 HTTP/1.1\r\n"
                                  b"Host: t\r\nAuthorization: Key Sekrit-header-key\r\nContent-Length: 0\r\n\r\n")  # fmt: skip
            assert (await client.response())[0] == 500
        async with connect(address) as client:  # refused, with h11 quoting the request line
            await client.send_raw(b"POST /Sekrit-path-token/event?token=Sekrit-query-key HTTP/9 junk\r\n\r\n")
            assert (await client.response())[0] == 400
        nursery.cancel_scope.cancel()
    text = "\n".join(LogfmtFormatter().format(record) for record in caplog.records)
    assert "HTTP app failed" in text
    assert "HTTP request refused" in text
    assert "/***/events?api_key=***&x=1" in text
    assert "Sekrit" not in text


def test_masking_keeps_what_is_no_secret() -> None:
    from pipeline.http_answers import mask_secrets

    assert mask_secrets("/api/core/v2/namespaces/default/events") == "/api/core/v2/namespaces/default/events"
    assert mask_secrets("/receiver/stsAgent/intake?API_KEY=k") == "/receiver/stsAgent/intake?API_KEY=***"
    assert mask_secrets("Authorization: Bearer abc.def") == "Authorization: Bearer ***"
    assert mask_secrets("/health?verbose=1") == "/health?verbose=1"
