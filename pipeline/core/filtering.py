"""Whether an event passes a filter: Sensu Go's built-ins, the fatigue filter, and EventFilters
whose expressions are sandboxed Jinja2 expressions. Pure: the time is a parameter.

Expressions see ``event`` as its Sensu JSON plus the facts Sensu Go synthesizes for filters
(``event.is_incident``, ``event.is_resolution``, ``event.is_silenced``, ``event.has_check``,
``event.has_metrics``), and time helpers: ``hour(ts)``, ``minute(ts)``, ``second(ts)``,
``weekday(ts)`` (UTC; Sunday is 0, as in Sensu Go) and ``seconds_since(ts)``. A field that
does not exist is an error, not a silent false, so a typo shows in the log.

As in Sensu Go: ``allow`` passes the event only if every expression holds; ``deny`` drops it
if any holds; an expression that fails is skipped (and reported).

Two filter adapters (:mod:`pipeline.core.stages`) are here: :class:`BuiltinFilters` and
:class:`ExpressionFilters` (the EventFilters of a set of resources, compiled once).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateError

from pipeline.core.stages import FilterOutcome, StageRef
from pipeline.core.template_limits import BoundedSandbox
from pipeline.errors import ValidationError
from pipeline.model import Event
from pipeline.model.forms import EventForms
from pipeline.model.pipeline import EventFilter
from pipeline.model.resources import Resources

# bounded as templates are: "x" * 10**9 in an expression ran once per event in the backend's thread
_ENVIRONMENT = BoundedSandbox(undefined=StrictUndefined, autoescape=False)

FATIGUE_OCCURRENCES = "fatigue_check/occurrences"
FATIGUE_INTERVAL = "fatigue_check/interval"
FATIGUE_ALLOW_RESOLUTION = "fatigue_check/allow_resolution"


class FilterError(Exception):
    """A filter cannot be applied to an event (the message names the filter and the cause)."""


def compile_expression(text: str, path: str) -> Callable[..., Any]:
    """A compiled expression; a syntax error is a ValidationError at ``path``."""
    try:
        return _ENVIRONMENT.compile_expression(text, undefined_to_none=False)
    except TemplateError as exc:
        raise ValidationError(path, f"invalid expression {text!r}: {exc}") from None


def _utc(timestamp: float) -> time.struct_time:
    return time.gmtime(float(timestamp))


def expression_context(forms: EventForms, now: float) -> dict[str, Any]:
    event = forms.event
    synthesized = dict(forms.data)  # a shallow copy: the shared dict stays as encoded
    synthesized.update(
        is_incident=event.is_incident,
        is_resolution=event.is_resolution,
        is_silenced=event.is_silenced,
        has_check=event.has_check,
        has_metrics=event.has_metrics,
    )
    return {
        "event": synthesized,
        "hour": lambda ts: _utc(ts).tm_hour,
        "minute": lambda ts: _utc(ts).tm_min,
        "second": lambda ts: _utc(ts).tm_sec,
        "weekday": lambda ts: (_utc(ts).tm_wday + 1) % 7,  # Python's Monday=0 to Sensu's Sunday=0
        "seconds_since": lambda ts: int(now - float(ts)),
    }


@dataclass(slots=True)
class CompiledFilter:
    name: str
    action: str
    expressions: list[tuple[str, Callable[..., Any]]]

    @classmethod
    def of(cls, event_filter: EventFilter) -> CompiledFilter:
        compiled = [
            (text, compile_expression(text, f"spec.expressions[{i}]"))
            for i, text in enumerate(event_filter.expressions)
        ]
        return cls(event_filter.metadata.name, event_filter.action, compiled)

    def apply(self, event: Event, now: float) -> FilterOutcome:
        return self.evaluate(EventForms(event), now)

    def evaluate(self, forms: EventForms, now: float) -> FilterOutcome:
        context = expression_context(forms, now)
        outcome = FilterOutcome(passed=True)
        for text, expression in self.expressions:
            try:
                holds = bool(expression(**context))
            except (TemplateError, TypeError, ValueError, ArithmeticError, AttributeError) as exc:
                outcome.errors.append(f"{text!r}: {type(exc).__name__}: {exc}")
                continue
            if self.action == "allow" and not holds:
                outcome.passed = False
                return outcome
            if self.action == "deny" and holds:
                outcome.passed = False
                return outcome
        return outcome


# -- built-ins ---------------------------------------------------------------------------------


def is_incident(event: Event) -> bool:
    """Sensu's ``is_incident`` filter: incidents and resolutions pass; OK after OK and metrics do not."""
    return event.is_incident or event.is_resolution


