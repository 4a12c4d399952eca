"""Assigning hooks to a check and taking them off, as Sensu Go's check hooks API does. Pure.

A check's ``check_hooks`` is a list of ``{type: [hook names]}``; adding to a type that is there
appends the names it does not have yet, adding a new type appends an entry, and removing the
last name of a type removes its entry."""

from __future__ import annotations

HookLists = list[dict[str, list[str]]]


def with_hooks(check_hooks: HookLists, hook_type: str, hooks: list[str]) -> HookLists:
    """``check_hooks`` with ``hooks`` assigned to ``hook_type``."""
    result = [{kind: list(names) for kind, names in entry.items()} for entry in check_hooks]
    for entry in result:
        if hook_type in entry:
            entry[hook_type] += [name for name in dict.fromkeys(hooks) if name not in entry[hook_type]]
            return result
    return [*result, {hook_type: list(dict.fromkeys(hooks))}]


def without_hook(check_hooks: HookLists, hook_type: str, hook: str) -> HookLists | None:
    """``check_hooks`` with ``hook`` no longer assigned to ``hook_type``; None if it was not."""
    result = [{kind: list(names) for kind, names in entry.items()} for entry in check_hooks]
    for i, entry in enumerate(result):
        if hook in entry.get(hook_type, []):
            entry[hook_type].remove(hook)
            if not entry[hook_type]:
                del entry[hook_type]
                if not entry:
                    del result[i]
            return result
    return None
