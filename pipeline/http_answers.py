"""What the daemons' HTTP ports answer and log, apart from serving: Sensu Go's error shape for
every refusal (the apps' and the routing's), and secrets masked out of any text that is logged."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

#: Sensu Go's API error codes (``backend/apid/actions``) by HTTP status; other 4xx: InvalidArgument.
_SENSU_CODES = {400: 2, 401: 6, 403: 5, 404: 3, 409: 4}


def error_body(status: int, message: str) -> dict[str, Any]:
    """An error answer in Sensu Go's shape: ``{"code": N, "message": "..."}``."""
    code = _SENSU_CODES.get(status, 1 if status >= 500 else 2)
    return {"code": code, "message": message}


def answer_of(response: Response) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """A Starlette response as the server's direct routes answer (what its ASGI messages carry)."""
    return response.status_code, response.raw_headers, bytes(response.body)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message), status_code=status, headers=headers)


async def _routing_refusal(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 (no route) and 405 (a route, another method), in Sensu Go's shape."""
    assert isinstance(exc, HTTPException)
    path = request.url.path[:200]
    messages = {404: f"no such path: {path}", 405: f"method {request.method} not allowed on {path}"}
    return error_response(
        exc.status_code, messages.get(exc.status_code, exc.detail), headers=dict(exc.headers) if exc.headers else None
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    # a bug, logged with its traceback by the server; the client learns only that it is ours
    return error_response(500, "internal server error")


#: ``Starlette(exception_handlers=...)`` of every app: no plain-text answer ever leaves a port.
EXCEPTION_HANDLERS: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
    HTTPException: _routing_refusal,
    Exception: _unexpected,
}


_MASK = "***"
_SECRET_QUERY = re.compile(
    r"(?i)((?:^|[?&;\s])[\w.-]*(?:key|token|secret|password|passwd|signature|auth)[\w.-]*=)[^&;\s'\"]*"
)
_SECRET_SCHEME = re.compile(r"(?i)\b(key|bearer|basic|token)(\s+)[^\s'\",]+")
#: The push formats' token in a path: ``/{token}/event(s)`` (Sematext), not under ``/api/``.
_PATH_TOKEN = re.compile(r"(?<![^\s'\"(=])/(?!api/)[^/\s?'\"]+/(events?)(?=[\s?'\")]|$)")


def mask_secrets(text: str) -> str:
    """``text`` with what may be a secret masked: values of query parameters named like keys,
    tokens or passwords (StackState's ``api_key``), credentials after ``Key``, ``Bearer`` or
    ``Basic`` (an Authorization header quoted in an error), and the ingest key in a push path
    (``POST /{token}/events``)."""
    text = _SECRET_QUERY.sub(rf"\g<1>{_MASK}", text)
    text = _SECRET_SCHEME.sub(rf"\g<1>\g<2>{_MASK}", text)
    return _PATH_TOKEN.sub(rf"/{_MASK}/\g<1>", text)
