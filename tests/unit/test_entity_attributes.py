"""proxy_requests.entity_attributes: JavaScript over the entity, as Sensu Go evaluates it (the
embedded engine); what does not parse is refused at load naming the expression."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.core.entity_attributes import EntityMatchError, compile_entity_attributes
from pipeline.errors import ValidationError

SWITCH = {
    "metadata": {
        "name": "switch1",
        "namespace": "default",
        "labels": {"region": "eu", "app-tier": "edge", "port": "8080"},
    },
    "entity_class": "proxy",
    "subscriptions": ["net", "edge"],
    "system": {"hostname": "switch1", "arch": "amd64"},
    "deregister": False,
    "last_seen": 0,
}


def matches(*expressions: str, entity: dict[str, Any] = SWITCH) -> bool:
    return compile_entity_attributes(list(expressions))(entity)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("entity.entity_class == 'proxy'", True),
        ('entity.entity_class === "proxy"', True),
        ("entity.entity_class != 'proxy'", False),
        ("entity.entity_class !== 'agent'", True),
        ("entity.name == 'switch1'", True),
        ("entity.metadata.name == 'switch1'", True),
        ("entity.labels.region == 'eu'", True),
        ("entity.labels['app-tier'] == 'edge'", True),
        ("entity.system.hostname === 'switch1'", True),
        ("entity.labels.missing == 'eu'", False),  # undefined == 'eu'
        ("entity.labels.missing != 'eu'", True),
        ("entity.labels.missing == null", True),  # undefined == null
        ("entity.labels.missing === null", False),
        ("entity.labels.port == 8080", True),  # '8080' == 8080: ToNumber
        ("entity.labels.port === 8080", False),
        ("entity.last_seen == 0", True),
        ("entity.last_seen == false", True),  # false -> 0
        ("entity.last_seen === false", False),
        ("entity.deregister == false", True),
        ("entity.deregister == 0", True),
        ("entity.deregister == ''", True),  # false -> 0, '' -> 0
        ("entity.subscriptions == 'net,edge'", True),  # arrays compare as their joined string
        ("entity.subscriptions.length == 2", True),
        ("entity.subscriptions[0] == 'net'", True),
        ("entity.subscriptions[5] == null", True),
        ("entity.system == '[object Object]'", True),
    ],
)
def test_javascript_semantics(expression: str, expected: bool) -> None:
    assert matches(expression) is expected


def test_every_expression_must_hold() -> None:
    assert matches("entity.entity_class == 'proxy'", "entity.labels.region == 'eu'")
    assert not matches("entity.entity_class == 'proxy'", "entity.labels.region == 'us'")
    assert matches()  # no expressions: every entity, as Sensu Go


def test_strings_that_are_numbers_in_javascript() -> None:
    entity = {**SWITCH, "metadata": {"name": "x", "labels": {"a": " 0x10 ", "b": "1e3", "c": "", "d": "12abc"}}}
    assert matches("entity.labels.a == 16", entity=entity)
    assert matches("entity.labels.b == 1000", entity=entity)
    assert matches("entity.labels.c == 0", entity=entity)
    assert not matches("entity.labels.d == 12", entity=entity)  # NaN equals nothing
    assert matches("entity.labels.d != 12", entity=entity)


def test_reading_a_property_of_undefined_fails_on_that_entity() -> None:
    with pytest.raises(EntityMatchError, match="cannot read property 'x' of undefined"):
        matches("entity.system.missing.x == 'a'")


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("entity.entity_class == 'proxy' && entity.labels.region == 'eu'", True),
        ("entity.labels.region.indexOf('e') === 0", True),
        ("'proxy' == entity.entity_class", True),
        ("entity.subscriptions.indexOf('edge') >= 0", True),
        ("entity.last_seen > 5", False),
        ("/^switch\\d+$/.test(entity.name)", True),
    ],
)
def test_any_javascript_is_evaluated_as_sensu_go_does(expression: str, expected: bool) -> None:
    assert matches(expression) is expected


def test_what_does_not_parse_is_refused_naming_it() -> None:
    with pytest.raises(ValidationError) as refused:
        compile_entity_attributes(["entity.name == 'a'", "entity.name =="], "spec.proxy_requests.entity_attributes")
    assert str(refused.value).startswith("spec.proxy_requests.entity_attributes[1]: invalid JavaScript")
