"""The HTTP API's gate, Sensu Go's ``/auth`` family and the key management.

Every request but ``/health``, ``/ready``, ``/metrics``, ``/version``, the ``/auth`` family
(which checks its own credentials) and the push formats (which carry their key in the path or
query) needs a key or a bearer token; an ingest key may only push events. Refusals are 401 (no
or unknown credentials) or 403 (a role that may not: an ingest key anything but a push, a
viewer key anything but a read), counted by reason. Wrong passwords, keys,
access and refresh tokens are counted in ``pipeline_auth_failures`` and slowed per source
address (:mod:`pipeline.backend.throttle`): 429 while an address is throttled."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from pipeline.backend.dashboard import DASHBOARD_PATHS
from pipeline.backend.keys import ADMIN, INGEST, ROLES, VIEWER, ApiKeys, digest, ingest_may, new_key, viewer_may
from pipeline.backend.sessions import SessionRefused
from pipeline.backend.throttle import AuthGuard, source_of
from pipeline.errors import ValidationError
from pipeline.http_answers import answer_of, error_response
from pipeline.http_exchange import Answer, BodyTaker, Direct
from pipeline.logs import get_logger
from pipeline.metrics import BackendMetrics
from pipeline.model import new_event_id
from pipeline.model.apikey import StoredKey
from pipeline.model.codec import load_json
from pipeline.store.service import StoreService

log = get_logger("backend.auth")

KEYS = "/api/pipeline/v1/keys"
#: Open paths; the ``/auth`` family checks its own credentials (``/auth/token`` and
#: ``/auth/logout`` take an expired access token, as Sensu Go's do).
_OPEN = re.compile(r"\A/(health|ready|metrics|version|auth(/(test|token|logout))?)\Z")
#: The push formats check their own key (Sematext: in the path; StackState: ``api_key``).
_PUSH = re.compile(r"\A/((receiver/)?stsAgent/intake|[^/]+/events?)\Z")


class RequireKey:
    """ASGI middleware: the gate in front of the API."""

    def __init__(self, app: ASGIApp, keys: ApiKeys, metrics: BackendMetrics, guard: AuthGuard | None = None) -> None:
        self.app = app
        self.keys = keys
        self.metrics = metrics
        self.guard = guard or AuthGuard(metrics)
        #: the app's own direct route (:class:`~pipeline.backend.api.event_intake.FastEvents`'s), gated here
        self._direct: Direct | None = getattr(app, "direct", None)

    def direct(
        self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], client: tuple[str, int] | None
    ) -> Answer | BodyTaker | None:
        """The app's direct route behind the gate (:data:`pipeline.http_exchange.Direct`): it only
        takes paths under ``/api/``, which are neither open nor push paths, so the gate is the key."""
        taken = None if self._direct is None else self._direct(method, target, headers, client)
        if taken is None:
            return None
        refusal = self._refusal(headers, client, method.decode(), target.decode("latin-1"))
        return taken if refusal is None else answer_of(refusal)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        if (
            _OPEN.match(path)
            or (method == "POST" and _PUSH.match(path) and not path.startswith("/api/"))
            or DASHBOARD_PATHS.match(path)  # the dashboard checks its own session cookie
        ):
            await self.app(scope, receive, send)
            return
        response = self._refusal(scope["headers"], scope.get("client"), method, path)
        if response is None:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)

    def _refusal(
        self, headers: list[tuple[bytes, bytes]], client: tuple[str, int] | None, method: str, path: str
    ) -> Response | None:
        raw = b""
        for name, value in headers:
            if name == b"authorization":
                raw = value
        authorization = raw.decode("latin-1")
        source = client[0] if client else "?"
        if authorization and (throttled := self.guard.refusal(source)) is not None:
            return throttled  # before the credentials are looked at: a guess while throttled tells nothing
        role = self.keys.role_of(authorization)
        if role is None:
            self.metrics.api_unauthorized.labels("unauthenticated").inc()
            bearer = authorization[:7].lower() == "bearer "
            if authorization:
                self.guard.failed(source, "bearer_token" if bearer else "api_key")
            if bearer:
                return error_response(401, "the access token is unknown or expired: refresh it (POST /auth/token)")
            return error_response(401, "an API key is required: Authorization: Key <key>")
        if (why := forbidden(role, method, path)) is not None:
            self.metrics.api_unauthorized.labels("forbidden").inc()
            return error_response(403, why)
        return None


def forbidden(role: str, method: str, path: str) -> str | None:
    """Why ``role`` may not ``method`` ``path`` (the 403's words), or None: it may."""
    if role == INGEST and not ingest_may(method, path):
        return "an ingest key may only push events"
    if role == VIEWER and not viewer_may(method):
        return f"a viewer key may only read (GET), not {method} {path}"
    return None


def may_post_events(
    keys: ApiKeys, guard: AuthGuard, namespace_exists: Callable[[str], bool]
) -> Callable[[str, str, str], bool]:
    """The front process's question (:mod:`pipeline.backend.front`): may ``authorization``, from
    ``source``, post an event to ``namespace``? What :class:`RequireKey` lets through, with
    nothing counted: a refused request is handed to the backend, whose gate counts it."""

    def may_post(authorization: str, namespace: str, source: str) -> bool:
        if not authorization or guard.throttle.wait(source, guard.clock()) > 0:
            return False
        role = keys.role_of(authorization)
        path = f"/api/core/v2/namespaces/{namespace}/events"
        return role is not None and forbidden(role, "POST", path) is None and namespace_exists(namespace)

    return may_post


#: A key's name says what it is for; it is shown in tables, one line each.
MAX_KEY_NAME = 256


def key_request(body: Any) -> tuple[str, str]:
    """The role and name a ``POST`` to the keys API asks for (raises ValidationError naming the field)."""
    if not isinstance(body, dict):
        raise ValidationError("", "expected a mapping with role and name")
    unknown = sorted(str(k) for k in body if k not in ("role", "name"))
    if unknown:
        raise ValidationError(unknown[0], "unknown field (expected role, name)")
    role, name = body.get("role", INGEST), body.get("name", "")
    if role not in ROLES:
        raise ValidationError("role", f"expected one of {', '.join(ROLES)}, got {role!r}")
    if not isinstance(name, str):
        raise ValidationError("name", f"expected a string, got {type(name).__name__}")
    if len(name) > MAX_KEY_NAME or not name.isprintable():
        raise ValidationError("name", f"expected at most {MAX_KEY_NAME} printable characters")
    return role, name


def key_routes(keys: ApiKeys, store: StoreService, *, wall_clock: Callable[[], float] = time.time) -> list[Route]:
    async def create_key(request: Request) -> Response:
        try:
            role, name = key_request(load_json(await request.body() or b"{}"))
        except ValidationError as exc:
            return error_response(400, str(exc))
        secret = new_key()
        stored = StoredKey(new_event_id(), name, role, digest(secret), int(wall_clock()))
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
            return error_response(404, f"API key {key_id} not found")
        keys.stored = {d: k for d, k in keys.stored.items() if k.id != key_id}
        log.info("API key revoked", key_id=key_id)
        return Response(status_code=204)

    return [
        Route(KEYS, create_key, methods=["POST"]),
        Route(KEYS, list_keys, methods=["GET"]),
        Route(KEYS + "/{id}", revoke_key, methods=["DELETE"]),
    ]


def auth_routes(keys: ApiKeys, guard: AuthGuard) -> list[Route]:
    """Sensu Go's ``/auth`` family: log in, test a password, refresh, log out."""

    async def login(request: Request) -> Response:
        source = source_of(request)
        if (throttled := guard.refusal(source)) is not None:
            return throttled
        body = None
        if request.method == "POST" and await request.body():  # pipeline's own: Sensu Go's is GET with Basic
            body = await json_body(request)
            if isinstance(body, Response):
                return body
        if "authorization" not in request.headers and body is None:
            return error_response(401, "credentials required: Authorization: Basic")
        evicted = keys.sessions.evicted
        tokens = keys.login(request.headers.get("authorization", ""), body)
        if tokens is None:
            guard.failed(source, "password")
            return error_response(401, "unknown user or wrong password")
        if keys.sessions.evicted > evicted:
            guard.metrics.sessions_evicted.inc(keys.sessions.evicted - evicted)
            log.warning("oldest login session closed to make room", held=len(keys.sessions), source=source)
        log.info("logged in", user=keys.sessions.user_of(tokens["access_token"]), source=source)
        return JSONResponse(tokens)

    async def test(request: Request) -> Response:
        source = source_of(request)
        if (throttled := guard.refusal(source)) is not None:
            return throttled
        authorization = request.headers.get("authorization", "")
        if not authorization.lower().startswith("basic "):
            return error_response(401, "credentials required: Authorization: Basic")
        if keys.user_of(authorization) is None:
            guard.failed(source, "password")
            return error_response(401, "unknown user or wrong password")
        return Response(status_code=200)  # Sensu Go answers an empty 200; no token is made

    async def with_session(
        request: Request, *, refresh_required: bool, act: Callable[[str, str | None, str], Response]
    ) -> Response:
        """What ``/auth/token`` and ``/auth/logout`` share: the throttle, the session's access token
        as Bearer, the ``refresh_token`` of the body, and a refused session counted and slowed."""
        source = source_of(request)
        if (throttled := guard.refusal(source)) is not None:
            return throttled
        access = _bearer(request)
        if access is None:
            return error_response(401, "the access token is required: Authorization: Bearer")
        body = await json_body(request) if refresh_required or await request.body() else {}
        if isinstance(body, Response):
            return body
        refresh = _refresh_token(body, guard.metrics, required=refresh_required)
        if isinstance(refresh, Response):
            return refresh
        try:
            return act(access, refresh, source)
        except SessionRefused as exc:
            guard.failed(source, exc.reason)
            return error_response(401, str(exc))

    def refreshed(access: str, refresh: str | None, source: str) -> Response:
        return JSONResponse(keys.sessions.refresh(access, refresh or "", keys.wall_clock()))

    def closed(access: str, refresh: str | None, source: str) -> Response:
        user = keys.sessions.close(access, refresh)
        log.info("logged out", user=user, source=source)
        return Response(status_code=200)

    async def token(request: Request) -> Response:
        return await with_session(request, refresh_required=True, act=refreshed)

    async def logout(request: Request) -> Response:
        return await with_session(request, refresh_required=False, act=closed)

    return [
        Route("/auth", login, methods=["GET", "POST"]),
        Route("/auth/test", test, methods=["GET"]),
        Route("/auth/token", token, methods=["POST"]),
        Route("/auth/logout", logout, methods=["POST"]),
    ]


async def json_body(request: Request) -> Any:
    """The request's JSON, or a 400 response naming where it is malformed."""
    try:
        return load_json(await request.body())
    except ValidationError as exc:
        return error_response(400, str(exc))


def _bearer(request: Request) -> str | None:
    scheme, _, credential = request.headers.get("authorization", "").strip().partition(" ")
    return credential.strip() or None if scheme.lower() == "bearer" else None


#: The fields of Sensu Go's ``Tokens``, the body of ``/auth/token`` and ``/auth/logout``.
_TOKENS_FIELDS = ("access_token", "expires_at", "refresh_token")


def _refresh_token(body: Any, metrics: BackendMetrics, *, required: bool) -> str | Response | None:
    """The ``refresh_token`` of a body in Sensu Go's ``Tokens`` shape (other fields ignored and
    counted, as Sensu Go ignores them); a 400 naming the field when it is missing or not a string."""
    if not isinstance(body, dict):
        return error_response(400, "expected a JSON object with refresh_token")
    metrics.fields_ignored.inc(sum(1 for k in body if k not in _TOKENS_FIELDS))
    refresh = body.get("refresh_token")
    if refresh is None and not required:
        return None
    if not isinstance(refresh, str) or not refresh:
        return error_response(400, "refresh_token: expected the refresh token given with the access token")
    return refresh


__all__ = ["ADMIN", "KEYS", "RequireKey", "auth_routes", "key_routes"]
