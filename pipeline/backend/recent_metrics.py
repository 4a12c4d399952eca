"""The recent window of every metric series entities send, fed by the event processor with the
points of each event it took (after the store accepted the batch: StatsD flushes and perfdata
alike). Read by the dashboard's entity page and ``GET /api/pipeline/v1/entities/{namespace}/
{name}/metrics``. Bounds and memory: :mod:`pipeline.core.metric_windows`; series pushed out are
counted in ``pipeline_metric_series_dropped``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from pipeline.core.metric_windows import MetricWindows, SeriesView
from pipeline.model import DEFAULT_NAMESPACE, Event


class RecentMetrics:
    def __init__(self, registry: CollectorRegistry | None = None, windows: MetricWindows | None = None) -> None:
        self.windows = MetricWindows() if windows is None else windows
        self.dropped = Counter(
            "pipeline_metric_series_dropped",
            "Metric series pushed out of the dashboard's recent window by newer ones (at its bounds)",
            registry=registry,
        )
        series = Gauge("pipeline_metric_series", "Metric series held in the dashboard's recent window",
                       registry=registry)  # fmt: skip
        series.set_function(lambda: len(self.windows))

    def observe(self, event: Event) -> None:
        """Take the metric points of ``event`` (none: nothing to do)."""
        if event.metrics is None or not event.metrics.points:
            return
        entity = (event.namespace or DEFAULT_NAMESPACE, event.entity_name)
        dropped = self.windows.add(entity, event.check_name, event.metrics.points, event.timestamp)
        if dropped:
            self.dropped.inc(dropped)

    def forget(self, namespace: str, entity: str) -> None:
        self.windows.forget((namespace, entity))

    def series(self, namespace: str, entity: str, now: float) -> list[SeriesView]:
        return self.windows.series((namespace, entity), now)
