"""The per-address budget of failed logins: a burst, then one more attempt per refill period."""

from __future__ import annotations

import pytest

from pipeline.backend.throttle import FailureThrottle


def test_a_burst_then_one_attempt_per_refill_period_per_address() -> None:
    throttle = FailureThrottle(burst=3, refill_seconds=5.0)
    assert [throttle.failed("10.0.0.1", now=0.0) for _ in range(3)] == [False, False, True]
    assert throttle.wait("10.0.0.1", now=0.0) == 5.0
    assert throttle.wait("10.0.0.2", now=0.0) == 0.0  # another address is untouched
    assert throttle.wait("10.0.0.1", now=4.0) == pytest.approx(1.0)
    assert throttle.wait("10.0.0.1", now=5.0) == 0.0  # one more attempt earned
    assert throttle.failed("10.0.0.1", now=5.0) is True  # and spent
    assert throttle.wait("10.0.0.1", now=100.0) == 0.0


def test_memory_is_bounded_full_buckets_forgotten_first() -> None:
    throttle = FailureThrottle(burst=2, refill_seconds=1.0, max_sources=3)
    throttle.failed("old", now=0.0)
    for n in range(3):
        throttle.failed(f"new{n}", now=10.0)
        throttle.failed(f"new{n}", now=10.0)
    assert set(throttle.buckets) == {"new0", "new1", "new2"}  # "old" had refilled: forgotten first
    throttle.failed("newest", now=10.0)
    assert len(throttle.buckets) == 3
    assert "newest" in throttle.buckets
