"""Sensu Go's label and field selectors: the documentation's examples, Sensu's lexer quirks, errors."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.selectors import (
    PREFIXES,
    Operation,
    fields_of,
    labels_of,
    matches_document,
    parse_field_selector,
    parse_label_selector,
    supported_fields,
)
from pipeline.errors import SelectorError, ValidationError


def check(name: str, **spec: Any) -> dict[str, Any]:
    labels = spec.pop("labels", None)
    namespace = spec.pop("namespace", "default")
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels}, **spec}


LINUX_CHECK = check(
    "linux-cpu", subscriptions=["linux", "system"], handlers=["slack"], publish=False, labels={"type": "server"}
)
WINDOWS_CHECK = check("win-disk", subscriptions=["windows"], handlers=["email"], publish=True, namespace="production")


def field_matches(selector: str, kind: str, document: dict[str, Any]) -> bool:
    return parse_field_selector(selector, kind).matches(fields_of(kind, document))


def label_matches(selector: str, document: dict[str, Any]) -> bool:
    return parse_label_selector(selector).matches(labels_of(document))


# The examples of Sensu Go's API documentation, "Response filtering" (content/sensu-go/6.11/api/_index.md),
# verbatim after the documentation's 'fieldSelector=' or 'labelSelector=' prefix.
@pytest.mark.parametrize(
    ("selector", "linux", "windows"),
    [
        ("check.publish == true", False, True),  # "Filter operators" table
        ('check.namespace != "default"', False, True),  # table
        ("linux in check.subscriptions", True, False),  # table, "Set-based operators"
        ("slack notin check.handlers", False, True),  # table, "Set-based operators"
        ('check.name matches "linux-"', True, False),  # table
        ("check.publish == true && slack in check.handlers", False, False),  # table
        ('check.namespace != "production"', True, False),  # "Equality-based operators"
        ('check.name matches "linux"', True, False),  # "Substring matching operator"
        ("check.publish != true && linux in check.subscriptions", True, False),  # "Logical operator"
        ("check.publish != true && linux in check.subscriptions && dev in check.namespace", False, False),
        ("check.namespace in [dev,production]", False, True),  # "Use selectors with arrays of strings"
    ],
)
def test_documented_check_field_selectors(selector: str, linux: bool, windows: bool) -> None:
    assert field_matches(selector, "CheckConfig", LINUX_CHECK) is linux
    assert field_matches(selector, "CheckConfig", WINDOWS_CHECK) is windows


def test_documented_label_selectors() -> None:
    # "Equality-based operators" and "Combined selectors"
    assert label_matches('type == "server"', LINUX_CHECK)
    assert not label_matches('type == "server"', WINDOWS_CHECK)
    assert label_matches('type != "server"', WINDOWS_CHECK)
    # "Values with special characters" and "Substring matching operator" (region matches "us")
    entity = {"metadata": {"name": "web-1", "labels": {"region": "us-west-1"}}, "entity_class": "agent"}
    assert label_matches('region == "us-west-1"', entity)
    assert label_matches('region matches "us"', entity)
    assert not label_matches('region matches "eu"', entity)
    # "Quotation marks": 'labelSelector=host == $HOSTNAME' once the shell expanded it
    assert label_matches("host == web1", {"metadata": {"labels": {"host": "web1"}}})
    # "Values that ... include special characters": a hyphen needs the quotes, as in Sensu
    with pytest.raises(SelectorError, match="'-' in a name"):
        parse_label_selector("host == web-1")


ENTITY = {
    "metadata": {"name": "webserver-12", "namespace": "default", "labels": {"region": "us-east-1"}},
    "entity_class": "proxy",
    "subscriptions": ["linux", "entity:i-0c1f8a116b84ea50c"],
    "deregister": False,
}


def test_documented_entity_field_selectors() -> None:
    assert field_matches('entity.name matches "webserver-"', "Entity", ENTITY)  # "Substring matching operator"
    assert field_matches('"entity:i-0c1f8a116b84ea50c" in entity.subscriptions', "Entity", ENTITY)  # special chars
    assert field_matches("linux in entity.subscriptions", "Entity", ENTITY)  # "Filter ... by subscription"
    assert not field_matches('entity.name == "1b04994n"', "Entity", ENTITY)  # "Values that begin with a number"
    assert field_matches("entity.entity_class == proxy", "Entity", ENTITY)
    assert field_matches("entity.labels.region == 'us-east-1' && labels.region matches us", "Entity", ENTITY)


EVENT = {
    "metadata": {"namespace": "default"},
    "entity": {
        "metadata": {"name": "server", "labels": {"team": "ops"}},
        "entity_class": "agent",
        "subscriptions": ["linux"],
    },
    "check": {
        "metadata": {"name": "checkhttp", "labels": {"team": "web"}},
        "status": 2,
        "state": "failing",
        "handlers": ["slack"],
        "silenced": ["linux:checkhttp"],
    },
}


@pytest.mark.parametrize(
    "selector",
    [
        "checkhttp in event.check.name",  # "Filter events by entity or check"
        "server in event.entity.name",  # same section
        'event.check.status == "2"',  # "Filter events by severity"
        "linux in event.entity.subscriptions",  # "Filter checks, entities, or events by subscription"
        "event.is_silenced == true",  # "Filter silenced resources and silences"
        "event.check.is_silenced == true && event.check.state == failing && event.entity.entity_class == agent",
        "event.labels.team == web",  # the check's labels win over the entity's, as Sensu merges them
    ],
)
def test_documented_event_field_selectors(selector: str) -> None:
    assert field_matches(selector, "Event", EVENT)


def test_documented_silenced_field_selectors() -> None:
    silence = {
        "metadata": {"namespace": "default"},
        "subscription": "linux",
        "creator": "alice",
        "expire_on_resolve": True,
    }
    for selector in (
        'silenced.namespace == "default"',
        'silenced.creator == "alice"',
        'silenced.creator != "admin"',
        'silenced.subscription == "linux"',
        "linux in silenced.subscription",
        "silenced.expire_on_resolve == true",
        'silenced.name == "linux:*"',  # no name in the document: Sensu's subscription:check
    ):
        assert field_matches(selector, "Silenced", silence), selector
    assert not field_matches('silenced.namespace != "default"', "Silenced", silence)


def test_fields_of_renders_values_as_sensu_does() -> None:
    handler = {"metadata": {"name": "slack", "namespace": "default"}, "type": "pipe", "filters": ["is_incident"]}
    assert fields_of("Handler", handler) == {
        "handler.name": "slack",
        "handler.namespace": "default",
        "handler.filters": ["is_incident"],
        "handler.handlers": [],
        "handler.mutator": "",
        "handler.type": "pipe",
    }
    wrapped = {"type": "CheckConfig", "api_version": "core/v2", "metadata": {"name": "a"}, "spec": {"publish": True}}
    assert fields_of("CheckConfig", wrapped)["check.publish"] == "true"
    assert fields_of("Event", EVENT)["event.check.status"] == "2"
    assert set(fields_of("Namespace", {"name": "x", "metadata": {"name": "x"}})) == {"namespace.name"}
    for kind in PREFIXES:  # every field of the table is rendered, even from an empty document
        assert set(supported_fields(kind)) <= set(fields_of(kind, {}))


def test_matching_follows_sensu_for_missing_keys_and_lists() -> None:
    fields = {"a": "x", "subs": ["linux", "db"]}
    assert Operation("b", "!=", ("x",)).matches(fields)
    assert Operation("b", "notin", ("x", "y")).matches(fields)
    assert not Operation("b", "==", ("x",)).matches(fields)
    assert not Operation("b", "matches", ("x",)).matches(fields)
    assert Operation("subs", "==", ("linux,db",)).matches(fields)  # a list compares as its joined items
    assert Operation("db", "in", ("subs",)).matches(fields)
    assert Operation("a", "in", ("x", "y")).matches(fields)


def test_matches_document_combines_both_selectors() -> None:
    labels = parse_label_selector('type == "server"')
    fields = parse_field_selector("linux in check.subscriptions", "CheckConfig")
    assert matches_document("CheckConfig", LINUX_CHECK, labels=labels, fields=fields)
    assert not matches_document("CheckConfig", WINDOWS_CHECK, labels=labels, fields=fields)
    assert matches_document("CheckConfig", WINDOWS_CHECK)


@pytest.mark.parametrize(
    ("text", "operations"),
    [
        ("", ()),
        ("   ", ()),
        ("a == b", (("a", "==", ("b",)),)),
        ("a IN [b]", (("a", "in", ("b",)),)),  # words in any case
        ("a == TRUE", (("a", "==", ("true",)),)),
        ("a!= b", (("a", "!=", ("b",)),)),  # '!' ends a name in Sensu's lexer, '=' does not
        ("a in [b c,,'d e']", (("a", "in", ("b", "c", "d e")),)),  # commas are skipped
        ("a in []", (("a", "in", ()),)),
        ("a == 'x\" b == c", (("a", "==", ("x",)), ("b", "==", ("c",)))),  # either quote ends a string
        ("a == b c == d", (("a", "==", ("b",)), ("c", "==", ("d",)))),  # Sensu needs no '&&' between
        ("a == matches", (("a", "==", ("matches",)),)),
        ("k8s.io/app == web_1", (("k8s.io/app", "==", ("web_1",)),)),
        ("région == été", (("région", "==", ("été",)),)),
        ("check. name == a", (("check.name", "==", ("a",)),)),  # Sensu's lexer skips blanks after a dot
    ],
)
def test_grammar_as_sensus_parser(text: str, operations: tuple[tuple[str, str, tuple[str, ...]], ...]) -> None:
    parsed = parse_label_selector(text).operations
    assert tuple((op.key, op.operator, op.values) for op in parsed) == operations


@pytest.mark.parametrize(
    ("text", "position", "words"),
    [
        ("a==b", 1, "'='"),  # the blanks around an operator are required
        ("a = b", 2, "'=='"),
        ("a & b", 2, "'&&'"),
        ("&& a == b", 0, "'&&' before"),
        ("a == b &&", 9, "after '&&'"),
        ("a == b && == c", 10, "after '&&'"),
        ("a b", 2, "expected ==, !=, in, notin or matches, got 'b'"),
        ("a ==", 4, "expected a value"),
        ("a == [b]", 5, "expected a value"),
        ("a in 'b'", 5, "expected '['"),
        ("a in [b", 7, "got the end"),
        ("a in [b == c]", 8, "got '=='"),
        ("a == 'b", 5, "unterminated"),
        ("a == 1b", 5, "unexpected character '1'"),
        ("a.1 == b", 2, "after '.'"),
        ("a. == b", 3, "after '.'"),
        ("a == b.", 7, "ends with '.'"),
        ("a-b == c", 1, "'-' in a name"),
        ("in == b", 0, "expected a label or field name, got 'in'"),
        ("true == b", 0, "got 'true'"),
        ("a == b ]", 7, "got ']'"),
        ("a in[b]", 2, "got 'in' (a blank must follow it)"),  # Sensu's lexer reads 'in[' as a name
        ("a == b\x00", 6, "unexpected character '\\x00'"),
    ],
)
def test_malformed_selectors_name_the_position(text: str, position: int, words: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_label_selector(text)
    assert isinstance(caught.value, ValidationError)
    assert caught.value.path == "labelSelector"
    assert caught.value.position == position
    assert caught.value.selector == text
    assert words in str(caught.value)
    assert f"at position {position} of {text!r}" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "position", "words"),
    [
        ("check.nmae == a", 0, "'check.nmae' is not a field of CheckConfig (check.name, check.namespace,"),
        ("linux in check.subscription", 0, "neither 'linux' nor 'check.subscription'"),
        ("check.name == b && entity.name == x", 19, "'entity.name' is not a field of CheckConfig"),
        ("event.check.output == x", 0, "not a field of Event"),
        ("namespace.labels.a == x", 0, "not a field of Namespace"),
    ],
)
def test_unknown_fields_are_refused(text: str, position: int, words: str) -> None:
    kind = text.split(".")[0]
    kind = {"namespace": "Namespace", "event": "Event"}.get(kind, "CheckConfig")
    with pytest.raises(SelectorError) as caught:
        parse_field_selector(text, kind)
    assert caught.value.path == "fieldSelector"
    assert caught.value.position == position
    assert words in str(caught.value)


def test_labels_alias_resolves_to_the_kinds_label_field() -> None:
    (operation,) = parse_field_selector("labels.region == x", "Entity").operations
    assert operation.key == "entity.labels.region"
    (operation,) = parse_field_selector("web in labels.roles", "HookConfig").operations
    assert operation.values == ("hook.labels.roles",)


def test_long_hostile_selector_is_shown_bounded() -> None:
    with pytest.raises(SelectorError) as caught:
        parse_label_selector("a == " + "b" * 10_000 + " ==")
    assert len(str(caught.value)) < 600


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="Secret"):
        parse_field_selector("a == b", "Secret")


SELECTOR_ALPHABET = st.sampled_from(
    ["a", "b.c", "labels.x", "check.name", " ", "==", "!=", "=", "!", "&", "&&", "in", "notin", "matches", "true",
     "[", "]", ",", "'", '"', ".", "1", "_", "/", "-", "\x00", "é", "\u2028", "\u00a0", "²"]
)  # fmt: skip


@given(st.one_of(st.text(max_size=60), st.lists(SELECTOR_ALPHABET, max_size=20).map("".join)))
def test_parsing_raises_only_selector_errors_and_matching_never_raises(text: str) -> None:
    for parse in (parse_label_selector, lambda t: parse_field_selector(t, "CheckConfig")):
        try:
            selector = parse(text)
        except SelectorError as error:
            position = error.position
            assert 0 <= position <= len(text)
            continue
        selector.matches(fields_of("CheckConfig", LINUX_CHECK))
        selector.matches({})
        selector.matches({"a": ["x", "y"], "b.c": "z", "check.name": ""})
