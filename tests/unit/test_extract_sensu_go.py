r"""Every case of Sensu Go's own metric transformer tests (agent/transformers/*_test.go), as a
table: output -> the points pipeline extracts. Where pipeline deliberately reads more than
Sensu Go (a point Sensu Go drops), the row says so in a comment; every other row is Sensu Go's
expectation unchanged. Nagios perfdata's cases are in test_extract.py.

Sensu Go stamps points without a timestamp with ``time.Now()`` (its "time inconclusive"
cases); pipeline with the check's ``executed``, here ``NOW``.
"""

from __future__ import annotations

import pytest

from pipeline.core.extract import extract
from pipeline.model import MetricTag

NOW = 1_700_000_000
Point = tuple[str, float, int, list[tuple[str, str]]]

LOC = [("location", "us-midwest"), ("season", "summer")]
WEATHER = "weather,location=us-midwest,season=summer temperature=82,humidity=30 1465839830100400200"
WEATHER_POINTS: list[Point] = [("weather.temperature", 82, 1465839830, LOC), ("weather.humidity", 30, 1465839830, LOC)]
HOST = "instance", "hostname"
FOO_BOO = [("foo", "bar"), ("boo", "baz")]


def points(fmt: str, output: str, tags: list[tuple[str, str]]) -> list[Point]:
    result = extract(fmt, output, NOW, [MetricTag(*t) for t in tags])
    return [(p.name, p.value, p.timestamp, [(t.name, t.value) for t in p.tags]) for p in result.points]


INFLUX: list[tuple[str, list[tuple[str, str]], list[Point]]] = [
    # TestParseInflux and TestParseAndTransformInflux
    (WEATHER, [], WEATHER_POINTS),
    (WEATHER + "\nweather temperature=82 1465839830100400200\n", [],
     [*WEATHER_POINTS, ("weather.temperature", 82, 1465839830, [])]),
    (WEATHER + "\nfoo\n", [], WEATHER_POINTS),
    ("weather temperature=82 1465839830100400200", [], [("weather.temperature", 82, 1465839830, [])]),
    ('wea\\ ther,locat\\,ion=us-mid\\=west,sea"son=sum\\\\mer te\\ mp\\,er\\=at"ure=82,h\\ um\\,id\\=it"y=30 '
     '1465839830100400200\nw\\ e\\,a\\=t"her te\\ mp\\,er\\=at"ure=82 1465839830100400200\n', [],
     [("wea ther.te mp,er=at\"ure", 82, 1465839830, [("locat,ion", "us-mid=west"), ('sea"son', "sum\\mer")]),
      ('wea ther.h um,id=it"y', 30, 1465839830, [("locat,ion", "us-mid=west"), ('sea"son', "sum\\mer")]),
      ('w e,a=t"her.te mp,er=at"ure', 82, 1465839830, [])]),
    ("weather temperature=82", [], [("weather.temperature", 82, NOW, [])]),
    ("weather temperature=82 12345 blah", [], []),
    ("weather,location temperature= 1465839830100400200", [], []),
    ("", [], []),
    ("foo bar baz", [], []),
    ("weather temperature=82,humidity=30 1465839830100400200\nfoo", [],
     [("weather.temperature", 82, 1465839830, []), ("weather.humidity", 30, 1465839830, [])]),
    ("weather,location=us-midwest,season=summer temperature=82 1465839830100400200\n"
     "weather,location=us-midwest,season=summer humidity=30 1465839830100400200", [], WEATHER_POINTS),
    ("metric value=0 0\n", [], [("metric.value", 0, 0, [])]),
    # TestParseInfluxTags: output_metric_tags come after the line's tags
    (WEATHER, [HOST], [(n, v, t, [*tags, HOST]) for n, v, t, tags in WEATHER_POINTS]),
    (WEATHER, FOO_BOO, [(n, v, t, [*tags, *FOO_BOO]) for n, v, t, tags in WEATHER_POINTS]),
    (WEATHER, [("", "")], [(n, v, t, [*tags, ("", "")]) for n, v, t, tags in WEATHER_POINTS]),
]  # fmt: skip


@pytest.mark.parametrize(("output", "tags", "expected"), INFLUX)
def test_influxdb_line_as_sensu_go(output: str, tags: list[tuple[str, str]], expected: list[Point]) -> None:
    assert points("influxdb_line", output, tags) == expected


GRAPHITE: list[tuple[str, list[tuple[str, str]], list[Point]]] = [
    # TestParseGraphite and TestParseAndTransformGraphite
    ("metric.value 1 123456789", [], [("metric.value", 1, 123456789, [])]),
    ("metric.value 1 123456789\n", [], [("metric.value", 1, 123456789, [])]),
    ("metric.value 1 123456789\nmetric.value 0 0", [],
     [("metric.value", 1, 123456789, []), ("metric.value", 0, 0, [])]),
    ("metric.value 0 0\n", [], [("metric.value", 0, 0, [])]),
    ("metric.value 1 123456789\nfoo", [], [("metric.value", 1, 123456789, [])]),
    ("", [], []),
    ("foo bar", [], []),
    ("metric.value one 123456789", [], []),
    ("metric.value 1 noon", [], []),
    # TestParseGraphiteTags
    ("metric.value 1 123456789", [HOST], [("metric.value", 1, 123456789, [HOST])]),
    ("metric.value 1 123456789", FOO_BOO, [("metric.value", 1, 123456789, FOO_BOO)]),
    ("metric.value 1 123456789", [("", "")], [("metric.value", 1, 123456789, [("", "")])]),
]  # fmt: skip


