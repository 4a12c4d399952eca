"""Several backends on one database, the pure part: which backends are alive, and which one
owns each entity.

Every backend heartbeats in the shared store (its name and the time of its last beat). A
backend whose last beat is older than the lease is taken for dead by the others, whatever it
thinks of itself. Each entity has one owner among the live backends, found by rendezvous
(highest random weight) hashing: every backend computes the same owner from the same list of
live backends without talking to the others, and when a backend dies only its own entities
move (each to the backend that scores next highest for it), evenly, while every other entity
stays where it was. The owner alone raises an entity's keepalive and ttl failures, so no
failure is raised twice; a dead backend's entities are taken over within one lease plus one
heartbeat, so none is missed for longer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: Seconds between two heartbeats of a backend.
HEARTBEAT_INTERVAL = 2.0
#: Seconds after its last heartbeat a backend is taken for dead (several missed beats: a busy
#: backend or a slow commit is not a dead one).
LEASE = 10.0


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A backend's row in the shared store."""

    backend: str
    #: wall-clock seconds of its last beat, as the database's clock gave it
    beat: float
    #: where it serves its API and agent transport (for operators: ``pipeline cluster``)
    api_url: str = ""
    transport: str = ""


#: An agent connected to a backend: (namespace, agent name, subscriptions).
Connection = tuple[str, str, Sequence[str]]


def live_backends(heartbeats: Iterable[Heartbeat], now: float, lease: float = LEASE) -> list[str]:
    """The names of the backends whose last beat is within ``lease`` of ``now``, sorted."""
    return sorted({h.backend for h in heartbeats if now - h.beat <= lease})


def _score(backend: str, key: str) -> int:
    """The weight of ``backend`` for ``key``: 64 bits of a hash of both, stable across processes
    and versions (Python's ``hash`` is salted per process, so it cannot be used)."""
    digest = hashlib.blake2b(f"{backend}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def entity_key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def owner(key: str, backends: Sequence[str]) -> str | None:
    """The backend that owns ``key`` among ``backends`` (None when there is none); ties, which a
    64-bit hash all but never makes, go to the smaller name."""
    if not backends:
        return None
    return max(sorted(backends), key=lambda b: _score(b, key))  # max keeps the first of equals


def owned(keys: Iterable[str], me: str, backends: Sequence[str]) -> set[str]:
    """Which of ``keys`` ``me`` owns among ``backends`` (``me`` counted live whatever the list
    says: a backend that cannot see its own beat still owns its share rather than none)."""
    live = sorted({*backends, me})
    return {key for key in keys if owner(key, live) == me}
