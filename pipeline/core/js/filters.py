"""Sensu Go's EventFilter expressions in JavaScript: compiled (syntax-checked) at load, evaluated
in the sandbox of :mod:`pipeline.core.js.engine`.

Sensu Go's semantics, matched here (sensu-go ``backend/pipeline/filter/legacy.go``,
``evaluateEventFilter``; ``js/js.go`` ``EvalPredicateWithVM``):

- each expression is run as a JavaScript *program* with ``event`` (the synthesized event, see
  :mod:`pipeline.core.js.synth`) and the filter functions as globals; its completion value is
  taken as a boolean by JavaScript truthiness (otto's ``Value.ToBoolean``): ``1``, ``"no"`` and
  ``{}`` are true, ``0``, ``""``, ``null`` and ``undefined`` false, and no result is an error;
- the expressions are evaluated in order and the first false one ends the evaluation: an
  ``allow`` filter then denies the event, a ``deny`` filter lets it through; the filter
  *matches* only when every expression evaluated held;
- an expression that throws (a TypeError on ``event.check.labels.x.y``, a ReferenceError), and
  here also one stopped at its time or memory limit, is logged by Sensu Go and **skipped**: it
  counts neither as true nor as false (``continue``). So an ``allow`` filter whose only expression
  fails lets every event through, and a ``deny`` filter whose only expression fails drops every
  event. :class:`JsVerdict` carries those errors for the caller's log line and counter;
- syntax errors are refused when the filter is loaded (``js.ParseExpressions``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.core.js import engine
from pipeline.core.js.synth import FilterInput, Reads, event_paths, filter_input, reads
from pipeline.errors import ScriptError, ValidationError
from pipeline.model import Event


@dataclass(slots=True)
class JsVerdict:
    """What a filter's expressions said about one event."""

    #: every expression that was evaluated held (failed ones skipped, as in Sensu Go)
    matched: bool
    #: the expressions that failed, in order (each names its source and the JavaScript error)
    errors: list[ScriptError] = field(default_factory=list)

    def filtered(self, action: str) -> bool:
        """Whether a filter with ``action`` (``allow`` or ``deny``) removes the event."""
        return not self.matched if action == "allow" else self.matched


@dataclass(slots=True, frozen=True)
class _Expression:
    source: str
    #: what of the event it reads (None: all of it), see synth.event_paths and synth.reads
    tree: Reads | None


@dataclass(slots=True, frozen=True)
class JsFilter:
    """A filter's expressions, syntax-checked; evaluate them with :meth:`evaluate`."""

    expressions: tuple[_Expression, ...]
    limits: engine.Limits = field(default_factory=engine.Limits)

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(e.source for e in self.expressions)

    def evaluate(self, event: Event | Mapping[str, Any] | FilterInput, now: float) -> JsVerdict:
        """Sensu Go's evaluation of the expressions (see the module's docstring). ``now`` (seconds)
        is what ``seconds_since`` counts from. Pass a :class:`FilterInput` (``filter_input(event)``)
        when several filters look at the same event: it is synthesized once."""
        prepared = filter_input(event)
        verdict = JsVerdict(matched=True)
        for expression in self.expressions:
            try:
                holds = engine.run_filter(expression.source, prepared.json(expression.tree), now, self.limits)
            except ScriptError as exc:
                verdict.errors.append(exc)
                continue
            if not holds:
                verdict.matched = False
                break
        return verdict


def compile_filter(expressions: list[str], path: str, limits: engine.Limits | None = None) -> JsFilter:
    """The expressions of an EventFilter, each checked to parse as a JavaScript program. ``path``
    locates the list (``spec.expressions``); a syntax error is a ValidationError at
    ``spec.expressions[i]`` with the JavaScript error."""
    compiled = []
    for i, source in enumerate(expressions):
        if not isinstance(source, str):
            raise ValidationError(f"{path}[{i}]", f"expected a JavaScript expression, got {source!r}")
        error = engine.syntax_error(source)
        if error:
            raise ValidationError(f"{path}[{i}]", f"invalid JavaScript {source!r}: {error}")
        paths = event_paths(source)
        compiled.append(_Expression(source, None if paths is None else reads(paths)))
    return JsFilter(tuple(compiled), limits or engine.Limits())
