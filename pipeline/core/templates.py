"""Sandboxed Jinja2 templates rendered against an event, for handlers and mutators. Pure.

A template sees ``event`` as its Sensu v2 JSON: ``{{ event.check.output }}``,
``{{ event.entity.metadata.name }}``, ``{{ event.metrics.points | length }}``. A field that
does not exist renders empty (``default(...)`` supplies another value), and ``tojson`` writes
any value as JSON (a missing one as ``null``). Templates run in Jinja2's immutable sandbox:
no access to internal attributes, no calls that change the event. Event data is data: a
``{{`` inside check output is inserted as text and never rendered.

A template is compiled once, when the handler or mutator that owns it is built, so a syntax
error stops startup with the option's name; :func:`render` raises :class:`RenderError`, naming
the template, for what goes wrong at run time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import jinja2

from pipeline.core.template_limits import BoundedSandbox, bounded_render
from pipeline.errors import ValidationError
from pipeline.model import Event


class RenderError(Exception):
    """A template failed while rendering an event; the message names the template."""

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        super().__init__(f"{name}: {message}")


def _tojson(value: Any, indent: int | None = None) -> str:
    # Jinja2's own tojson escapes <, > and & for HTML, and fails on a missing field.
    if isinstance(value, jinja2.Undefined):
        value = None
    return json.dumps(value, indent=indent, ensure_ascii=False)


_ENVIRONMENT = BoundedSandbox(undefined=jinja2.ChainableUndefined, autoescape=False)
_ENVIRONMENT.filters["tojson"] = _tojson


@dataclass(frozen=True, slots=True)
class Template:
    """A compiled template; ``name`` is where it came from (an option name) for error messages."""

    name: str
    source: str
    compiled: jinja2.Template


def compile_template(text: str, name: str) -> Template:
    """Compile ``text``; a syntax error is a ValidationError at ``name``."""
    if not isinstance(text, str):
        raise ValidationError(name, f"expected a template string, got {text!r}")
    try:
        return Template(name, text, _ENVIRONMENT.from_string(text))
    except jinja2.TemplateSyntaxError as exc:
        raise ValidationError(name, f"template syntax error on line {exc.lineno}: {exc.message}") from None


def render(template: Template, event: Event) -> str:
    """``template`` rendered with ``event`` (its Sensu JSON) in scope."""
    return render_data(template, event.to_dict())


def render_data(template: Template, data: dict[str, Any]) -> str:
    """``template`` rendered with an event's Sensu JSON dict, already encoded, as ``event``
    (the immutable sandbox leaves the dict as it was: it may be shared)."""
    try:
        return bounded_render(template.compiled.generate(event=data))
    except Exception as exc:  # anything a template can raise: SecurityError, TypeError, ZeroDivisionError...
        raise RenderError(template.name, f"{type(exc).__name__}: {exc}") from exc
