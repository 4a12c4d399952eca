"""An API key created through the API; only its SHA-256 digest is kept."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class StoredKey:
    id: str
    name: str
    role: str
    digest: str
    created: int
