"""What a reload changes: the resources added, changed and removed between two sets. Pure."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from pipeline.config.overlay import all_resources, key_of
from pipeline.model.codec import encode
from pipeline.model.resources import Resources


@dataclass(slots=True)
class ResourceDiff:
    """Each entry reads ``Kind namespace/name``."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)


def label(key: tuple[str, str, str]) -> str:
    kind, namespace, name = key
    return f"{kind} {namespace}/{name}"


def _documents(resources: Resources) -> dict[tuple[str, str, str], str]:
    return {key_of(r): json.dumps(encode(r), sort_keys=True) for r in all_resources(resources)}


def diff(old: Resources, new: Resources) -> ResourceDiff:
    before, after = _documents(old), _documents(new)
    return ResourceDiff(
        added=[label(k) for k in sorted(after.keys() - before.keys())],
        changed=[label(k) for k in sorted(after.keys() & before.keys()) if after[k] != before[k]],
        removed=[label(k) for k in sorted(before.keys() - after.keys())],
    )
