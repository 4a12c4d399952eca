"""output_metric_thresholds, as Sensu Go 6 evaluates them (its own test cases), and its messages."""

from __future__ import annotations

import pytest

from pipeline.core.thresholds import evaluate, format_go_float
from pipeline.errors import ValidationError
from pipeline.model import MetricPoint, MetricTag
from pipeline.model.check import MetricThreshold, MetricThresholdRule, MetricThresholdTag

DISK = MetricPoint(name="disk_rate", value=99999.0, timestamp=1)
NET = MetricPoint(name="network_rate", value=100001.0, timestamp=1, tags=[MetricTag("device", "eth0")])
KEY = "sensu.io/output_metric_thresholds/"


def threshold(
    name: str, *rules: tuple[str, str, int], null_status: int = 0, tags: dict[str, str] | None = None
) -> MetricThreshold:
    return MetricThreshold(
        name=name,
        tags=[MetricThresholdTag(k, v) for k, v in (tags or {}).items()],
        thresholds=[MetricThresholdRule(min=lo, max=hi, status=s) for lo, hi, s in rules],
        null_status=null_status,
    )


# Sensu Go's TestEvaluateOutputMetricThresholds: (points, thresholds, status, annotation keys).
CASES = [
    ([DISK], [threshold("disk_rate", ("200000.0", "", 2))], 2, ["notifications/critical", "disk_rate/min/critical"]),
    ([DISK], [threshold("disk_rate", ("", "50000.0", 2))], 2, ["notifications/critical", "disk_rate/max/critical"]),
    ([DISK], [threshold("disk_rate", ("50000.0", "", 2))], 0, ["notifications/ok", "disk_rate/min/ok"]),
    ([DISK], [threshold("disk_rate", ("", "200000.0", 2))], 0, ["notifications/ok", "disk_rate/max/ok"]),
    ([DISK], [threshold("disk_rate", ("200000.0", "", 1), ("", "75000.0", 2))], 2,
     ["notifications/critical", "disk_rate/min/warning", "disk_rate/max/critical"]),
    ([DISK], [threshold("disk_rate", ("200000.0", "", 1), ("", "200000.0", 2))], 1,
     ["notifications/warning", "disk_rate/min/warning", "disk_rate/max/ok"]),
    ([DISK], [threshold("not_a_disk_rate", ("", "200000.0", 2), null_status=1)], 1,
     ["notifications/warning", "not_a_disk_rate/null-status/warning"]),
    ([DISK, NET], [threshold("disk_rate", ("", "200000.0", 2), null_status=1)], 0,
     ["notifications/ok", "disk_rate/max/ok"]),
    ([DISK, NET], [threshold("disk_rate", ("", "50000.0", 2), null_status=1)], 2,
     ["notifications/critical", "disk_rate/max/critical"]),
    ([DISK, NET], [threshold("disk_rate", ("", "50000.0", 2), null_status=1), threshold("network_rate", ("", "40000", 3))],
     3, ["notifications/unknown", "disk_rate/max/critical", "network_rate/max/unknown"]),
]  # fmt: skip


@pytest.mark.parametrize(("points", "thresholds", "status", "keys"), CASES)
def test_sensu_go_cases(
    points: list[MetricPoint], thresholds: list[MetricThreshold], status: int, keys: list[str]
) -> None:
    result = evaluate(0, points, thresholds)
    assert result.status == status
    expected = {"sensu.io/" + k if k.startswith("notifications/") else KEY + k for k in keys}
    assert set(result.annotations) == expected


def test_messages_read_as_sensu_go_writes_them() -> None:
    tagged = threshold("network_rate", ("", "40000", 2), tags={"device": "eth0"})
    result = evaluate(0, [NET], [tagged])
    message = "The value of network_rate (device=eth0) exceeded the configured threshold (max: 40000, actual: 100001)."
    assert result.annotations == {
        KEY + "network_rate.eth0/max/critical": message,
        "sensu.io/notifications/critical": message,
    }
    missing = evaluate(0, [DISK], [threshold("swap", ("1", "90", 2), null_status=3, tags={"host": "a"})])
    assert missing.annotations[KEY + "swap.a/null-status/unknown"] == (
        'UNKNOWN : no metric matching "swap" (host="a") was found; expected min: 1 - max: 90 (status: critical)'
    )


def test_the_notification_is_the_violation_that_won() -> None:
    # A later "is within" evaluation must not replace the reason for the final status.
    result = evaluate(0, [DISK], [threshold("disk_rate", ("", "50000", 2), ("", "200000", 1))])
    assert result.status == 2
    assert "exceeded" in result.annotations["sensu.io/notifications/critical"]


def test_only_a_passing_check_with_points_is_evaluated() -> None:
    rules = [threshold("disk_rate", ("", "1", 2))]
    assert evaluate(1, [DISK], rules).status == 1
    assert evaluate(1, [DISK], rules).annotations == {}
    assert evaluate(0, [], rules).status == 0


@pytest.mark.parametrize(
    ("value", "text"), [(100001.0, "100001"), (0.8, "0.8"), (1e21, "1000000000000000000000"), (-2.5e-7, "-0.00000025")]
)
def test_go_float_formatting(value: float, text: str) -> None:
    assert format_go_float(value) == text


@pytest.mark.parametrize(
    "bound", ["5_0000", "\u0665\u0660\u0660\u0660\u0660", " 50000", "1e400", "+nan", "\u0131nf", "\u0130nfinity"]
)
def test_a_bound_go_cannot_parse_is_refused_and_never_evaluated(bound: str) -> None:
    """Sensu Go parses a bound with strconv.ParseFloat; Python's float takes ``5_0000``, Arabic-Indic
    digits and blanks as 50000 and ``1e400`` as infinity. Refused where the check is configured, and a
    rule holding one (stored before) is skipped, as Sensu Go skips a bound it cannot parse."""
    rule = threshold("disk_rate", ("", bound, 2))
    with pytest.raises(ValidationError, match=r"thresholds\[0\]\.max: expected a number"):
        rule.validate("output_metric_thresholds[0]")
    assert evaluate(0, [DISK], [rule]).status == 0
    threshold("disk_rate", ("", "5e4", 2), ("Inf", "", 1), ("nan", "", 1)).validate("output_metric_thresholds[0]")
    assert evaluate(0, [DISK], [threshold("disk_rate", ("", "5e4", 2))]).status == 2
