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

import functools
from collections.abc import Callable

from pipeline.core.js import JsFilter, compile_filter, filter_input
from pipeline.core.stages import FilterOutcome, LibraryLoader, StageRef, no_libraries
from pipeline.model import Event
from pipeline.model.forms import EventForms
from pipeline.model.pipeline import EventFilter


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


BUILTIN_FILTERS: dict[str, Callable[[Event], bool]] = {
    "is_incident": is_incident,
    "not_silenced": not_silenced,
    "has_metrics": has_metrics,
}
#: pipeline's ``fatigue`` filter: Sensu's fatigue-check-filter asset, built in (see prelude.py)
FATIGUE = "fatigue"


#: the annotations Sensu's fatigue-check-filter reads as whole numbers (with parseInt: "3x" is 3,
#: "many" is NaN and then matches nothing, so every incident of the check is filtered out)
FATIGUE_NUMBERS = (
    "fatigue_check/occurrences",
    "fatigue_check/interval",
    "fatigue_check/keepalive_occurrences",
    "fatigue_check/keepalive_interval",
)


def fatigue_annotation_problems(annotations: dict[str, str]) -> list[tuple[str, str]]:
    """The fatigue annotations that are not whole numbers, as (key, problem): the filter does not
    refuse them (Sensu's does not), so ``pipeline validate`` warns."""
    problems = []
    for key in FATIGUE_NUMBERS:
        value = annotations.get(key)
        if value is not None and not (value.strip().isascii() and value.strip().isdecimal()):  # parseInt("٣") is NaN
            problems.append((key, f"expected a whole number, got {value!r}: fatigue_check reads it with parseInt"))
    return problems


@functools.cache
def _fatigue_filter() -> JsFilter:
    return compile_filter(["fatigue_check(event)"], "fatigue", "allow")


# -- adapters ----------------------------------------------------------------------------------


class BuiltinFilters:
    """The filter adapter of the built-ins above (by name, in any namespace)."""

    def can_filter(self, ref: StageRef) -> bool:
        return ref.name in BUILTIN_FILTERS or ref.name == FATIGUE

    async def filter(self, ref: StageRef, forms: EventForms, now: float) -> FilterOutcome:
        if ref.name == FATIGUE:
            prepared = forms.memo("filter_input", lambda: filter_input(forms.event))
            verdict = _fatigue_filter().evaluate(prepared, now)
            return FilterOutcome(verdict.passed, [str(error) for error in verdict.errors])
        return FilterOutcome(BUILTIN_FILTERS[ref.name](forms.event))


class JavaScriptFilters:
    """The filter adapter of EventFilter resources: their JavaScript expressions, compiled once per
    change of the resources; each event is synthesized once for all the filters it meets. The
    JavaScript of a filter's ``runtime_assets`` comes from ``libraries`` (the runner's asset
    cache); when it cannot be had the filter runs without it, as in Sensu Go, and says why."""

    def __init__(self, filters: list[EventFilter], libraries: LibraryLoader = no_libraries) -> None:
        self._filters = {(f.metadata.namespace or "default", f.metadata.name): f for f in filters}
        self._compiled = {key: compile_event_filter(f) for key, f in self._filters.items()}
        self._libraries = libraries

    def can_filter(self, ref: StageRef) -> bool:
        return (ref.namespace, ref.name) in self._compiled

    async def filter(self, ref: StageRef, forms: EventForms, now: float) -> FilterOutcome:
        key = ref.namespace, ref.name
        errors = []
        loaded = await self._libraries(self._filters[key].runtime_assets, ref.namespace)
        if loaded.error:
            errors.append(loaded.error)
        prepared = forms.memo("filter_input", lambda: filter_input(forms.event))
        verdict = self._compiled[key].evaluate(prepared, now, loaded.libraries)
        return FilterOutcome(verdict.passed, errors + [str(error) for error in verdict.errors])


def compile_event_filter(event_filter: EventFilter) -> JsFilter:
    """An EventFilter's expressions compiled (raises ValidationError at ``spec.expressions[i]``)."""
    return compile_filter(list(event_filter.expressions), "spec.expressions", event_filter.action,
                          when=event_filter.when)  # fmt: skip
