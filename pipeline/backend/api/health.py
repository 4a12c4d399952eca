"""The routes a load balancer and Prometheus use: ``/health``, ``/version``, ``/metrics``."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline import __version__
from pipeline.metrics import BackendMetrics


def health_routes(metrics: BackendMetrics) -> list[Route]:
    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def version(request: Request) -> Response:
        """Sensu Go's ``/version``, which its clients read to know what they talk to."""
        return JSONResponse({"sensu_backend": __version__, "pipeline": __version__})

    async def prometheus(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return [Route("/health", health), Route("/version", version), Route("/metrics", prometheus)]
