"""``output_metric_thresholds``: a check's status from its extracted metrics. Pure.

As Sensu Go 6 (``agent/check_handler.go``): only a check that exited 0 and produced points
is evaluated; a rule whose ``min`` is violated is not checked against ``max``; a threshold
with no matching point gives its ``null_status``; the result is the worst violated status.
Every rule evaluated leaves an annotation, ``sensu.io/output_metric_thresholds/<name>[.<tag
values>]/<min|max|null-status>/<status>``, and ``sensu.io/notifications/<status>`` says why
the final status is what it is. Unlike Sensu Go, that last message is always the one of
the violation that set the final status (Sensu Go may overwrite it with a later
"is within" message).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from pipeline.model import MetricPoint
from pipeline.model.check import MetricThreshold
from pipeline.model.go_float import parse_go_float

CAPTIONS = {0: "ok", 1: "warning", 2: "critical"}


def caption(status: int) -> str:
    """Sensu's ``CheckStatusToCaption``."""
    return CAPTIONS.get(status, "unknown")


def format_go_float(value: float) -> str:
    """``strconv.FormatFloat(value, 'f', -1, 64)``: shortest digits, never an exponent."""
    if value != value or value in (float("inf"), float("-inf")):
        return {"inf": "+Inf", "-inf": "-Inf"}.get(str(value), "NaN")
    text = format(Decimal(repr(value)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(slots=True)
class ThresholdResult:
    status: int
    annotations: dict[str, str] = field(default_factory=dict)


def _matches(threshold: MetricThreshold, point: MetricPoint) -> bool:
    if point.name != threshold.name:
        return False
    tags = {(t.name, t.value) for t in point.tags}
    return all((t.name, t.value) in tags for t in threshold.tags)


def _key(threshold: MetricThreshold, measure: str, status: int) -> str:
    name = ".".join([threshold.name, *(t.value for t in threshold.tags)])
    return f"sensu.io/output_metric_thresholds/{name}/{measure}/{caption(status)}"


def _message(threshold: MetricThreshold, measure: str, value: float, bound: str, exceeded: bool) -> str:
    tags = ",".join(f"{t.name}={t.value}" for t in threshold.tags)
    subject = f"{threshold.name} ({tags})" if tags else threshold.name
    verdict = "exceeded" if exceeded else "is within"
    actual = format_go_float(value)
    return f"The value of {subject} {verdict} the configured threshold ({measure}: {bound}, actual: {actual})."


def _null_message(threshold: MetricThreshold) -> str:
    tags = ", ".join(f'{t.name}="{t.value}"' for t in threshold.tags)
    text = f'{caption(threshold.null_status).upper()} : no metric matching "{threshold.name}"'
    text += f" ({tags})" if tags else ""
    text += " was found"
    for rule in threshold.thresholds:
        bounds = [f"min: {rule.min}"] if rule.min else []
        bounds += [f"max: {rule.max}"] if rule.max else []
        text += f"; expected {' - '.join(bounds)} (status: {caption(rule.status)})"
    return text


def _bound(text: str) -> float | None:
    return parse_go_float(text)  # Sensu Go's strconv.ParseFloat: not 1_0 nor ٣ as float() takes them


def evaluate(status: int, points: Sequence[MetricPoint], thresholds: Sequence[MetricThreshold]) -> ThresholdResult:
    """The check's status after its thresholds, and the annotations to add to the event."""
    if status != 0 or not points or not thresholds:
        return ThresholdResult(status)
    result = ThresholdResult(0)
    winner = ""
    last_within = ""
    for threshold in thresholds:
        matched = [p for p in points if _matches(threshold, p)]
        for point in matched:
            for rule in threshold.thresholds:
                for measure, text, exceeded in _checks(rule.min, rule.max, point.value):
                    message = _message(threshold, measure, point.value, text, exceeded)
                    result.annotations[_key(threshold, measure, rule.status if exceeded else 0)] = message
                    if exceeded and rule.status > result.status:
                        result.status, winner = rule.status, message
                    elif not exceeded:
                        last_within = message
        if not matched and threshold.null_status > 0:
            message = _null_message(threshold)
            result.annotations[_key(threshold, "null-status", threshold.null_status)] = message
            if threshold.null_status > result.status:
                result.status, winner = threshold.null_status, message
    notification = winner if result.status > 0 else last_within
    if notification:
        result.annotations[f"sensu.io/notifications/{caption(result.status)}"] = notification
    return result


def _checks(minimum: str, maximum: str, value: float) -> list[tuple[str, str, bool]]:
    """(measure, bound text, exceeded) for one rule and one value, in Sensu's order."""
    checks = []
    low = _bound(minimum) if minimum else None
    if minimum and low is None:
        return []  # Sensu Go skips a rule whose bound is not a number
    if low is not None:
        if value < low:
            return [("min", minimum, True)]  # a violated min is not checked against max
        checks.append(("min", minimum, False))
    high = _bound(maximum) if maximum else None
    if high is not None:
        checks.append(("max", maximum, value > high))
    return checks
