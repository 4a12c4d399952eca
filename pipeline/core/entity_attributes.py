"""Which entities a proxy check runs for: ``proxy_requests.entity_attributes``. Pure.

Sensu Go evaluates each expression as JavaScript over the entity (``entity.entity_class ==
'proxy'``, ``entity.labels.region === 'eu'``, ``entity.name.indexOf('sw') === 0``); an entity
matches when every expression is true. :func:`compile_entity_attributes` is the one place that
turns the expressions into an :data:`EntityMatcher`, run by the embedded engine
(:mod:`pipeline.core.js`, sandboxed, with a time and memory limit). An expression that does not
parse is refused when the check is loaded, naming it; one that fails on an entity (a property
read of ``undefined``, as ``entity.system.missing.x``) makes that entity not match (Sensu Go
skips it) and is reported through the :class:`EntityMatchError` it raises.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pipeline.core.js.engine import Limits, run_predicate, syntax_error
from pipeline.core.tokens import entity_scope
from pipeline.errors import ScriptError, ValidationError

#: An entity's Sensu JSON (as stored) -> whether the check runs for it. May raise EntityMatchError.
EntityMatcher = Callable[[Mapping[str, Any]], bool]
#: Per expression and entity: a proxy check's matching must not hold the scheduler up.
LIMITS = Limits(time=0.05)


class EntityMatchError(ValueError):
    """An expression failed on one entity (the message names the expression and the error)."""


def compile_entity_attributes(
    expressions: Sequence[str], path: str = "proxy_requests.entity_attributes"
) -> EntityMatcher:
    """The matcher of ``expressions`` (all must hold); a ValidationError names ``path[i]`` for an
    expression that is not a JavaScript program."""
    for i, text in enumerate(expressions):
        if not isinstance(text, str):
            raise ValidationError(f"{path}[{i}]", f"expected a string, got {type(text).__name__}")
        error = syntax_error(text)
        if error:
            raise ValidationError(f"{path}[{i}]", f"invalid JavaScript {text!r}: {error}")
    sources = list(expressions)

    def matches(entity: Mapping[str, Any]) -> bool:
        view = json.dumps(synthesize_entity(entity))
        for source in sources:
            try:
                if not run_predicate(source, "entity", view, LIMITS):
                    return False
            except ScriptError as exc:
                raise EntityMatchError(str(exc)) from None
        return True

    return matches


def synthesize_entity(entity: Mapping[str, Any]) -> dict[str, Any]:
    """The entity as expressions see it: its JSON with ``name``, ``namespace``, ``labels`` and
    ``annotations`` lifted from ``metadata`` to the top, as Sensu Go synthesizes it."""
    return entity_scope(entity)
