"""Object metadata and references shared by every Sensu v2 object."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.errors import ValidationError
from pipeline.model.codec import field

DEFAULT_NAMESPACE = "default"

#: Sensu Go's name rule (core/v2 validators.go NameRegex). ASCII: Go's ``\w`` is
#: ``[0-9A-Za-z_]``, Python's takes any letter or digit (``héllo``, ``٣``), which Sensu refuses.
NAME_PATTERN = re.compile(r"\A[\w.\-:]+\Z", re.ASCII)


#: Names lately found valid: every event names its entity, check and namespace, mostly the same
#: few again (the pattern's match was 1.5 % of the backend's CPU in the events bench). Bounded,
#: since names come from outside: emptied when full, and a name longer than a hostname is not
#: kept (4,096 names of a megabyte each would be 4 GiB).
_VALID_NAMES: set[str] = set()
VALID_NAMES_KEPT = 4096
VALID_NAME_KEPT_LENGTH = 255


def validate_name(name: str, path: str) -> None:
    """Raise unless ``name`` is a valid Sensu resource name."""
    if name in _VALID_NAMES:
        return
    if not name:
        raise ValidationError(path, "name must not be empty")
    if not NAME_PATTERN.match(name):
        raise ValidationError(path, f"name {name!r} may contain only ASCII letters, digits, '_', '.', '-' and ':'")
    if len(name) <= VALID_NAME_KEPT_LENGTH:
        if len(_VALID_NAMES) >= VALID_NAMES_KEPT:
            _VALID_NAMES.clear()
        _VALID_NAMES.add(name)


#: The refusal of a field pipeline accepts in Sensu's shape but does not act on.
NOT_SUPPORTED = "not supported by pipeline (yet)"


def refuse_unsupported(resource: object, names: tuple[str, ...], path: str) -> None:
    """Raise ValidationError for the first of ``names`` that ``resource`` sets to anything but
    its empty default: a Sensu dump's ``false``, ``[]`` and ``null`` load, a real value that
    pipeline would ignore is refused, naming the field."""
    for name in names:
        if getattr(resource, name):
            raise ValidationError(f"{path}.{name}" if path else name, NOT_SUPPORTED)


def refuse_other_reference(ref: ResourceReference, kind: str, path: str) -> None:
    """A reference may name only a core/v2 ``kind`` (empty type and version read as those):
    pipeline has no other kind to look up (Sensu's ``SumoLogicMetricsHandler`` and the like)."""
    if ref.type not in ("", kind):
        raise ValidationError(f"{path}.type", f"expected {kind!r}, got {ref.type!r}: other kinds are {NOT_SUPPORTED}")
    if ref.api_version not in ("", "core/v2"):
        raise ValidationError(f"{path}.api_version", f"expected 'core/v2', got {ref.api_version!r}: {NOT_SUPPORTED}")


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
