"""How the admin pages show times and refusals: one place, so every page reads the same."""

from __future__ import annotations

from datetime import UTC, datetime

from pipeline.logs import get_logger
from pipeline.metrics import BackendMetrics

log = get_logger("dashboard")


def utc(seconds: int | float) -> str:
    """``2026-11-26 19:55:47 UTC``; an empty string for 0 (not set)."""
    if not seconds:
        return ""
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):  # a stored time past what datetime holds
        return f"{int(seconds)} (epoch seconds)"


def span(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3 h 5 min``, ``2 d 4 h``."""
    seconds = int(max(seconds, 0))
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if hours < 1:
        return f"{minutes} min"
    if days < 1:
        return f"{hours} h {minutes % 60} min" if minutes % 60 else f"{hours} h"
    return f"{days} d {hours % 24} h" if hours % 24 else f"{days} d"


def refused(metrics: BackendMetrics, form: str, field: str, message: str, principal: str) -> None:
    """Count and log one refused form (the page shows the message beside the field)."""
    metrics.dashboard_refused.labels(form).inc()
    log.info("dashboard form refused", form=form, field=field, error=message, principal=principal)
