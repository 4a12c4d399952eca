"""Which names a resource gives to other resources, and what follows from them. Pure.

A name that points at nothing (a check's handler not defined yet) is a *dangling reference*:
resources arrive in any order, as in Sensu Go, so it is a warning at load and through the API,
and at event time the missing handler, filter or mutator is logged and counted. What is still
named cannot be deleted: :func:`referrers` says who names it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pipeline.model.check import CheckConfig, HookConfig
from pipeline.model.meta import DEFAULT_NAMESPACE
from pipeline.model.pipeline import BUILTIN_FILTERS, BUILTIN_MUTATORS, EventFilter, Mutator, Pipeline
from pipeline.model.resources import Handler, ReferenceError, Resources

#: How a kind is called in a sentence (sensuctl's words).
WORDS = {"CheckConfig": "check", "HookConfig": "hook", "Handler": "handler", "EventFilter": "filter",
         "Mutator": "mutator", "Pipeline": "pipeline", "Silenced": "silence", "Namespace": "namespace",
         "Asset": "asset"}  # fmt: skip


@dataclass(slots=True, frozen=True)
class Name:
    """One name a resource gives: the kind it names, the name, where (``spec.handlers[0]``) and
    the field it sits in (``handlers``), as said in an error."""

    kind: str
    name: str
    path: str
    field: str


def names_in(resource: Any) -> Iterator[Name]:
    """Every name ``resource`` gives to another resource (built-in filters and mutators aside)."""
    if isinstance(resource, CheckConfig):
        yield from _check_names(resource)
    elif isinstance(resource, Handler):
        yield from _handler_names(resource)
    elif isinstance(resource, Pipeline):
        yield from _pipeline_names(resource)
    if isinstance(resource, (CheckConfig, HookConfig, Handler, Mutator, EventFilter)):
        for i, asset in enumerate(resource.runtime_assets):
            yield Name("Asset", asset, f"spec.runtime_assets[{i}]", "runtime_assets")


def _check_names(check: CheckConfig) -> Iterator[Name]:
    for i, handler in enumerate(check.handlers):
        yield Name("Handler", handler, f"spec.handlers[{i}]", "handlers")
    for i, handler in enumerate(check.output_metric_handlers):
        yield Name("Handler", handler, f"spec.output_metric_handlers[{i}]", "output_metric_handlers")
    for i, entry in enumerate(check.check_hooks):
        for status, hooks in entry.items():
            for j, hook in enumerate(hooks):
                yield Name("HookConfig", hook, f"spec.check_hooks[{i}].{status}[{j}]", "check_hooks")
    for i, ref in enumerate(check.pipelines):
        yield Name("Pipeline", ref.name, f"spec.pipelines[{i}]", "pipelines")


def _handler_names(handler: Handler) -> Iterator[Name]:
    for i, name in enumerate(handler.filters):
        if name not in BUILTIN_FILTERS:
            yield Name("EventFilter", name, f"spec.filters[{i}]", "filters")
    if handler.mutator and handler.mutator not in BUILTIN_MUTATORS:
        yield Name("Mutator", handler.mutator, "spec.mutator", "mutator")
    if handler.type == "set":
        for i, member in enumerate(handler.handlers):
            yield Name("Handler", member, f"spec.handlers[{i}]", "handlers")


def _pipeline_names(pipeline: Pipeline) -> Iterator[Name]:
    for i, workflow in enumerate(pipeline.workflows):
        at = f"spec.workflows[{i}]"
        for j, ref in enumerate(workflow.filters):
            if ref.name not in BUILTIN_FILTERS:
                yield Name("EventFilter", ref.name, f"{at}.filters[{j}]", f"workflows[{i}].filters")
        if workflow.mutator and workflow.mutator.name and workflow.mutator.name not in BUILTIN_MUTATORS:
            yield Name("Mutator", workflow.mutator.name, f"{at}.mutator", f"workflows[{i}].mutator")
        if workflow.handler and workflow.handler.name:
            yield Name("Handler", workflow.handler.name, f"{at}.handler", f"workflows[{i}].handler")


def _namespace(resource: Any) -> str:
    return resource.metadata.namespace or DEFAULT_NAMESPACE


def _naming(resources: Resources) -> Iterator[tuple[str, Any]]:
    for kind, items in (("CheckConfig", resources.checks), ("HookConfig", resources.hooks),
                        ("Handler", resources.handlers), ("Mutator", resources.mutators),
                        ("Pipeline", resources.pipelines), ("EventFilter", resources.filters)):  # fmt: skip
        for item in items:
            yield kind, item


def dangling_references(resources: Resources) -> list[ReferenceError]:
    """Every name that points at no resource of its namespace, in the order of the resources."""
    defined = {(kind, _namespace(r), r.metadata.name) for kind, items in _named_kinds(resources) for r in items}
    found = []
    for kind, resource in _naming(resources):
        namespace = _namespace(resource)
        for name in names_in(resource):
            if (name.kind, namespace, name.name) not in defined:
                found.append(ReferenceError(kind, namespace, resource.metadata.name, name.path,
                                            f"no {name.kind} {name.name!r}"))  # fmt: skip
        found.extend(_unknown_secrets(kind, resource, resources))
    return found


def _unknown_secrets(kind: str, resource: Any, resources: Resources) -> Iterator[ReferenceError]:
    """``secrets`` entries naming no Secret resource: without a declared Env provider (whose
    variables a secret may also name) they fail every run, so ``pipeline validate`` says so."""
    if resources.secrets_providers:
        return
    namespace = _namespace(resource)
    known = {s.metadata.name for s in resources.secrets if _namespace(s) == namespace}
    for i, ref in enumerate(getattr(resource, "secrets", [])):
        if ref.secret not in known:
            yield ReferenceError(kind, namespace, resource.metadata.name, f"spec.secrets[{i}].secret",
                                 f"no Secret {ref.secret!r} (nor an Env provider declared to read a variable of "
                                 "that name): the command fails until one exists")  # fmt: skip


def _named_kinds(resources: Resources) -> list[tuple[str, list[Any]]]:
    return [("Handler", resources.handlers), ("HookConfig", resources.hooks), ("EventFilter", resources.filters),
            ("Mutator", resources.mutators), ("Pipeline", resources.pipelines),
            ("Asset", resources.assets)]  # fmt: skip


def referrers(resources: Resources, kind: str, namespace: str, name: str) -> list[str]:
    """Who names the resource, each as ``check 'check-cpu' (handlers)``; for a namespace, the
    resources it holds."""
    if kind == "Namespace":
        return [f"{WORDS[k]} {r.metadata.name!r}" for k, items in _all(resources) for r in items
                if k != "Namespace" and _namespace(r) == name]  # fmt: skip
    found = []
    for referrer_kind, resource in _naming(resources):
        if _namespace(resource) != namespace:
            continue
        fields = sorted({n.field for n in names_in(resource) if n.kind == kind and n.name == name})
        if fields and not (referrer_kind == kind and resource.metadata.name == name):
            found.append(f"{WORDS[referrer_kind]} {resource.metadata.name!r} ({', '.join(fields)})")
    return found


def _all(resources: Resources) -> list[tuple[str, list[Any]]]:
    return [("CheckConfig", resources.checks), *_named_kinds(resources), ("Silenced", resources.silences),
            ("Namespace", resources.namespaces)]  # fmt: skip
