"""Size limits: frames planned by bytes and count, events fitted to the maximum size, flushes split."""

from __future__ import annotations

import msgpack
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.limits import FIT_ANNOTATION, fit_event, point_size_bound, split_points
from pipeline.model import Check, Entity, Event, MetricPoint, Metrics, MetricTag, ObjectMeta
from pipeline.model.check import Hook
from pipeline.wire import protocol
from pipeline.wire.limits import (
    FRAME_EVENT_BYTES,
    MAX_EVENT_BYTES,
    frame_bytes_bound,
    plan_frame,
    too_large_message,
)
from pipeline.wire.messages import Events

MiB = 1024 * 1024


def test_a_frame_takes_events_until_the_byte_budget_and_leaves_the_rest_for_the_next() -> None:
    plan = plan_frame([900_000] * 20, max_count=200)
    assert plan.send == [0, 1, 2, 3]  # 4 x 900 KB fit 4 MiB, a fifth does not
    assert plan.consumed == 4
    assert plan.too_large == []


def test_a_frame_keeps_to_the_count_as_well() -> None:
    plan = plan_frame([10] * 500, max_count=200)
    assert (len(plan.send), plan.consumed) == (200, 200)


def test_an_event_too_large_to_send_is_planned_aside_and_blocks_nothing_behind_it() -> None:
    plan = plan_frame([100, 18 * MiB, 100, MAX_EVENT_BYTES + 1, 100], max_count=200)
    assert plan.send == [0, 2, 4]
    assert plan.too_large == [1, 3]
    assert plan.consumed == 5


def test_only_too_large_events_still_progress() -> None:
    plan = plan_frame([2 * MiB, 3 * MiB], max_count=200)
    assert (plan.send, plan.too_large, plan.consumed) == ([], [0, 1], 2)


def test_an_event_of_the_maximum_size_always_goes_alone() -> None:
    plan = plan_frame([MAX_EVENT_BYTES, MAX_EVENT_BYTES], max_count=200, max_bytes=MAX_EVENT_BYTES + 5)
    assert (plan.send, plan.consumed) == ([0], 1)


@given(st.lists(st.integers(min_value=0, max_value=3 * MiB), max_size=60), st.integers(min_value=1, max_value=50))
def test_every_planned_frame_fits_and_every_event_is_sent_or_set_aside_once_in_order(
    sizes: list[int], max_count: int
) -> None:
    sent: list[int] = []
    aside: list[int] = []
    start = 0
    while start < len(sizes):
        plan = plan_frame(sizes[start:], max_count=max_count)
        assert plan.consumed > 0
        assert len(plan.send) <= max_count
        assert frame_bytes_bound([sizes[start + i] for i in plan.send]) <= protocol.MAX_FRAME_BYTES
        assert sum(sizes[start + i] for i in plan.send) <= FRAME_EVENT_BYTES
        sent += [start + i for i in plan.send]
        aside += [start + i for i in plan.too_large]
        start += plan.consumed
    assert sorted(sent + aside) == list(range(len(sizes)))
    assert sent == sorted(sent)
    assert all(sizes[i] > MAX_EVENT_BYTES for i in aside)
    assert all(sizes[i] <= MAX_EVENT_BYTES for i in sent)


def test_the_frame_bound_holds_for_real_frames() -> None:
    events = [b"x" * 900_000] * 4 + [b"y" * 10, b"z" * 70_000]
    frame = protocol.encode_frame(Events(tuple(events)))
    assert len(frame) - 4 <= frame_bytes_bound([len(e) for e in events])


def test_the_refusal_names_the_size_and_the_limit() -> None:
    assert too_large_message(2_000_000) == "event of 2000000 bytes exceeds the maximum event size of 1048576 bytes"


def test_the_point_bound_is_an_upper_bound() -> None:
    points = [
        MetricPoint(name="stats.counters.a.rate", value=1.5, timestamp=1_700_000_000),
        MetricPoint(name="é" * 300, value=-1e300, timestamp=2**62, tags=[MetricTag("host", "ü" * 40)] * 3),
        MetricPoint(name="", value=0.0, timestamp=0, tags=[MetricTag("", "")]),
    ]
    for point in points:
        encoded = Event(metrics=Metrics(points=[point])).to_dict()["metrics"]["points"][0]
        assert len(msgpack.packb(encoded, use_bin_type=True)) <= point_size_bound(point)


def metrics_event(points: list[MetricPoint]) -> Event:
    return Event(timestamp=1, entity=Entity(metadata=ObjectMeta(name="web1")), metrics=Metrics(points=points))


def test_a_flush_too_large_for_one_event_is_split_into_events_that_each_fit_keeping_every_point() -> None:
    points = [
        MetricPoint(name=f"stats.counters.key{i}.rate", value=float(i), timestamp=1, tags=[MetricTag("env", "prod")])
        for i in range(60_000)
    ]
    room = MAX_EVENT_BYTES - len(metrics_event([]).to_msgpack()) - 16
    chunks = split_points(points, room)
    assert len(chunks) > 1
    assert [p for chunk in chunks for p in chunk] == points
    assert all(len(metrics_event(chunk).to_msgpack()) <= MAX_EVENT_BYTES for chunk in chunks)


def check_event(output: str, hooks: list[str] = [], points: int = 0) -> Event:  # noqa: B006
    check = Check(
        metadata=ObjectMeta(name="big", namespace="default"),
        output=output,
        hooks=[Hook(metadata=ObjectMeta(name=f"h{i}"), output=text) for i, text in enumerate(hooks)],
    )
    metrics = Metrics(points=[MetricPoint(name=f"m.{i}", value=1.0, timestamp=1) for i in range(points)])
    return Event(entity=Entity(metadata=ObjectMeta(name="web1")), check=check, metrics=metrics if points else None)


def test_an_event_that_fits_is_left_alone() -> None:
    event = check_event("ok\n")
    fit = fit_event(event, MAX_EVENT_BYTES)
    assert not fit.changed
    assert event.check is not None
    assert event.check.output == "ok\n"
    assert FIT_ANNOTATION not in event.metadata.annotations


def test_outputs_are_cut_longest_first_until_the_event_fits_and_it_says_so() -> None:
    event = check_event("a" * 1_000_000, hooks=["b" * 900_000, "c" * 100])
    fit = fit_event(event, MAX_EVENT_BYTES)
    assert event.check is not None
    assert fit.size == len(event.to_msgpack()) <= MAX_EVENT_BYTES
    assert event.check.output.startswith("a" * 1000)
    assert "bytes cut to keep the event within 1048576 bytes" in event.check.output
    assert event.check.hooks[1].output == "c" * 100
    assert fit.cut_bytes > 800_000
    assert "cut" in event.metadata.annotations[FIT_ANNOTATION]


def test_metric_points_go_last_when_outputs_are_not_enough() -> None:
    event = check_event("x" * 10, points=40_000)
    fit = fit_event(event, 1_000_000)
    assert event.metrics is not None
    assert fit.size <= 1_000_000
    assert 0 < fit.dropped_points == 40_000 - len(event.metrics.points)
    assert "metric points" in event.metadata.annotations[FIT_ANNOTATION]
