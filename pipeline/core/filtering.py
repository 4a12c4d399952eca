"""Whether an event passes a filter: Sensu Go's built-ins, the fatigue filter, and EventFilters
whose expressions are JavaScript, as in Sensu Go, run by :mod:`pipeline.core.js` (an embedded
engine, sandboxed, with a time and memory limit per evaluation). Pure: the time is a parameter.

Expressions see ``event`` as Sensu Go synthesizes it (``event.check.name``,
``event.entity.labels.x``, ``event.has_check``, ...; what is absent is ``undefined``), and
Sensu's functions ``hour``, ``minute``, ``second``, ``weekday``, ``seconds_since`` and
``fatigue_check``. As in Sensu Go (``backend/pipeline/filter/legacy.go``): ``allow`` passes the
event only if every expression holds; ``deny`` drops it if any holds; an expression that fails
(throws, runs past its time, needs too much memory) is skipped and reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pipeline.core.js import JsFilter, compile_filter, filter_input
from pipeline.core.stages import FilterOutcome, StageRef
from pipeline.model import Event
from pipeline.model.forms import EventForms
from pipeline.model.pipeline import EventFilter
from pipeline.model.resources import Resources

FATIGUE_OCCURRENCES = "fatigue_check/occurrences"
FATIGUE_INTERVAL = "fatigue_check/interval"
FATIGUE_ALLOW_RESOLUTION = "fatigue_check/allow_resolution"


class FilterError(Exception):
    """A filter cannot be applied to an event (the message names the filter and the cause)."""


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


class JavaScriptFilters:
    """The filter adapter of EventFilter resources: their JavaScript expressions, compiled once per
    change of the resources; each event is synthesized once for all the filters it meets."""

    def __init__(self, filters: list[EventFilter]) -> None:
        self._compiled = {
            (f.metadata.namespace or "default", f.metadata.name): compile_event_filter(f) for f in filters
        }

    @classmethod
    def of(cls, resources: Resources) -> JavaScriptFilters:
        return cls(resources.filters)

    def can_filter(self, ref: StageRef) -> bool:
        return (ref.namespace, ref.name) in self._compiled

    def filter(self, ref: StageRef, forms: EventForms, now: float) -> FilterOutcome:
        prepared = forms.memo("filter_input", lambda: filter_input(forms.event))
        verdict = self._compiled[ref.namespace, ref.name].evaluate(prepared, now)
        return FilterOutcome(verdict.passed, [str(error) for error in verdict.errors])


def compile_event_filter(event_filter: EventFilter) -> JsFilter:
    """An EventFilter's expressions compiled (raises ValidationError at ``spec.expressions[i]``)."""
    return compile_filter(list(event_filter.expressions), "spec.expressions", event_filter.action)
