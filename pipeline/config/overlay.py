"""The resources a backend runs with: those of the config directory, changed through the API.

Pure. A change is (kind, namespace, name, resource), the resource None for a deletion; it
replaces whatever the directory defines under that name, and survives restarts (the backend
keeps the changes in its store), so the API's word is the last.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pipeline.model import DEFAULT_NAMESPACE
from pipeline.model.resources import RESOURCE_TYPES, Resources

KIND_OF: dict[type[Any], str] = {cls: name for name, cls in RESOURCE_TYPES.items()}

Change = tuple[str, str, str, Any]


def key_of(resource: Any) -> tuple[str, str, str]:
    """(kind, namespace, name); a Namespace belongs to none (its namespace is empty)."""
    kind = KIND_OF[type(resource)]
    namespace = "" if kind == "Namespace" else resource.metadata.namespace or DEFAULT_NAMESPACE
    return (kind, namespace, resource.metadata.name)


def all_resources(resources: Resources) -> list[Any]:
    return [*resources.checks, *resources.hooks, *resources.handlers, *resources.filters, *resources.mutators,
            *resources.pipelines, *resources.silences, *resources.namespaces, *resources.assets]  # fmt: skip


def overlay(base: Resources, changes: Iterable[Change]) -> Resources:
    changed = {(kind, namespace, name): resource for kind, namespace, name, resource in changes}
    # entities go to the store, not through the API's changes; secrets kinds come from files only
    result = Resources(entities=list(base.entities), secrets_providers=list(base.secrets_providers),
                       secrets=list(base.secrets))  # fmt: skip
    for resource in all_resources(base):
        if key_of(resource) not in changed:
            result.add(resource)
    for resource in changed.values():
        if resource is not None:
            result.add(resource)
    return result
