"""Routes take the query parameters they declare and refuse the others by name, before the endpoint runs."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from pipeline.errors import UnknownQueryParameter
from pipeline.http_params import ANY, declared, guarded, refusal, takes_any_query, takes_query


def test_a_refusal_names_the_first_unknown_parameter_and_what_the_path_takes() -> None:
    assert refusal(["since", "limit"], ("since", "limit")) is None
    unknown = refusal(["since", "entitty", "x"], ("since", "entity"))
    assert isinstance(unknown, UnknownQueryParameter)
    assert (unknown.name, str(unknown)) == (
        "entitty",
        "entitty: unknown query parameter (this path takes: since, entity)",
    )
    assert str(refusal(["force"], ())) == "force: unknown query parameter (this path takes none)"
    assert str(refusal(["a" * 500], ())).startswith("a" * 60 + ": ")  # the client's text, cut


async def test_guarded_routes_refuse_count_and_never_run_the_endpoint() -> None:
    ran: list[str] = []
    counted: list[str] = []

    async def plain(request: Request) -> Response:
        ran.append("plain")
        return PlainTextResponse("ok")

    @takes_query("limit")
    async def limited(request: Request) -> Response:
        ran.append("limited")
        return PlainTextResponse(request.query_params.get("limit", ""))

    @takes_any_query("a test of the exception")
    async def anything(request: Request) -> Response:
        return PlainTextResponse("any")

    routes = guarded([Route("/plain", plain, methods=["DELETE"]), Route("/limited/{x}", limited, name="lim"),
                      Route("/any", anything)], counted.append)  # fmt: skip
    assert [declared(route.endpoint) for route in routes if isinstance(route, Route)] == [(), ("limit",), ANY]
    app = Starlette(routes=routes)
    assert app.url_path_for("lim", x="1") == "/limited/1"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        assert (await client.delete("/plain")).text == "ok"
        force = await client.delete("/plain?force=true")
        assert (force.status_code, force.json()) == (400, {"code": 2, "message": (
            "force: unknown query parameter (this path takes none)")})  # fmt: skip
        assert (await client.get("/limited/1?limit=5")).text == "5"
        assert (await client.get("/limited/1?limit=5&limt=6")).status_code == 400
        assert (await client.get("/any?whatever=1")).text == "any"
    assert ran == ["plain", "limited"]
    assert counted == ["/plain", "/limited/{x}"]
