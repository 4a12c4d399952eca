"""Which hooks run for a check result. Pure.

``check_hooks`` is a list of ``{type: [hook names]}``; a type is an exact exit code ("0" to
"255"), ``ok`` (0), ``warning`` (1), ``critical`` (2), ``unknown`` (any status above 2, as in
Sensu Go) or ``non-zero``. Matching lists run in the precedence Sensu Go documents (exact
code, then the named statuses, then ``non-zero``; Sensu Go's code runs them in config order
instead), and each hook runs at most once per result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pipeline.core.numbers import parse_int

_NAMED = {"ok": lambda s: s == 0, "warning": lambda s: s == 1, "critical": lambda s: s == 2, "unknown": lambda s: s > 2}


def _rank(hook_type: str, status: int) -> int | None:
    """Precedence of a matching type (lower runs first), or None when it does not match."""
    if (code := parse_int(hook_type, (0, 255))) is not None:
        return 0 if code == status else None
    if hook_type in _NAMED:
        return 1 if _NAMED[hook_type](status) else None
    if hook_type == "non-zero":
        return 2 if status != 0 else None
    return None


def select_hooks(check_hooks: Sequence[Mapping[str, Sequence[str]]], status: int) -> list[str]:
    """The hook names to run for ``status``, in order, without repeats."""
    matching = []
    for position, entry in enumerate(check_hooks):
        for hook_type, names in entry.items():
            rank = _rank(hook_type, status)
            if rank is not None:
                matching.append((rank, position, names))
    selected: list[str] = []
    for _, _, names in sorted(matching, key=lambda m: (m[0], m[1])):
        selected.extend(name for name in names if name not in selected)
    return selected
