"""StatsD parsing and aggregation: etsy StatsD's worked vectors and its Graphite names."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from pipeline.agent.statsd import StatsdConfig, StatsdServer
from pipeline.core.statsd.aggregate import Aggregator, percentile_suffix
from pipeline.core.statsd.parse import Sample, parse_datagram, parse_line, parse_line_general, parse_text, plain_lines
from pipeline.model import Entity, Event, ObjectMeta
from pipeline.wire.limits import MAX_EVENT_BYTES

NOW = 1_700_000_000


def flush(*datagrams: bytes, percentiles: tuple[float, ...] = (90.0,), interval: float = 10.0) -> dict[str, float]:
    aggregator = Aggregator(percentiles=percentiles)
    for datagram in datagrams:
        aggregator.add(parse_datagram(datagram).samples)
    return {p.name: p.value for p in aggregator.flush(NOW, interval)}


def test_sampled_counter() -> None:
    assert flush(b"gorets:1|c|@0.1") == {"stats.counters.gorets.rate": 1.0, "stats.counters.gorets.count": 10.0}


def test_timer_ten_values() -> None:
    points = flush(b"\n".join(f"t:{i}|ms".encode() for i in range(1, 11)))
    assert points == pytest.approx(
        {
            "stats.timers.t.count_90": 9, "stats.timers.t.mean_90": 5, "stats.timers.t.upper_90": 9,
            "stats.timers.t.sum_90": 45, "stats.timers.t.sum_squares_90": 285,
            "stats.timers.t.std": 2.8722813232690143, "stats.timers.t.upper": 10, "stats.timers.t.lower": 1,
            "stats.timers.t.count": 10, "stats.timers.t.count_ps": 1, "stats.timers.t.sum": 55,
            "stats.timers.t.sum_squares": 385, "stats.timers.t.mean": 5.5, "stats.timers.t.median": 5.5,
        },
        rel=0, abs=0,
    )  # fmt: skip
    assert list(points) == [f"stats.timers.t.{s}" for s in (
        "count_90", "mean_90", "upper_90", "sum_90", "sum_squares_90",
        "std", "upper", "lower", "count", "count_ps", "sum", "sum_squares", "mean", "median")]  # fmt: skip


def test_single_sampled_timer() -> None:
    points = flush(b"glork:320|ms|@0.1")
    assert points["stats.timers.glork.count"] == 10
    assert points["stats.timers.glork.count_ps"] == 1
    for stat in ("mean", "upper", "lower", "median", "upper_90", "mean_90"):
        assert points[f"stats.timers.glork.{stat}"] == 320
    assert points["stats.timers.glork.count_90"] == 1


@pytest.mark.parametrize(
    ("datagrams", "value"),
    [
        ((b"g:333|g", b"g:-10|g", b"g:+4|g"), 327),
        ((b"g:-5|g",), -5),
        ((b"g:0|g", b"g:-5|g"), -5),  # 0 is falsy in etsy: the delta becomes a set
        ((b"g:10|g\ng:+2|g\ng:3|g",), 3),
    ],
)
def test_gauges(datagrams: tuple[bytes, ...], value: float) -> None:
    assert flush(*datagrams)["stats.gauges.g"] == value


def test_sets_and_multi_metric_datagrams() -> None:
    assert flush(b"u:765|s", b"u:765|s", b"u:765|s", b"u:766|s")["stats.sets.u.count"] == 2
    parsed = parse_datagram(b"gorets:1|c\nglork:320|ms\ngaugor:333|g\nuniques:765|s")
    assert (parsed.lines, len(parsed.samples), parsed.bad) == (4, 4, [])
    assert flush(b"a:1|c:2|c")["stats.counters.a.count"] == 3


def test_keys_are_sanitised_and_tags_are_point_tags() -> None:
    assert "stats.counters.my_metric-x.count" in flush(b"my metric/x!:1|c")
    aggregator = Aggregator()
    aggregator.add(parse_datagram(b"foo:1|c|#env:prod,svc\nfoo:2|c|#env:prod,svc\nfoo:5|c").samples)
    points = aggregator.flush(NOW, 10)
    tagged = [(p.name, p.value, [(t.name, t.value) for t in p.tags]) for p in points]
    assert tagged == [
        ("stats.counters.foo.rate", 0.3, [("env", "prod"), ("svc", "")]),
        ("stats.counters.foo.count", 3.0, [("env", "prod"), ("svc", "")]),
        ("stats.counters.foo.rate", 0.5, []),
        ("stats.counters.foo.count", 5.0, []),
    ]
    assert {p.timestamp for p in points} == {NOW}


@pytest.mark.parametrize(
    "line",
    [b"foo:bar|c", b"foo:1", b"foo:1|c|@-1", b"foo:-5|ms", b"foo:x|g", b"foo:1|c|@", b"foo:1|c|@0", b"f:1|ms|@0.0"],
)
def test_bad_lines_are_reported_and_the_rest_still_counts(line: bytes) -> None:
    parsed = parse_datagram(line + b"\nok:1|c\n")
    assert len(parsed.bad) == 1
    assert parsed.bad[0][0] == line.decode()
    assert [s.key for s in parsed.samples] == ["ok"]


def test_dogstatsd_extensions_never_make_a_line_bad() -> None:
    parsed = parse_datagram(b"a:1|c|#k:v|c:abc123|T1699999990\nb:2|d|@0.5|e:xyz|card:high\nh:3|h")
    assert parsed.bad == []
    assert parsed.samples == [
        Sample("a", (("k", "v"),), "c", 1.0, 1.0, timestamp=1699999990),
        Sample("b", (), "ms", 2.0, 0.5),
        Sample("h", (), "ms", 3.0, 1.0),
    ]
    aggregator = Aggregator()
    aggregator.add(parsed.samples)
    assert {p.name: p.timestamp for p in aggregator.flush(NOW, 10)}["stats.counters.a.count"] == 1699999990


def test_service_checks_and_events() -> None:
    parsed = parse_datagram(b"_sc|db.up|2|d:1700000000|h:web1|#env:prod|m:connection refused\n"
                            b"_e{6,9}:Deploy|v1.2 done|p:low|t:success|#app:web\n_sc|x|9\n")  # fmt: skip
    (check,) = parsed.service_checks
    assert (check.name, check.status, check.message, check.hostname, check.tags) == (
        "db.up", 2, "connection refused", "web1", (("env", "prod"),))  # fmt: skip
    (event,) = parsed.events
    assert (event.title, event.text, event.priority, event.alert_type, event.tags) == (
        "Deploy", "v1.2 done", "low", "success", (("app", "web"),))  # fmt: skip
    assert parsed.bad == [("_sc|x|9", "service check status '9' is not 0, 1, 2 or 3")]


def test_idle_keys_as_etsy_keeps_or_deletes_them() -> None:
    kept = Aggregator()
    kept.add(parse_datagram(b"c:1|c\nt:5|ms\ng:7|g\ns:a|s").samples)
    kept.flush(NOW, 10)
    assert {p.name: p.value for p in kept.flush(NOW + 10, 10)} == {
        "stats.counters.c.rate": 0, "stats.counters.c.count": 0, "stats.timers.t.count": 0,
        "stats.timers.t.count_ps": 0, "stats.gauges.g": 7, "stats.sets.s.count": 0}  # fmt: skip
    deleted = Aggregator(delete_idle=True)
    deleted.add(parse_datagram(b"c:1|c\ng:7|g").samples)
    deleted.flush(NOW, 10)
    assert deleted.flush(NOW + 10, 10) == []


def test_percentile_names_and_negative_percentiles() -> None:
    assert [percentile_suffix(p) for p in (90, 99.9, -10, 95.0)] == ["90", "99_9", "top10", "95"]
    points = flush(b"\n".join(f"t:{i}|ms".encode() for i in range(1, 11)), percentiles=(99.9, -20))
    assert points["stats.timers.t.upper_99_9"] == 10
    assert points["stats.timers.t.lower_top20"] == 9
    assert points["stats.timers.t.sum_top20"] == 19
    assert points["stats.timers.t.count_top20"] == 2
    # etsy reads cumulativeValues[-1] as undefined when the lower percentile takes every value
    assert math.isnan(flush(b"t:1|ms\nt:2|ms", percentiles=(-100,))["stats.timers.t.sum_top100"])


def test_etsy_multi_samples_are_not_mistaken_for_container_fields() -> None:
    assert flush(b"a:1|c:2|c:5|c")["stats.counters.a.count"] == 8
    assert flush(b"a:1|c|@0.5:2|c")["stats.counters.a.count"] == 4


@given(st.binary(max_size=300))
def test_any_datagram_is_parsed_without_raising(data: bytes) -> None:
    parsed = parse_datagram(data)
    assert all(line for line, _ in parsed.bad)
    aggregator = Aggregator(percentiles=(90.0, -10.0))
    aggregator.add(parsed.samples)
    for point in aggregator.flush(NOW, 10):
        assert point.name.startswith("stats.")


@given(
    key=st.from_regex(r"[a-zA-Z0-9_.\-]{1,20}", fullmatch=True),
    value=st.from_regex(r"\d{1,6}(\.\d{1,4})?", fullmatch=True),
    kind=st.sampled_from(["c", "ms", "h", "d"]),
    rate=st.sampled_from(["", "|@0.5", "|@1", "|@.25", "|@0", "|@10"]),
)
def test_the_fast_path_parses_exactly_as_the_general_one(key: str, value: str, kind: str, rate: str) -> None:
    line = f"{key}:{value}|{kind}{rate}"
    general_samples, general_errors = parse_line_general(line)
    assert parse_line(line) == (general_samples, general_errors)
    parsed = parse_datagram(line.encode())
    assert (parsed.samples, [reason for _, reason in parsed.bad]) == (general_samples, general_errors)


def counter(key: str) -> Sample:
    return Sample(key, (), "c", 1.0, 1.0)


def test_distinct_keys_are_capped_new_ones_dropped_and_counted_held_ones_still_aggregate() -> None:
    aggregator = Aggregator(max_keys=3)
    aggregator.add([counter("a"), counter("b"), Sample("g", (), "g", 5.0, 1.0)])
    aggregator.add([counter("c"), counter("d"), counter("a"), Sample("g", (), "g", 7.0, 1.0)])
    assert aggregator.keys == 3
    assert aggregator.take_dropped() == 2
    assert aggregator.take_dropped() == 0
    points = {p.name: p.value for p in aggregator.flush(NOW, 10.0)}
    assert points["stats.counters.a.count"] == 2.0
    assert points["stats.gauges.g"] == 7.0
    assert "stats.counters.c.count" not in points


def test_keys_held_after_a_flush_count_against_the_cap_unless_idle_keys_are_deleted() -> None:
    kept = Aggregator(max_keys=2)
    kept.add([counter("a"), counter("b")])
    kept.flush(NOW, 10.0)
    kept.add([counter("c")])
    assert kept.take_dropped() == 1  # a and b are still held (zeroed, as etsy keeps them)
    deleting = Aggregator(max_keys=2, delete_idle=True)
    deleting.add([counter("a"), counter("b")])
    deleting.flush(NOW, 10.0)
    deleting.add([counter("c")])
    assert (deleting.take_dropped(), deleting.keys) == (0, 1)


async def test_a_flush_over_the_event_size_is_split_and_dropped_keys_are_counted_per_window() -> None:
    registry = CollectorRegistry()
    events: list[Event] = []

    async def submit(event: Event) -> None:
        events.append(event)

    entity = Entity(metadata=ObjectMeta(name="web1", namespace="default"))
    server = StatsdServer(StatsdConfig(max_keys=30_000), entity, submit, registry, wall_clock=lambda: NOW)
    for start in range(0, 31_000, 50):
        server.handle_datagram("\n".join(f"load.key{i}:1|c" for i in range(start, start + 50)).encode())
    await server.flush()
    assert len(events) > 1
    assert all(len(event.to_msgpack()) <= MAX_EVENT_BYTES for event in events)
    assert sum(len(e.metrics.points) for e in events if e.metrics) == 60_000  # .rate and .count of each held key
    assert len({event.id for event in events}) == len(events)
    assert registry.get_sample_value("pipeline_statsd_keys_dropped_total") == 1000
    assert registry.get_sample_value("pipeline_statsd_flush_events_total") == len(events)
    assert registry.get_sample_value("pipeline_statsd_flushes_total") == 1
    await server.flush()
    assert registry.get_sample_value("pipeline_statsd_keys_dropped_total") == 1000  # nothing new this window


_PLAIN_OR_NOT = st.one_of(
    st.builds(
        "{}:{}|{}{}".format,
        st.sampled_from(["a", "b.c", "x-y_z", "a b", "k/1"]),
        st.from_regex(r"-?\d{1,4}(\.\d{1,3})?|", fullmatch=True),
        st.sampled_from(["c", "ms", "h", "d", "g", "s", "x", "c\r"]),
        st.sampled_from(
            ["", "|@0.5", "|@.25", "|@0", "|@0.0", "|@00", "|@.0", "|@2", "|@0.01", "|#env:prod", "|T1700000000"]
        ),
    ),
    st.sampled_from(["", "", "junk", "_sc|up|0", ":1|c", "a:1|c:2|c"]),
)


@given(lines=st.lists(_PLAIN_OR_NOT, max_size=12), max_keys=st.sampled_from([2, 100]))
def test_a_datagram_read_in_one_pass_aggregates_exactly_as_line_by_line(lines: list[str], max_keys: int) -> None:
    text = "\n".join(lines)
    plain = plain_lines(text)
    parsed = parse_text(text)
    if plain is None:  # anything but plain lines goes line by line, as before
        assert not all(plain_lines(line) for line in lines if line)
        return
    assert len(plain) == parsed.lines
    assert not parsed.bad
    one_pass, line_by_line = Aggregator(max_keys=max_keys), Aggregator(max_keys=max_keys)
    one_pass.add_plain(plain)
    line_by_line.add(parsed.samples)
    assert one_pass.take_dropped() == line_by_line.take_dropped()
    assert one_pass.flush(NOW, 10.0) == line_by_line.flush(NOW, 10.0)


def test_one_pass_datagrams_keep_their_order_and_refuse_zero_rates() -> None:
    assert plain_lines("\n\na:1|c\n\nt:2.5|ms|@0.5\nh:3|h\n") == [
        ("a", "1", "c", ""), ("t", "2.5", "ms", "0.5"), ("h", "3", "h", "")]  # fmt: skip
    for text in (
        "a:1|ca:1|c",
        "a:1|c\r",
        "a:1|c|@0",
        "a:1|c|@0.0",
        "b:1|c\na:1|c|@.00\n",
        "a:1|g",
        "a b:1|c",
        "a:-1|c",
        "a:1|c|#k:v",
    ):
        assert plain_lines(text) is None, text
    assert plain_lines("") == []


@pytest.mark.parametrize("prefix", ["", "\n", "ok:1|c\n\n"])
def test_a_rate_of_many_digits_is_refused_without_backtracking_for_seconds(prefix: str) -> None:
    line = "a:1|c|@" + "1" * 20_000 + "x"  # the old rate pattern took 3 s per regex on this line
    assert plain_lines(prefix + line) is None
    parsed = parse_text(prefix + line)
    assert [reason[:17] for _, reason in parsed.bad] == ["bad sample rate '"]


async def test_datagrams_and_lines_are_counted_by_the_next_flush_at_the_latest() -> None:
    async def submit(event: Event) -> None:
        pass

    registry = CollectorRegistry()
    entity = Entity(metadata=ObjectMeta(name="web1", namespace="default"))
    server = StatsdServer(StatsdConfig(), entity, submit, registry, wall_clock=lambda: NOW)
    server.handle_datagram(b"a:1|c\nb:2|ms\n\n")  # one pass
    server.handle_datagram(b"c:1|g\nbad\n_sc|up|0")  # line by line
    await server.flush()
    assert registry.get_sample_value("pipeline_statsd_packets_total") == 2
    assert registry.get_sample_value("pipeline_statsd_lines_total") == 5
    assert registry.get_sample_value("pipeline_statsd_bad_lines_total") == 1
