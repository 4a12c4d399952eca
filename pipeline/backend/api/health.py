"""The routes load balancers, Prometheus and Sensu Go's tools read, open to all: ``/health``,
``/ready``, ``/version`` and ``/metrics``.

``/health`` answers in Sensu Go's ``HealthResponse`` shape with this backend as the one cluster
member, whose health is its store's: one cheap read through the store service within
``?timeout=`` seconds (3, as Sensu Go). Where Sensu Go always answers 200 and leaves the body to
say, pipeline answers 503 when the store fails, so that a load balancer's plain status check
sees it. ``/ready`` is Sensu Go 6.8's: 200 ``ready`` once the backend has loaded its state and
opened its ports, 503 while it is stopping. ``/version`` is Sensu Go's shape (no etcd here:
``etcd`` is null) with pipeline's own version beside it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from pipeline import __version__
from pipeline.core.numbers import parse_int
from pipeline.errors import StoreError
from pipeline.http_answers import error_response
from pipeline.http_params import takes_query
from pipeline.logs import get_logger
from pipeline.metrics import BackendMetrics
from pipeline.store.service import StoreService

log = get_logger("backend.health")

#: The Sensu Go release whose API pipeline answers as (``sensu_backend`` in ``/version``).
SENSU_GO_VERSION = "6.13.0"
#: Seconds the store has to answer ``/health`` (Sensu Go's default ``timeout``), and at most.
DEFAULT_TIMEOUT = 3
MAX_TIMEOUT = 30


@dataclass(slots=True, frozen=True)
class StoreHealth:
    kind: str
    error: str  # empty when the store answered
    seconds: float

    @property
    def healthy(self) -> bool:
        return not self.error


def member_id(name: str) -> int:
    """A stable 64-bit id for a backend name, as an etcd member id looks."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")


def health_body(name: str, store: StoreHealth, ready: bool) -> dict[str, Any]:
    """Sensu Go's ``HealthResponse`` for one backend (``PostgresHealth`` is left out, as Sensu Go
    does without PostgreSQL), with pipeline's own facts under ``pipeline``."""
    member = member_id(name)
    ours = {"kind": store.kind, "healthy": store.healthy, "error": store.error, "seconds": round(store.seconds, 6)}
    return {
        "Alarms": None,
        "ClusterHealth": [
            {
                "MemberID": member,
                "MemberIDHex": f"{member:x}",
                "Name": name,
                "Err": store.error,
                "Healthy": store.healthy,
            }
        ],
        "Header": {"cluster_id": member, "member_id": member},
        "pipeline": {"version": __version__, "ready": ready, "store": ours},
    }


def health_timeout(params: dict[str, str]) -> int:
    """The ``timeout`` parameter (whole seconds); raises ValueError naming what is wrong."""
    unknown = sorted(k for k in params if k != "timeout")
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown parameter (expected timeout)")
    text = params.get("timeout", str(DEFAULT_TIMEOUT))
    seconds = parse_int(text, (1, MAX_TIMEOUT)) if text.isdigit() else None  # no sign
    if seconds is None:
        raise ValueError(f"timeout: expected whole seconds from 1 to {MAX_TIMEOUT}, got {text[:20]!r}")
    return seconds


async def probe_store(store: StoreService, timeout: float, metrics: BackendMetrics) -> StoreHealth:
    """One cheap read of the store within ``timeout`` seconds; a failure is counted and logged."""
    kind = type(store.store).__name__.removesuffix("Store").lower()
    started = trio.current_time()
    error = ""
    with trio.move_on_after(timeout) as scope:
        try:
            await store.probe()
        except StoreError as exc:
            error = str(exc)
    if scope.cancelled_caught:
        error = f"the store did not answer within {timeout:g} s"
    if error:
        metrics.health_store_failures.labels("timeout" if scope.cancelled_caught else "error").inc()
        log.warning("health: the store failed", store=kind, error=error)
    return StoreHealth(kind, error, trio.current_time() - started)


def health_routes(
    metrics: BackendMetrics,
    store: StoreService,
    name: str,
    ready: Callable[[], bool],
) -> list[Route]:
    @takes_query("timeout")  # sensuctl sends ?timeout=3
    async def health(request: Request) -> Response:
        try:
            timeout = health_timeout(dict(request.query_params))
        except ValueError as exc:
            return error_response(400, str(exc))
        found = await probe_store(store, timeout, metrics)
        return JSONResponse(health_body(name, found, ready()), status_code=200 if found.healthy else 503)

    async def readiness(request: Request) -> Response:
        if ready():
            return PlainTextResponse("ready\n")  # Sensu Go's answer, word for word
        return error_response(503, "not ready: the backend is starting or stopping", headers={"Retry-After": "1"})

    async def version(request: Request) -> Response:
        """Sensu Go's ``/version``, which its clients read to know what they talk to."""
        return JSONResponse({"etcd": None, "sensu_backend": SENSU_GO_VERSION, "pipeline": __version__})

    async def prometheus(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/health", health, methods=["GET"]),
        Route("/ready", readiness, methods=["GET"]),
        Route("/version", version, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
    ]
