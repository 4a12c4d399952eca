"""Sensu Go's token substitution, for the subset of Go templates Sensu documents. Pure.

``{{ .name }}``, ``{{ .labels.disk_warning | default "80" }}``, ``{{ .annotations.x }}``,
``{{ .system.hostname }}``, ``{{ .labels.x | default 1 }}``: a dotted path into the agent's
entity (lower-case keys, ``name``/``namespace``/``labels``/``annotations`` at the top, as
Sensu synthesizes it), optionally piped to ``default``. Nothing is ever executed: a token is
parsed and looked up, so a ``{{`` in check *output* can never be rendered, and a token
outside this grammar is an error rather than code. A token that resolves to nothing and has
no default is an error naming it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_TOKEN = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_EXPRESSION = re.compile(
    r"""\s*\.(?P<path>[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*)\s*
        (?:\|\s*default\s+(?:"(?P<dq>(?:[^"\\]|\\.)*)"|`(?P<bq>[^`]*)`|(?P<num>-?\d+(?:\.\d+)?))\s*)?\Z""",
    re.VERBOSE,
)


class TokenError(ValueError):
    """A token that cannot be substituted; the message names it."""


def entity_scope(entity: Mapping[str, Any]) -> dict[str, Any]:
    """The data tokens see: the entity's Sensu JSON with its metadata lifted to the top."""
    metadata = entity.get("metadata") or {}
    return {
        **entity,
        "name": metadata.get("name", ""),
        "namespace": metadata.get("namespace", ""),
        "labels": metadata.get("labels") or {},
        "annotations": metadata.get("annotations") or {},
    }


def _lookup(scope: Mapping[str, Any], path: str) -> Any:
    value: Any = scope
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _render(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def substitute(text: str, scope: Mapping[str, Any]) -> str:
    """``text`` with every token replaced; raises :class:`TokenError` on the first bad one."""
    if "{{" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        parsed = _EXPRESSION.match(match.group(1))
        if parsed is None:
            raise TokenError(f"unsupported token {match.group()!r}")
        value = _lookup(scope, parsed.group("path"))
        if value is not None and value != "":
            return _render(value)
        for default in ("dq", "bq", "num"):
            if parsed.group(default) is not None:
                text = parsed.group(default)
                return re.sub(r"\\(.)", r"\1", text) if default == "dq" else text
        if value == "":
            return ""  # present but empty: Go prints nothing, which is not an error
        raise TokenError(f"unmatched token {match.group()!r}")

    return _TOKEN.sub(replace, text)


def substitute_all(value: Any, scope: Mapping[str, Any], path: str = "") -> Any:
    """Every string inside ``value`` (dicts and lists too) substituted; errors name the field."""
    if isinstance(value, str):
        try:
            return substitute(value, scope)
        except TokenError as exc:
            raise TokenError(f"{path}: {exc}" if path else str(exc)) from None
    if isinstance(value, dict):
        return {k: substitute_all(v, scope, f"{path}.{k}" if path else k) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_all(v, scope, f"{path}[{i}]") for i, v in enumerate(value)]
    return value
