"""JSON merge patch as RFC 7396 defines it: its Appendix A, case by case."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.backend.api.writes import ignored_warning, merge_patch

APPENDIX_A: list[tuple[Any, Any, Any]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "result"), APPENDIX_A)
def test_rfc_7396_appendix_a(target: Any, patch: Any, result: Any) -> None:
    assert merge_patch(target, patch) == result


def test_the_warning_of_ignored_fields_is_a_header_whatever_the_names() -> None:
    """The names are the client's: any character, any length; the header must stay ASCII and short."""
    header = ignored_warning(['quo"te', "caf\u00e9", "\ud090", "x" * 500, *[f"f{i}" for i in range(12)]])["Warning"]
    header.encode("ascii")  # a header value the server can send
    assert header.startswith('299 - "unknown fields ignored: quo\\"te, caf\\u00e9, \\ud090, ' + "x" * 100 + ", f0,")
    assert header.endswith(' and 6 more"')
