"""Object metadata and references shared by every Sensu v2 object."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.errors import ValidationError
from pipeline.model.codec import field

DEFAULT_NAMESPACE = "default"

#: Sensu Go's name rule (core/v2 validators.go NameRegex).
NAME_PATTERN = re.compile(r"\A[\w.\-:]+\Z")


def validate_name(name: str, path: str) -> None:
    """Raise unless ``name`` is a valid Sensu resource name."""
    if not name:
        raise ValidationError(path, "name must not be empty")
    if not NAME_PATTERN.match(name):
        raise ValidationError(path, f"name {name!r} may contain only letters, digits, '_', '.', '-' and ':'")


@dataclass(slots=True)
class ObjectMeta:
    """``metadata``: name, namespace, labels, annotations, created_by."""

    name: str = field("", omitempty=True)
    namespace: str = field("", omitempty=True)
    labels: dict[str, str] = field({}, omitempty=True)
    annotations: dict[str, str] = field({}, omitempty=True)
    created_by: str = field("", omitempty=True)


@dataclass(slots=True)
class ResourceReference:
    """A reference to another resource, as in ``pipelines: [{name, type, api_version}]``."""

    name: str = field("")
    type: str = field("")
    api_version: str = field("")
