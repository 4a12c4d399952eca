"""The mutator adapters that need no process: Sensu Go's built-ins and template mutators. Pure.

``json`` gives the event's JSON (the mutator of a handler that names none) and
``only_check_output`` its check output, as in Sensu Go. A ``template`` Mutator renders its
sandboxed Jinja2 template over the event's Sensu JSON (:mod:`pipeline.core.templates`).
"""

from __future__ import annotations

from collections.abc import Callable

from pipeline.core.stages import StageError, StageRef
from pipeline.core.templates import RenderError, Template, compile_template, render_data
from pipeline.model.forms import EventForms
from pipeline.model.pipeline import Mutator
from pipeline.model.resources import Resources


class BuiltinMutators:
    """``json`` and ``only_check_output``, by name in any namespace."""

    def can_mutate(self, ref: StageRef) -> bool:
        return ref.name in ("json", "only_check_output")

    async def mutate(self, ref: StageRef, forms: EventForms) -> bytes:
        if ref.name == "json":
            return forms.json
        check = forms.event.check
        if check is None:
            raise StageError("no_check", "only_check_output: the event has no check")
        return check.output.encode()


def mutator_of_kind(resources: Resources, ref: StageRef, kind: str) -> Mutator | None:
    """The Mutator ``ref`` names if it is of ``kind`` (each resource adapter takes one kind)."""
    mutator = resources.mutator(ref.name, ref.namespace)
    return mutator if mutator is not None and mutator.kind == kind else None


class TemplateMutators:
    """Mutator resources of ``type: template``, looked up in the current resources per event;
    each template is compiled once (again when its text changes)."""

    def __init__(self, resources: Callable[[], Resources]) -> None:
        self._resources = resources
        self._templates: dict[str, Template] = {}

    def _mutator(self, ref: StageRef) -> Mutator | None:
        return mutator_of_kind(self._resources(), ref, "template")

    def can_mutate(self, ref: StageRef) -> bool:
        return self._mutator(ref) is not None

    async def mutate(self, ref: StageRef, forms: EventForms) -> bytes:
        mutator = self._mutator(ref)
        if mutator is None:  # removed since can_mutate: as if it never existed
            raise StageError("missing", f"no Mutator {ref.name!r}")
        try:
            return render_data(self._template(mutator.metadata.name, mutator.template), forms.data).encode()
        except RenderError as exc:
            raise StageError("template", str(exc)) from None

    def _template(self, name: str, text: str) -> Template:
        """The compiled template of a mutator (the loader has checked its syntax)."""
        cached = self._templates.get(name)
        if cached is None or cached.source != text:
            cached = self._templates[name] = compile_template(text, f"Mutator {name}: spec.template")
        return cached
