"""Masking secrets: in an entity's labels and annotations, with Sensu Go's matching rules, and the
values of a command's ``secrets`` wherever its output shows them."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

from pipeline.model import Entity

#: Sensu Go's default ``redact`` list.
DEFAULT_REDACT = ("password", "passwd", "pass", "api_key", "api_token", "access_key", "secret_key", "private_key",
                  "secret")  # fmt: skip
REDACTED = "REDACTED"

_NOT_LETTER = re.compile(r"[^a-z]")
#: Secret values shorter than this are not masked in output: they cannot be told from ordinary text.
MIN_MASKED_VALUE = 4


def _normalise(key: str) -> str:
    # Sensu's FoundInArray: case-insensitive, and a key that is not purely alphanumeric is
    # compared with every character but a-z removed (so ``API-Key`` matches ``apikey``/``api_key``).
    key = key.lower()
    return key if key.isalnum() else _NOT_LETTER.sub("", key)


def is_redacted(key: str, redact: tuple[str, ...] | list[str]) -> bool:
    wanted = _normalise(key)
    return any(wanted == _normalise(item) for item in redact)


def redact_mapping(values: dict[str, str], redact: tuple[str, ...] | list[str]) -> dict[str, str]:
    return {k: REDACTED if is_redacted(k, redact) else v for k, v in values.items()}


def redacted_entity(entity: Entity) -> Entity:
    """``entity`` with every label and annotation named in its ``redact`` list masked."""
    redact = entity.redact or list(DEFAULT_REDACT)
    metadata = dataclasses.replace(
        entity.metadata,
        labels=redact_mapping(entity.metadata.labels, redact),
        annotations=redact_mapping(entity.metadata.annotations, redact),
    )
    return dataclasses.replace(entity, metadata=metadata)


def mask_values(text: str, values: Iterable[str]) -> str:
    """``text`` with every value of :data:`MIN_MASKED_VALUE` characters or more replaced by
    ``REDACTED`` (longest first, so that a value inside another is not left half shown)."""
    for value in sorted((v for v in values if len(v) >= MIN_MASKED_VALUE), key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text
