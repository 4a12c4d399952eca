"""Which hooks run for a status: Sensu Go's types, its documented precedence, each hook once."""

from __future__ import annotations

import pytest

from pipeline.core.hooks import select_hooks

CHECK_HOOKS = [
    {"non-zero": ["ps", "df"]},
    {"unknown": ["journal"]},
    {"critical": ["netstat", "ps"]},
    {"2": ["dmesg"]},
    {"ok": ["green"]},
    {"0": ["zero"]},
    {"1": ["warned"]},
    {"warning": ["warned", "yellow"]},
]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (0, ["zero", "green"]),
        (1, ["warned", "yellow", "ps", "df"]),
        (2, ["dmesg", "netstat", "ps", "df"]),
        (3, ["journal", "ps", "df"]),
        (127, ["journal", "ps", "df"]),
    ],
)
def test_types_precedence_and_no_repeats(status: int, expected: list[str]) -> None:
    assert select_hooks(CHECK_HOOKS, status) == expected


def test_nothing_matches() -> None:
    assert select_hooks([{"critical": ["x"]}], 0) == []
    assert select_hooks([], 2) == []