def not_silenced(event: Event) -> bool:
    return event.check is None or not event.check.silenced


def has_metrics(event: Event) -> bool:
    return event.metrics is not None


@dataclass(slots=True, frozen=True)
class FatigueSettings:
    occurrences: int = 1
    interval: int = 1800
    allow_resolution: bool = True


def fatigue_settings(event: Event) -> FatigueSettings:
    """The fatigue annotations of the check, else of the entity (Sensu's fatigue-check filter keys)."""
    annotations: dict[str, str] = {}
    if event.entity is not None:
        annotations.update(event.entity.metadata.annotations)
    if event.check is not None:
        annotations.update(event.check.metadata.annotations)

    def number(key: str, default: int) -> int:
        text = annotations.get(key)
        if text is None:
            return default
        try:
            value = int(text)
        except ValueError:
            raise FilterError(f"annotation {key}: expected a whole number, got {text!r}") from None
        if value < 0:
            raise FilterError(f"annotation {key}: must not be negative, got {text!r}")
        return value

    allow = annotations.get(FATIGUE_ALLOW_RESOLUTION, "true").strip().lower()
    if allow not in ("true", "false"):
        raise FilterError(f"annotation {FATIGUE_ALLOW_RESOLUTION}: expected true or false, got {allow!r}")
    return FatigueSettings(
        occurrences=max(1, number(FATIGUE_OCCURRENCES, 1)),
        interval=number(FATIGUE_INTERVAL, 1800),
        allow_resolution=allow == "true",
    )


def fatigue(event: Event) -> bool:
    """Notify at the ``occurrences``-th failing result, then at most every ``interval`` seconds
    (counted in check runs: interval / check interval), and on the resolution of an incident
    that was notified. Raises FilterError on bad annotations."""
    check = event.check
    if check is None:
        return False
    settings = fatigue_settings(event)
    if event.is_resolution:
        return settings.allow_resolution and check.occurrences_watermark >= settings.occurrences
    if check.status == 0:
        return False
    if check.occurrences == settings.occurrences:
        return True
    if check.occurrences > settings.occurrences and settings.interval > 0:
        every = max(1, settings.interval // max(check.interval, 1))
        return (check.occurrences - settings.occurrences) % every == 0
    return False


BUILTIN_FILTERS: dict[str, Callable[[Event], bool]] = {
    "is_incident": is_incident,
    "not_silenced": not_silenced,
    "has_metrics": has_metrics,
    "fatigue": fatigue,
}


# -- adapters ----------------------------------------------------------------------------------


class BuiltinFilters:
    """The filter adapter of the built-ins above (by name, in any namespace)."""

    def can_filter(self, ref: StageRef) -> bool:
        return ref.name in BUILTIN_FILTERS

    def filter(self, ref: StageRef, forms: EventForms, now: float) -> FilterOutcome:
        return FilterOutcome(BUILTIN_FILTERS[ref.name](forms.event))


class ExpressionFilters:
    """The filter adapter of EventFilter resources with pipeline's expressions, compiled once."""

    def __init__(self, filters: list[EventFilter]) -> None:
        self._compiled = {(f.metadata.namespace or "default", f.metadata.name): CompiledFilter.of(f) for f in filters}

    @classmethod
    def of(cls, resources: Resources) -> ExpressionFilters:
        return cls(resources.filters)

    def can_filter(self, ref: StageRef) -> bool:
        return (ref.namespace, ref.name) in self._compiled

    def filter(self, ref: StageRef, forms: EventForms, now: float) -> FilterOutcome:
        return self._compiled[ref.namespace, ref.name].evaluate(forms, now)
