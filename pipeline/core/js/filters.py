"""Sensu Go's EventFilter expressions in JavaScript: compiled (syntax-checked) at load, evaluated
in the sandbox of :mod:`pipeline.core.js.engine`.

Sensu Go's semantics, matched here (sensu-go ``backend/pipeline/filter/legacy.go``,
``evaluateEventFilter``, as of Sensu Go 6.9.0; ``js/js.go`` ``EvalPredicateWithVM``):

- each expression is run as a JavaScript *program* with ``event`` (the synthesized event, see
  :mod:`pipeline.core.js.synth`) and the filter functions as globals; its completion value is
  taken as a boolean by JavaScript truthiness (otto's ``Value.ToBoolean``): ``1``, ``"no"`` and
  ``{}`` are true, ``0``, ``""``, ``null`` and ``undefined`` false. (Sensu's documentation says a
  non-boolean result is an error that makes the filter false; its code has never done that.)
- ``allow``: the expressions are AND'd. They run in order; the first false one removes the event
  and ends the evaluation; the event passes when none was false.
- ``deny``: the expressions are OR'd (Sensu Go 6.9.0, "Fix multi-expression Deny filters",
  sensu-go#4852; before it a deny filter needed every expression true). The first true one
  removes the event and ends the evaluation; the event passes when none was true.
- an expression that throws (a TypeError on ``event.check.labels.x.y``, a ReferenceError), and
  here also one stopped at its time or memory limit, is logged by Sensu Go and **skipped**: it is
  neither true nor false (``continue``). So a filter whose only expression fails lets every event
  through, ``allow`` or ``deny``. :class:`JsVerdict` carries those errors for the caller's log line
  and counter.
- syntax errors are refused when the filter is loaded (``js.ParseExpressions``).

- ``when``: before the expressions, an ``allow`` filter removes an event outside its time windows
  and a ``deny`` filter one inside them (:mod:`pipeline.core.time_windows`); otherwise the
  expressions decide.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.core.js import engine
from pipeline.core.js.synth import FilterInput, Reads, event_paths, filter_input, reads
from pipeline.core.time_windows import in_windows
from pipeline.errors import ScriptError, ValidationError
from pipeline.model import Event
from pipeline.model.time_window import TimeWindowWhen

ACTIONS = ("allow", "deny")


@dataclass(slots=True)
class JsVerdict:
    """What a filter said about one event."""

    #: the event goes on (Sensu Go's ``filtered`` is its negation)
    passed: bool
    #: the expressions that failed and were skipped, in order (each names its source and error)
    errors: list[ScriptError] = field(default_factory=list)


@dataclass(slots=True, frozen=True)
class _Expression:
    source: str
    #: what of the event it reads (None: all of it), see synth.event_paths and synth.reads
    tree: Reads | None


@dataclass(slots=True, frozen=True)
class JsFilter:
    """A filter's expressions, syntax-checked; evaluate them with :meth:`evaluate`."""

    action: str
    expressions: tuple[_Expression, ...]
    limits: engine.Limits = field(default_factory=engine.Limits)
    when: TimeWindowWhen | None = None

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(e.source for e in self.expressions)

    def evaluate(
        self, event: Event | Mapping[str, Any] | FilterInput, now: float, libraries: engine.Libraries = ()
    ) -> JsVerdict:
        """Whether the event passes, by Sensu Go's rules (see the module's docstring). ``now`` (seconds)
        is what ``seconds_since`` counts from; ``libraries`` (of the filter's runtime assets) run
        first. Pass a :class:`FilterInput` (``filter_input(event)``) when several filters look at
        the same event: it is synthesized once."""
        if self.when is not None and in_windows(self.when, now) is (self.action == "deny"):
            return JsVerdict(passed=False)  # allow: outside every window; deny: inside one
        prepared = filter_input(event)
        verdict = JsVerdict(passed=True)
        # allow: the first false expression removes the event; deny: the first true one
        removes_when = self.action == "deny"
        for expression in self.expressions:
            try:
                holds = engine.run_filter(
                    expression.source, prepared.json(expression.tree), now, self.limits, libraries
                )
            except ScriptError as exc:
                verdict.errors.append(exc)
                continue
            if holds is removes_when:
                verdict.passed = False
                break
        return verdict


def compile_filter(
    expressions: list[str],
    path: str,
    action: str = "allow",
    limits: engine.Limits | None = None,
    when: TimeWindowWhen | None = None,
) -> JsFilter:
    """The expressions of an EventFilter, each checked to parse as a JavaScript program. ``path``
    locates the list (``spec.expressions``); a syntax error is a ValidationError at
    ``spec.expressions[i]`` with the JavaScript error."""
    if action not in ACTIONS:
        raise ValidationError(path.removesuffix("expressions") + "action", f"expected allow or deny, got {action!r}")
    compiled = []
    for i, source in enumerate(expressions):
        if not isinstance(source, str):
            raise ValidationError(f"{path}[{i}]", f"expected a JavaScript expression, got {source!r}")
        error = engine.syntax_error(source)
        if error:
            raise ValidationError(f"{path}[{i}]", f"invalid JavaScript {source!r}: {error}")
        paths = event_paths(source)
        compiled.append(_Expression(source, None if paths is None else reads(paths)))
    return JsFilter(action, tuple(compiled), limits or engine.Limits(), when)
