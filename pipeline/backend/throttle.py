"""Failed logins and wrong keys, counted and slowed per source address.

Each source address has a token bucket of failures: :data:`BURST` wrong passwords or keys
are answered as usual (401), then one more every :data:`REFILL_SECONDS`; an address whose
bucket is empty is answered 429 with ``Retry-After`` *before* its credentials are checked, so
a guess made while throttled tells nothing, even when right. Correct credentials take no
token, and other addresses are untouched. Nothing waits: the refusal is immediate, so a
guessing client holds no connection longer than it takes to answer (Grafana blocks a user
for 5 minutes after 5 failed logins; this counts per address instead, so that guessing a
user's password cannot lock that user out).

The buckets are pure (time is a parameter) and bounded (:data:`MAX_SOURCES` addresses: full
buckets are forgotten first, then the longest unused).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import trio
from starlette.requests import Request
from starlette.responses import Response

from pipeline.http_answers import error_response
from pipeline.logs import get_logger
from pipeline.metrics import BackendMetrics

log = get_logger("backend.auth")

#: Failures an address may make at once before it is slowed.
BURST = 5
#: Seconds for an address to earn one more attempt (12 a minute, 720 an hour).
REFILL_SECONDS = 5.0
#: Addresses remembered at most.
MAX_SOURCES = 10_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


@dataclass(slots=True)
class FailureThrottle:
    burst: int = BURST
    refill_seconds: float = REFILL_SECONDS
    max_sources: int = MAX_SOURCES
    buckets: dict[str, _Bucket] = field(default_factory=dict)

    def wait(self, source: str, now: float) -> float:
        """Seconds until ``source`` may try again; 0 when it may now."""
        bucket = self._refilled(source, now)
        return 0.0 if bucket is None or bucket.tokens >= 1 else (1 - bucket.tokens) * self.refill_seconds

    def failed(self, source: str, now: float) -> bool:
        """Take a token for a failure; whether ``source`` is throttled from now on."""
        bucket = self._refilled(source, now) or _Bucket(float(self.burst), now)
        bucket.tokens = max(bucket.tokens - 1, 0.0)
        self.buckets.pop(source, None)
        self.buckets[source] = bucket  # last used last: the longest unused come first
        self._bound(now)
        return bucket.tokens < 1

    def _refilled(self, source: str, now: float) -> _Bucket | None:
        bucket = self.buckets.get(source)
        if bucket is not None:
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) / self.refill_seconds)
            bucket.at = now
        return bucket

    def _bound(self, now: float) -> None:
        if len(self.buckets) <= self.max_sources:
            return
        full = [s for s, b in self.buckets.items() if b.tokens + (now - b.at) / self.refill_seconds >= self.burst]
        for source in full:
            del self.buckets[source]
        while len(self.buckets) > self.max_sources:
            del self.buckets[next(iter(self.buckets))]


@dataclass(slots=True)
class AuthGuard:
    """What the API's credential checks share: the throttle, its metric and its log lines."""

    metrics: BackendMetrics
    throttle: FailureThrottle = field(default_factory=FailureThrottle)
    clock: Callable[[], float] = trio.current_time

    def refusal(self, source: str) -> Response | None:
        """A 429 when ``source`` must wait before its credentials are even looked at."""
        wait = self.throttle.wait(source, self.clock())
        if wait <= 0:
            return None
        self.metrics.api_auth_failures.labels("throttled").inc()
        seconds = math.ceil(wait)
        return error_response(429, f"too many failed attempts from {source}; retry in {seconds} s",
                              headers={"Retry-After": str(seconds)})  # fmt: skip

    def failed(self, source: str, reason: str) -> None:
        self.metrics.api_auth_failures.labels(reason).inc()
        if self.throttle.failed(source, self.clock()):
            log.warning("credentials refused; source slowed", source=source, reason=reason,
                        every=f"{self.throttle.refill_seconds:g}s")  # fmt: skip
        else:
            log.info("credentials refused", source=source, reason=reason)


def source_of(request: Request) -> str:
    return request.client.host if request.client else "?"
