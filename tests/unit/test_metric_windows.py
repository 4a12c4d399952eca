"""The recent window of each metric series: its bounds, what it drops, and what it shows."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry

from pipeline.backend.recent_metrics import RecentMetrics
from pipeline.core.metric_windows import MetricWindows
from pipeline.model import Entity, Event, MetricPoint, Metrics, MetricTag, ObjectMeta

WEB = ("default", "web1")


def point(name: str, value: float, at: int, **tags: str) -> MetricPoint:
    return MetricPoint(name, value, at, [MetricTag(k, v) for k, v in tags.items()])


def test_a_series_keeps_its_last_points_in_time_order() -> None:
    windows = MetricWindows(points=3)
    for i in range(5):
        windows.add(WEB, "load", [point("load1", float(i), 1000 + i)], 0)
    (series,) = windows.series(WEB, 1010)
    assert series.points == [(1002, 2.0), (1003, 3.0), (1004, 4.0)]
    assert series.latest == (1004, 4.0)
    assert series.source == "load"


def test_points_older_than_the_window_are_not_shown_and_tags_make_series() -> None:
    windows = MetricWindows(seconds=60)
    windows.add(WEB, "", [point("rx", 1, 1000, iface="eth0"), point("rx", 2, 1000, iface="eth1")], 0)
    windows.add(WEB, "", [point("rx", 3, 0, iface="eth0")], 1050)  # no timestamp: the event's
    shown = windows.series(WEB, 1070)
    assert [(s.tags, s.points) for s in shown] == [((("iface", "eth0"),), [(1050, 3.0)])]
    assert windows.series(("default", "db1"), 1070) == []


def test_an_entity_past_its_bound_drops_its_series_updated_longest_ago() -> None:
    windows = MetricWindows(per_entity=2, total=100)
    assert windows.add(WEB, "", [point("a", 1, 10), point("b", 1, 10)], 0) == 0
    windows.add(WEB, "", [point("a", 2, 11)], 0)  # a is now newer than b
    assert windows.add(WEB, "", [point("c", 1, 12)], 0) == 1
    assert [s.name for s in windows.series(WEB, 20)] == ["a", "c"]
    assert windows.add(("default", "db1"), "", [point("a", 1, 12)], 0) == 0  # another entity has room


def test_all_entities_past_the_total_drop_the_oldest_series_of_any() -> None:
    windows = MetricWindows(per_entity=10, total=2)
    windows.add(WEB, "", [point("a", 1, 10)], 0)
    windows.add(("default", "db1"), "", [point("b", 1, 10)], 0)
    assert windows.add(("default", "db2"), "", [point("c", 1, 10)], 0) == 1
    assert windows.series(WEB, 20) == []
    assert len(windows) == 2
    windows.forget(("default", "db1"))
    assert len(windows) == 1


def test_non_finite_values_are_kept_but_not_drawn() -> None:
    windows = MetricWindows()
    windows.add(WEB, "", [point("x", math.nan, 10), point("x", 2.0, 11)], 0)
    (series,) = windows.series(WEB, 20)
    assert series.finite == [(11, 2.0)]


def test_the_service_takes_each_events_points_and_counts_what_it_drops() -> None:
    registry = CollectorRegistry()
    recent = RecentMetrics(registry, MetricWindows(per_entity=1))
    e = Event(timestamp=500, entity=Entity(metadata=ObjectMeta(name="web1", namespace="default")),
              metrics=Metrics(points=[point("a", 1, 0), point("b", 2, 0)]))  # fmt: skip
    recent.observe(e)
    recent.observe(Event(entity=e.entity))  # no metrics: nothing
    assert [(s.name, s.latest, s.source) for s in recent.series("default", "web1", 600)] == [("b", (500, 2.0), "")]
    assert registry.get_sample_value("pipeline_metric_series_dropped_total") == 1
    assert registry.get_sample_value("pipeline_metric_series") == 1
