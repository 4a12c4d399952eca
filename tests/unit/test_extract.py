"""Metric extraction: Sensu Go's results for well-formed output, and right where Sensu Go is not."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.extract import PARSERS, extract
from pipeline.model import MetricTag

NOW = 1_700_000_000
OMT = [MetricTag("env", "prod")]


def points(
    fmt: str, output: str, tags: list[MetricTag] | None = None
) -> list[tuple[str, float, int, list[tuple[str, str]]]]:
    result = extract(fmt, output, NOW, tags or [])
    return [(p.name, p.value, p.timestamp, [(t.name, t.value) for t in p.tags]) for p in result.points]


def errors(fmt: str, output: str) -> list[str]:
    return extract(fmt, output, NOW).errors


# -- nagios_perfdata ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        # Sensu Go's own cases (agent/transformers/nagios_test.go).
        ("PING ok - Packet loss = 0%, RTA = 0.80 ms", []),
        ("PING ok - Packet loss = 0% | percent_packet_loss=0", [("percent_packet_loss", 0.0)]),
        ("PING ok - Packet loss = 0% | percent_packet_loss=0\n", [("percent_packet_loss", 0.0)]),
        ("PING ok - Packet loss = 0%, RTA = 0.80 ms | percent_packet_loss=0, rta=0.80",
         [("percent_packet_loss", 0.0), ("rta", 0.8)]),
        ("PING ok - Packet loss = 0%, RTA = 0.80 ms | percent_packet_loss=0, foo", [("percent_packet_loss", 0.0)]),
        ("PING ok - Packet loss = 0%, RTA = 0.80 ms | percent_packet_loss", []),
        ("PING ok - Packet loss = 0%, RTA = 0.80 ms | percent_packet_loss=a", []),
        ("CRITICAL - load average: 0.01, 0.04, 0.05|load1=0.010;0.010;0.010;0; load5=0.040;0.010;0.010;0; "
         "load15=0.050;0.010;0.010;0; \n", [("load1", 0.01), ("load5", 0.04), ("load15", 0.05)]),
        # Recorded from Debian's monitoring-plugins 2.3.3 on this machine.
        ("LOAD OK - total load average: 0.20, 0.74, 0.46|load1=0.200;5.000;10.000;0; load5=0.740;4.000;8.000;0; "
         "load15=0.460;3.000;6.000;0; \n", [("load1", 0.2), ("load5", 0.74), ("load15", 0.46)]),
        ("DISK OK - free space: / 81495MiB (78% inode=97%);| /=23489150976B;216442024755;243497277849;0;270552530944\n",
         [("/", 23489150976.0)]),
        ("PROCS OK: 73 processes | procs=73;500;1000;0;\n", [("procs", 73.0)]),
        ("SWAP CRITICAL - 0% free (0MB out of 0MB) - Swap is either disabled, not present, or of zero size. "
         "|swap=0B;0;0;0;0\n", [("swap", 0.0)]),
        ("USERS OK - 0 users currently logged in |users=0;5;10;0\n", [("users", 0.0)]),
        ("HTTP OK: HTTP/1.1 200 OK - 612 bytes in 0.001 second response time |time=0.000541s;;;0.000000;10.000000 "
         "size=612B;;;0\n", [("time", 0.000541), ("size", 612.0)]),
    ],
)  # fmt: skip
def test_nagios_as_sensu_go_extracts_it(output: str, expected: list[tuple[str, float]]) -> None:
    assert points("nagios_perfdata", output) == [(name, value, NOW, []) for name, value in expected]


def test_nagios_beyond_sensu_go() -> None:
    output = (
        "DISK OK - all good | '/ used'=80%;90;95 'it''s'=1.5e3MB\n"
        "long text, line 2\n"
        "long text, line 3 | from_long_text=3s;;\n"
        "more=4 undeterminable=U\n"
    )
    assert points("nagios_perfdata", output, OMT) == [
        ("/_used", 80.0, NOW, [("env", "prod")]),
        ("it's", 1500.0, NOW, [("env", "prod")]),
        ("from_long_text", 3.0, NOW, [("env", "prod")]),
        ("more", 4.0, NOW, [("env", "prod")]),
    ]
    assert errors("nagios_perfdata", output) == []


def test_nagios_reports_what_it_cannot_read() -> None:
    assert errors("nagios_perfdata", "OK | good=1 bad=x noequals") == [
        "line 1: 'bad=x': value 'x' is not a number",
        "line 1: 'noequals': expected label=value",
    ]


# -- graphite_plaintext ---------------------------------------------------------------------------


def test_graphite() -> None:
    output = "local.cpu.user 12.5 1700000001\nlocal.cpu.sys  3\t1700000002\nseries;dc=eu;rack=7 1 1700000003"
    assert points("graphite_plaintext", output, OMT) == [
        ("local.cpu.user", 12.5, 1700000001, [("env", "prod")]),
        ("local.cpu.sys", 3.0, 1700000002, [("env", "prod")]),  # any whitespace, and no trailing newline
        ("series", 1.0, 1700000003, [("env", "prod"), ("dc", "eu"), ("rack", "7")]),
    ]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("a.b 1", "expected 'path value timestamp', got 2 fields"),
        ("a.b x 1", "value 'x' is not a number"),
        ("a.b 1 now", "timestamp 'now' is not an integer"),
        ("a;b 1 2", "tag 'b' is not key=value"),
    ],
)
def test_graphite_bad_lines(line: str, reason: str) -> None:
    assert errors("graphite_plaintext", f"ok.line 1 2\n{line}\n") == [f"line 2: {line!r}: {reason}"]


# -- influxdb_line --------------------------------------------------------------------------------


def test_influxdb() -> None:
    output = (
        "weather,location=us-midwest temperature=82 1465839830100400200\n"
        'weather,location=us\\ east temperature=75.5,humidity=40i,raining=true,note="light rain" 1465839830\n'
        "cpu usage=0.5"
    )
    assert points("influxdb_line", output, OMT) == [
        ("weather.temperature", 82.0, 1465839830, [("location", "us-midwest"), ("env", "prod")]),
        ("weather.temperature", 75.5, 1465839830, [("location", "us east"), ("env", "prod")]),
        ("weather.humidity", 40.0, 1465839830, [("location", "us east"), ("env", "prod")]),
        ("weather.raining", 1.0, 1465839830, [("location", "us east"), ("env", "prod")]),
        ("cpu.usage", 0.5, NOW, [("env", "prod")]),
    ]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("m", "expected 'measurement[,tags] fields [timestamp]', got 1 parts"),
        ("m,tag f=1", "tag 'tag' is not key=value"),
        ("m f=abc", "field value 'abc' is not a number, boolean or string"),
        ("m f=1 soon", "timestamp 'soon' is not an integer"),
        ('m f="open', "unterminated string"),
    ],
)
def test_influxdb_bad_lines(line: str, reason: str) -> None:
    assert errors("influxdb_line", line) == [f"line 1: {line!r}: {reason}"]


# -- opentsdb_line --------------------------------------------------------------------------------


def test_opentsdb() -> None:
    output = "sys.cpu.user 1356998400 42.5 host=webserver01 cpu=0\nput sys.if.bytes 1356998400123 10 iface=eth0\n"
    assert points("opentsdb_line", output, OMT) == [
        ("sys.cpu.user", 42.5, 1356998400, [("host", "webserver01"), ("cpu", "0"), ("env", "prod")]),
        ("sys.if.bytes", 10.0, 1356998400, [("iface", "eth0"), ("env", "prod")]),
    ]
    assert errors("opentsdb_line", "sys.cpu 1356998400 1") == [
        "line 1: 'sys.cpu 1356998400 1': expected 'name timestamp value tag=value ...' (at least one tag)"
    ]


# -- prometheus_text ------------------------------------------------------------------------------

PROMETHEUS = """\
# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method="post",code="200"} 1027 1395066363000
http_requests_total{method="post",code="400"}    3 1395066363000
# A comment
metric_without_timestamp_and_labels 12.47
# TYPE rpc_duration_seconds summary
rpc_duration_seconds{quantile="0.5"} 4773
rpc_duration_seconds_sum 1.7560473e+07
rpc_duration_seconds_count 2693
# TYPE temperature gauge
temperature{room="a \\"big\\" one"} NaN
temperature{room="b"} -Inf
last_line_without_newline 1"""


def test_prometheus() -> None:
    assert points("prometheus_text", PROMETHEUS, [MetricTag("code", "overridden"), MetricTag("env", "prod")]) == [
        ("http_requests_total", 1027.0, 1395066363,
         [("method", "post"), ("code", "overridden"), ("prom_type", "counter"),
          ("prom_help", "The total number of HTTP requests."), ("env", "prod")]),
        ("http_requests_total", 3.0, 1395066363,
         [("method", "post"), ("code", "overridden"), ("prom_type", "counter"),
          ("prom_help", "The total number of HTTP requests."), ("env", "prod")]),
        ("metric_without_timestamp_and_labels", 12.47, NOW, [("prom_type", "untyped"), ("code", "overridden"), ("env", "prod")]),
        ("rpc_duration_seconds", 4773.0, NOW, [("quantile", "0.5"), ("prom_type", "summary"), ("code", "overridden"), ("env", "prod")]),
        ("rpc_duration_seconds_sum", 17560473.0, NOW, [("prom_type", "summary"), ("code", "overridden"), ("env", "prod")]),
        ("rpc_duration_seconds_count", 2693.0, NOW, [("prom_type", "summary"), ("code", "overridden"), ("env", "prod")]),
        ("last_line_without_newline", 1.0, NOW, [("prom_type", "untyped"), ("code", "overridden"), ("env", "prod")]),
    ]  # fmt: skip
    # An event cannot carry -Inf (the backend would refuse the check's whole result): said, not sent.
    assert errors("prometheus_text", PROMETHEUS) == [
        "line 13: 'temperature{room=\"b\"} -Inf': value '-Inf' is not a finite number"
    ]


def test_prometheus_bad_lines_are_skipped_not_fatal() -> None:
    output = 'a{x="1" 1\nb 2\nc{x=1} 3\nd 4 later\ne 5'
    assert [p[0] for p in points("prometheus_text", output)] == ["b", "e"]
    assert errors("prometheus_text", output) == [
        "line 1: 'a{x=\"1\" 1': malformed labels",
        "line 3: 'c{x=1} 3': malformed labels",
        "line 4: 'd 4 later': timestamp 'later' is not an integer",
    ]


# -- every parser, any input ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", sorted(PARSERS))
@given(output=st.text(alphabet=st.sampled_from(list("ab01.;=|' \"{}\\,\n\t#eU-+:@~i")), max_size=200))
def test_parsers_never_raise_and_account_for_every_line(fmt: str, output: str) -> None:
    result = extract(fmt, output, NOW, OMT)
    for point in result.points:
        assert isinstance(point.value, float)
        assert point.name
    for error in result.errors:
        assert error.startswith("line ")


def test_a_point_no_event_can_carry_is_dropped_with_an_error_and_the_others_kept() -> None:
    """Go's ParseFloat reads Inf and NaN, and timestamps may run past int64; such a point would
    make the backend refuse the check's whole result, so it is dropped and said so."""
    output = "a inf 1800000000\nb 1 99999999999999999999999\nc 2 1800000000\nd 3 \u0661\u0668\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660\n"
    result = extract("graphite_plaintext", output, NOW)
    assert [(p.name, p.value) for p in result.points] == [("c", 2.0)]
    assert "line 1: 'a inf 1800000000': value 'inf' is not a finite number" in result.errors
    assert any("line 2" in e and "is out of range" in e for e in result.errors)
    assert any("line 4" in e for e in result.errors)  # Arabic-Indic digits are not Go's digits
    influx = extract("influxdb_line", "m v=-inf\nm w=1\n", NOW)
    assert [p.name for p in influx.points] == ["m.w"]
