"""Asset filters: which build of an asset applies to a host. Pure.

Sensu Go's asset filters are JavaScript expressions over the entity (``entity.system.os ==
'linux'``, ``entity.system.arch === 'amd64' && entity.system.platform_family == 'debian'``),
run here by the embedded engine (:mod:`pipeline.core.js`, sandboxed, with a time and memory
limit); a build applies when every one of its filters is true. A filter that does not parse is
refused at load naming it; one that fails on the host (a property read of ``undefined``) is an
:class:`AssetFilterError`, which the asset cache reports naming the asset.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.core.js.engine import Limits, run_predicate, syntax_error
from pipeline.errors import ScriptError

MAX_FILTER_LENGTH = 1000
LIMITS = Limits(time=0.05)


class AssetFilterError(ValueError):
    """A filter that does not parse, or failed on the entity (``reason`` says which and why)."""

    def __init__(self, text: str, reason: str) -> None:
        self.text, self.reason = text, reason
        super().__init__(f"{reason}: {text[:200]!r}")


@dataclass(slots=True, frozen=True)
class CompiledAssetFilter:
    """A filter that parses as JavaScript; call it with the synthesized entity."""

    text: str

    def __call__(self, entity: Mapping[str, Any]) -> bool:
        try:
            return run_predicate(self.text, "entity", json.dumps(entity), LIMITS)
        except ScriptError as exc:
            raise AssetFilterError(self.text, exc.message) from None


def compile_asset_filter(text: str) -> CompiledAssetFilter:
    """Check one filter (raises AssetFilterError when it is not a JavaScript program)."""
    if len(text) > MAX_FILTER_LENGTH:
        raise AssetFilterError(text, f"longer than {MAX_FILTER_LENGTH} characters")
    error = syntax_error(text)
    if error:
        raise AssetFilterError(text, f"invalid JavaScript: {error}")
    return CompiledAssetFilter(text)


def synthesize(entity: Mapping[str, Any]) -> dict[str, Any]:
    """The entity as Sensu Go's filters see it: its JSON with the metadata fields at the top."""
    metadata = entity.get("metadata", {})
    return {**entity, **{k: metadata.get(k) for k in ("name", "namespace", "labels", "annotations")}}


def matches(filters: list[str], entity: Mapping[str, Any]) -> bool:
    """Whether every filter is true of ``entity`` (the JSON of an Entity); no filters: true."""
    synthesized = synthesize(entity)
    return all(compile_asset_filter(text)(synthesized) for text in filters)
