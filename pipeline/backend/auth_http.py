"""The HTTP API's gate and its key management: every request but ``/health``, ``/metrics``,
``/version``, ``/auth`` and the push formats (which carry their key in the path or query)
needs a key or a bearer token; an ingest key may only push events. Refusals are 401 (no or
unknown credentials) or 403 (a role that may not), counted by reason."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from pipeline.backend.keys import ADMIN, INGEST, ROLES, ApiKeys, digest, ingest_may, new_key
from pipeline.logs import get_logger
from pipeline.metrics import BackendMetrics
from pipeline.model import new_event_id
from pipeline.model.apikey import StoredKey
from pipeline.store.service import StoreService

log = get_logger("backend.auth")

KEYS = "/api/pipeline/v1/keys"
_OPEN = re.compile(r"\A/(health|metrics|auth|version)\Z")
#: The push formats check their own key (Sematext: in the path; StackState: ``api_key``).
_PUSH = re.compile(r"\A/((receiver/)?stsAgent/intake|[^/]+/events?)\Z")


class RequireKey:
    """ASGI middleware: the gate in front of the API."""

    def __init__(self, app: ASGIApp, keys: ApiKeys, metrics: BackendMetrics) -> None:
        self.app = app
        self.keys = keys
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        if _OPEN.match(path) or (method == "POST" and _PUSH.match(path) and not path.startswith("/api/")):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        role = self.keys.role_of(headers.get(b"authorization", b"").decode("latin-1"))
        if role is None:
            self.metrics.api_unauthorized.labels("unauthenticated").inc()
            response: Response = JSONResponse({"message": "an API key is required: Authorization: Key <key>"},
                                              status_code=401)  # fmt: skip
        elif role == INGEST and not ingest_may(method, path):
            self.metrics.api_unauthorized.labels("forbidden").inc()
            response = JSONResponse({"message": "an ingest key may only push events"}, status_code=403)
        else:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)


def key_routes(keys: ApiKeys, store: StoreService, *, wall_clock: Callable[[], float] = time.time) -> list[Route]:
    async def login(request: Request) -> Response:
        body = None
        if request.method == "POST":
            try:
                body = json.loads(await request.body() or b"null")
            except json.JSONDecodeError:
                body = None
        token = keys.login(request.headers.get("authorization", ""), body)
        if token is None:
            return JSONResponse({"message": "unknown user or wrong password"}, status_code=401)
        return JSONResponse(token)

    async def create_key(request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
        except json.JSONDecodeError as exc:
            return JSONResponse({"message": f"malformed JSON: {exc}"}, status_code=400)
        role = body.get("role", INGEST) if isinstance(body, dict) else None
        if role not in ROLES:
            return JSONResponse({"message": f"role: expected one of {', '.join(ROLES)}, got {role!r}"}, status_code=400)
        secret = new_key()
        stored = StoredKey(new_event_id(), str(body.get("name", "")), role, digest(secret), int(wall_clock()))
        await store.put_api_key(stored)
        keys.stored[stored.digest] = stored
        log.info("API key created", key_id=stored.id, role=role, name=stored.name)
        return JSONResponse({"id": stored.id, "name": stored.name, "role": role, "key": secret}, status_code=201)

    async def list_keys(request: Request) -> Response:
        found = await store.list_api_keys()
        return JSONResponse([{"id": k.id, "name": k.name, "role": k.role, "created": k.created} for k in found])

    async def revoke_key(request: Request) -> Response:
        key_id = request.path_params["id"]
        if not await store.delete_api_key(key_id):
            return JSONResponse({"message": f"API key {key_id} not found"}, status_code=404)
        keys.stored = {d: k for d, k in keys.stored.items() if k.id != key_id}
        log.info("API key revoked", key_id=key_id)
        return Response(status_code=204)

    return [
        Route("/auth", login, methods=["GET", "POST"]),
        Route(KEYS, create_key, methods=["POST"]),
        Route(KEYS, list_keys, methods=["GET"]),
        Route(KEYS + "/{id}", revoke_key, methods=["DELETE"]),
    ]


__all__ = ["ADMIN", "KEYS", "RequireKey", "key_routes"]
