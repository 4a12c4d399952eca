"""Hooks assigned to and taken off a check as Sensu Go's ``AddCheckHook``/``RemoveCheckHook`` do."""

from __future__ import annotations

from pipeline.core.check_hooks import with_hooks, without_hook


def test_assigning_appends_only_new_names_to_an_existing_type_and_adds_a_new_type_at_the_end() -> None:
    hooks = [{"critical": ["ps"]}]
    assert with_hooks(hooks, "critical", ["ps", "lsof", "lsof"]) == [{"critical": ["ps", "lsof"]}]
    assert with_hooks(hooks, "1", ["dmesg"]) == [{"critical": ["ps"]}, {"1": ["dmesg"]}]
    assert hooks == [{"critical": ["ps"]}]  # the check's own list is not changed in place


def test_removing_the_last_name_of_a_type_removes_the_type_and_an_unknown_one_is_none() -> None:
    hooks = [{"critical": ["ps", "lsof"]}, {"warning": ["ps"]}]
    assert without_hook(hooks, "critical", "ps") == [{"critical": ["lsof"]}, {"warning": ["ps"]}]
    assert without_hook(hooks, "warning", "ps") == [{"critical": ["ps", "lsof"]}]
    assert without_hook(hooks, "warning", "lsof") is None
    assert without_hook(hooks, "unknown", "ps") is None
