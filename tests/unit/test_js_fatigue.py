"""The built-in fatigue filter, ``fatigue_check(event)``, against one table: it is Sensu's
fatigue-check-filter asset (lib/fatigue_check.js), as operators moving from Sensu Go run it, and
pipeline's built-in ``fatigue`` filter (a workflow's ``filters: [fatigue]``) is that same function,
so it answers every row alike."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import trio

from pipeline.core.filtering import BuiltinFilters
from pipeline.core.js import compile_filter
from pipeline.core.stages import StageRef
from pipeline.model import Event
from pipeline.model.forms import EventForms
from tests.unit.js_events import MONDAY_EVENING, make_event


@dataclass
class Row:
    name: str
    event: Event
    asset: bool


def incident(occurrences: int, **kwargs: object) -> Event:
    return make_event(status=2, occurrences=occurrences, **kwargs)  # type: ignore[arg-type]


def resolution(watermark: int, **kwargs: object) -> Event:
    event = make_event(status=0, occurrences=1, history=[2, 0], **kwargs)  # type: ignore[arg-type]
    assert event.check is not None
    event.check.occurrences_watermark = watermark
    return event


EVERY_HOUR = {"fatigue_check/occurrences": "3", "fatigue_check/interval": "3600"}
TABLE = [
    Row("first occurrence, defaults", incident(1), True),
    Row("second occurrence, defaults", incident(2), False),
    Row("before the configured occurrence", incident(2, check_annotations=EVERY_HOUR), False),
    Row("at the configured occurrence", incident(3, check_annotations=EVERY_HOUR), True),
    Row("between repeats", incident(4, check_annotations=EVERY_HOUR), False),
    Row(
        "repeat: occurrences a multiple of interval / check interval",
        incident(60, check_annotations=EVERY_HOUR),
        True,
    ),
    Row(
        "repeat counted from the first notification",
        incident(63, check_annotations=EVERY_HOUR),
        False,
    ),
    Row(
        "interval not a multiple of the check's rounds up",
        incident(16, interval=25, check_annotations={"fatigue_check/interval": "180"}),
        True,  # every ceil(180 / 25) = 8 occurrences (the asset's README example)
    ),
    Row("entity annotations alone", incident(2, entity_annotations={"fatigue_check/occurrences": "2"}), True),
    Row(
        "entity annotations take precedence over the check's",
        incident(
            2,
            entity_annotations={"fatigue_check/occurrences": "2"},
            check_annotations={"fatigue_check/occurrences": "5"},
        ),
        True,
    ),
    Row("resolution of a notified incident", resolution(3, check_annotations=EVERY_HOUR), True),
    Row("resolution of an incident never notified", resolution(2, check_annotations=EVERY_HOUR), False),
    Row(
        "resolution with allow_resolution false",
        resolution(5, check_annotations={"fatigue_check/allow_resolution": "false"}),
        False,
    ),
    Row(
        "allow_resolution: anything but false is true",
        resolution(5, check_annotations={"fatigue_check/allow_resolution": "no"}),
        True,
    ),
    Row(
        "an OK event that is no resolution, first occurrence",
        make_event(status=0, occurrences=1, history=[0, 0]),
        True,
    ),
    Row(
        "a flapping check is suppressed",
        incident(1, state="flapping"),
        False,
    ),
    Row(
        "suppress_flapping false",
        incident(1, state="flapping", check_annotations={"fatigue_check/suppress_flapping": "false"}),
        True,
    ),
    Row(
        "an annotation that is no number",
        incident(1, check_annotations={"fatigue_check/occurrences": "many"}),
        False,
    ),
    Row("a metrics-only event", make_event(check=False, metrics=True), False),
]


def builtin_answer(event: Event) -> bool:
    outcome = trio.run(BuiltinFilters().filter, StageRef("fatigue", "default"), EventForms(event), MONDAY_EVENING)
    assert outcome.errors == []
    return outcome.passed


@pytest.mark.parametrize("row", TABLE, ids=[row.name for row in TABLE])
def test_fatigue_check_is_sensu_s_asset_and_the_builtin_fatigue_filter_is_the_same(row: Row) -> None:
    verdict = compile_filter(["fatigue_check(event)"], "spec.expressions").evaluate(row.event, MONDAY_EVENING)
    assert verdict.errors == []
    assert verdict.passed is row.asset
    assert builtin_answer(row.event) is row.asset


def test_fatigue_check_takes_the_asset_s_optional_arguments() -> None:
    # fatigue_check(event, occurrences, interval, keepalive_occurrences, keepalive_interval)
    def passes(expression: str, event: Event) -> bool:
        return compile_filter([expression], "spec.expressions").evaluate(event, MONDAY_EVENING).passed

    assert passes("fatigue_check(event, 2)", incident(2))
    assert not passes("fatigue_check(event, 2)", incident(1))
    assert passes("fatigue_check(event, 1, 600)", incident(10))
    keepalive = incident(2, name="keepalive", entity_annotations={"fatigue_check/keepalive_occurrences": "2"})
    assert passes("fatigue_check(event)", keepalive)
    assert passes("fatigue_check(event, 1, 1800, 2)", incident(2, name="keepalive"))
    assert passes("fatigue_check(event, 1, 1800, 1, 600)", incident(20, name="keepalive"))
    # a cron check's interval comes from its history (one minute apart here): every 3600 / 60 = 60
    cron = make_event(status=2, occurrences=60, interval=0, cron="* * * * *", history=[2] * 5)
    assert passes("fatigue_check(event, 1, 3600)", cron)
    assert not passes(
        "fatigue_check(event, 1, 3600)",
        make_event(status=2, occurrences=30, interval=0, cron="* * * * *", history=[2] * 5),
    )