@pytest.mark.parametrize(("output", "tags", "expected"), GRAPHITE)
def test_graphite_plaintext_as_sensu_go(output: str, tags: list[tuple[str, str]], expected: list[Point]) -> None:
    assert points("graphite_plaintext", output, tags) == expected


CPU = "sys.cpu.user", 42.5, 1356998400
WEB = "host", "webserver01"
OPENTSDB: list[tuple[str, list[tuple[str, str]], list[Point]]] = [
    # TestParseOpenTSDB and TestParseAndTransformOpenTSDB
    ("sys.cpu.user 1356998400 42.5 host=webserver01", [], [(*CPU, [WEB])]),
    ("sys.cpu.user 1356998400 42.5 host=webserver01 cpu=0\n", [], [(*CPU, [WEB, ("cpu", "0")])]),
    ("sys.cpu.user 1356998400 42.5 host=webserver01 cpu=0\nfoo", [], [(*CPU, [WEB, ("cpu", "0")])]),
    ("sys.cpu.user 1356998400000 42.5 host=webserver01", [], [(*CPU, [WEB])]),
    ("sys.cpu.user 1356998400000 42.5 host=webserver01 cpu=0", [], [(*CPU, [WEB, ("cpu", "0")])]),
    ("sys.cpu.user 1356998400000 42.5", [], []),
    ("sys.cpu.user foo 42.5 host=webserver01", [], []),
    ("sys.cpu.user 1356998400 foo host=webserver01", [], []),
    ("sys.cpu.user 1356998400 42.5 host", [], []),
    ("sys.cpu.user 1356998400 42.5 host=webserver01\nfoo", [], [(*CPU, [WEB])]),
    ("sys.cpu.user 1356998400 42.5", [], []),
    # TestParseOpenTSDBTags: output_metric_tags after the line's
    ("sys.cpu.user 1356998400 42.5 host=webserver01", [HOST], [(*CPU, [WEB, HOST])]),
    ("sys.cpu.user 1356998400 42.5 host=webserver01", FOO_BOO, [(*CPU, [WEB, *FOO_BOO])]),
]  # fmt: skip


@pytest.mark.parametrize(("output", "tags", "expected"), OPENTSDB)
def test_opentsdb_line_as_sensu_go(output: str, tags: list[tuple[str, str]], expected: list[Point]) -> None:
    assert points("opentsdb_line", output, tags) == expected


GC = "go_gc_duration_seconds"
PROMETHEUS: list[tuple[str, list[tuple[str, str]], list[Point]]] = [
    # TestParseProm
    (f'{GC}{{quantile="0"}} 3.3722e-05\n', [], [(GC, 3.3722e-05, NOW, [("quantile", "0"), ("prom_type", "untyped")])]),
    # Sensu Go also gives a _sum and a _count of 0 that the output does not have (prometheus/common
    # fills a summary's missing ones); pipeline extracts only the samples written.
    (f'# TYPE {GC} summary\n{GC}{{quantile="0"}} 3.3722e-05\n{GC}{{quantile="0.25"}} 5.0129e-05\n', [],
     [(GC, 3.3722e-05, NOW, [("quantile", "0"), ("prom_type", "summary")]),
      (GC, 5.0129e-05, NOW, [("quantile", "0.25"), ("prom_type", "summary")])]),
    ("# HELP go_memstats_alloc_bytes_total Total number of bytes allocated, even if freed.\n"
     "# TYPE go_memstats_alloc_bytes_total counter\ngo_memstats_alloc_bytes_total 4.095146016e+09\n", [],
     [("go_memstats_alloc_bytes_total", 4.095146016e09, NOW,
       [("prom_type", "counter"), ("prom_help", "Total number of bytes allocated, even if freed.")])]),
    # Sensu Go gives nothing: its parser needs a newline after the last sample. pipeline reads it.
    ("foo 1", [], [("foo", 1, NOW, [("prom_type", "untyped")])]),
    ('foo{bar="2"}\n', [], []),
    ("", [], []),
    # TestParsePromTags: output_metric_tags after the sample's labels and prom_type
    (f'{GC}{{quantile="0"}} 3.3722e-05\n', [HOST],
     [(GC, 3.3722e-05, NOW, [("quantile", "0"), ("prom_type", "untyped"), HOST])]),
    (f'{GC}{{quantile="0"}} 3.3722e-05\n', FOO_BOO,
     [(GC, 3.3722e-05, NOW, [("quantile", "0"), ("prom_type", "untyped"), *FOO_BOO])]),
]  # fmt: skip


@pytest.mark.parametrize(("output", "tags", "expected"), PROMETHEUS)
def test_prometheus_text_as_sensu_go(output: str, tags: list[tuple[str, str]], expected: list[Point]) -> None:
    assert points("prometheus_text", output, tags) == expected


def test_influxdb_string_values_may_hold_quotes_commas_and_spaces_where_keys_hold_literal_quotes() -> None:
    output = 'm"x,t"g=v"1 note="a \\"b\\", c d",f"k=2,s="",n=3i 1465839830'
    tags = [('t"g', 'v"1')]
    assert points("influxdb_line", output, []) == [('m"x.f"k', 2, 1465839830, tags), ('m"x.n', 3, 1465839830, tags)]
