"""The agent's local HTTP API: ``/healthz`` and Prometheus ``/metrics`` (Sensu's port 3031)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route


def create_agent_app(registry: CollectorRegistry, is_connected: Callable[[], bool]) -> Starlette:
    async def healthz(request: Request) -> Response:
        # Sensu Go's agent answers exactly these bodies.
        if is_connected():
            return PlainTextResponse("ok")
        return PlainTextResponse("sensu backend unavailable", status_code=503)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/healthz", healthz), Route("/metrics", metrics)])
