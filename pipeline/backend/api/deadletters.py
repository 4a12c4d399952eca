"""pipeline's own dead letters API: events a handler failed to take, to list, replay or drop."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline.backend.api.common import not_found
from pipeline.backend.api.lists import listed, takes_list_query
from pipeline.model.codec import encode
from pipeline.store.service import StoreService

DEAD_LETTERS = "/api/pipeline/v1/deadletters"


@dataclass(slots=True, frozen=True)
class ReplayResult:
    id: str
    ok: bool
    error: str


Replay = Callable[[str], Awaitable[ReplayResult | None]]


def dead_letter_routes(store: StoreService, replay: Replay) -> list[Route]:
    @takes_list_query
    async def list_dead_letters(request: Request) -> Response:
        letters = await store.list_dead_letters()  # oldest first, as the store keeps them
        return listed(request, None, letters, lambda letter: (f"{letter.created:020d}", letter.id), encode)

    async def get_dead_letter(request: Request) -> Response:
        letter = await store.get_dead_letter(request.path_params["id"])
        if letter is None:
            return not_found("dead letter", request.path_params["id"])
        return JSONResponse(encode(letter))

    async def delete_dead_letter(request: Request) -> Response:
        if not await store.delete_dead_letter(request.path_params["id"]):
            return not_found("dead letter", request.path_params["id"])
        return Response(status_code=204)

    async def replay_dead_letter(request: Request) -> Response:
        result = await replay(request.path_params["id"])
        if result is None:
            return not_found("dead letter", request.path_params["id"])
        body = {"id": result.id, "replayed": result.ok, "error": result.error}
        return JSONResponse(body, status_code=200 if result.ok else 502)

    return [
        Route(DEAD_LETTERS, list_dead_letters, methods=["GET"]),
        Route(DEAD_LETTERS + "/{id}", get_dead_letter, methods=["GET"]),
        Route(DEAD_LETTERS + "/{id}", delete_dead_letter, methods=["DELETE"]),
        Route(DEAD_LETTERS + "/{id}/replay", replay_dead_letter, methods=["POST"]),
    ]
