"""What the agent counts and logs about its checks' runs, handed to the executor and the
scheduler as their callbacks (they report; the agent's metrics and log are kept here)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.agent.metrics import AgentMetrics
from pipeline.core.limits import Fit
from pipeline.logs import get_logger
from pipeline.model import CheckConfig, Event
from pipeline.wire.limits import MAX_EVENT_BYTES

log = get_logger("agent")


@dataclass(slots=True)
class CheckReports:
    metrics: AgentMetrics

    def extraction_errors(self, config: CheckConfig, errors: list[str]) -> None:
        """Lines of a check's output its metric format could not read: counted, one log line."""
        self.metrics.metric_extraction_errors.labels(config.metadata.name, config.output_metric_format).inc(len(errors))
        log.warning("metric extraction skipped lines", check=config.metadata.name,
                    format=config.output_metric_format, count=len(errors), first=errors[0])  # fmt: skip

    def fit(self, event: Event, fit: Fit) -> None:
        """A result cut to the maximum event size."""
        self.metrics.events_too_large.labels("check", "truncated").inc()
        log.warning("check result cut to the maximum event size", check=event.check_name, event_id=event.id,
                    cut_bytes=fit.cut_bytes, dropped_points=fit.dropped_points, limit=MAX_EVENT_BYTES)  # fmt: skip

    def subdued(self, name: str) -> None:
        self.metrics.checks_subdued.labels(name).inc()

    def skipped(self, name: str) -> None:
        self.metrics.checks_skipped.labels(name).inc()

    def unschedulable(self, name: str) -> None:
        self.metrics.checks_unschedulable.labels(name).inc()
