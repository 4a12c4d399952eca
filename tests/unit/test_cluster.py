"""Several backends: who is alive, and who owns each entity (rendezvous hashing)."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.cluster import LEASE, Heartbeat, entity_key, live_backends, owned, owner

KEYS = [entity_key("default", f"web{i}") for i in range(3000)]
names = st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=6, unique=True)


def test_a_backend_is_live_until_its_lease_runs_out() -> None:
    beats = [Heartbeat("a", 100.0), Heartbeat("b", 100.0 - LEASE), Heartbeat("c", 100.0 - LEASE - 0.5)]
    assert live_backends(beats, now=100.0) == ["a", "b"]
    assert live_backends(beats, now=100.0 + LEASE + 0.1) == []


def test_every_backend_computes_the_same_owner_whatever_the_order_of_its_list() -> None:
    assert all(owner(k, ["a", "b", "c"]) == owner(k, ["c", "a", "b"]) for k in KEYS[:200])
    assert owner("default/web1", []) is None


def test_entities_are_spread_evenly() -> None:
    counts = Counter(owner(key, ["backend-1", "backend-2", "backend-3"]) for key in KEYS)
    assert sum(counts.values()) == len(KEYS)
    assert all(abs(n - 1000) < 120 for n in counts.values()), counts


def test_when_a_backend_dies_only_its_entities_move_and_they_move_to_every_survivor() -> None:
    before, after = ["a", "b", "c"], ["a", "c"]
    changes = {k: (owner(k, before), owner(k, after)) for k in KEYS if owner(k, before) != owner(k, after)}
    assert {old for old, _ in changes.values()} == {"b"}
    assert set(changes) == {k for k in KEYS if owner(k, before) == "b"}
    assert Counter(new for _, new in changes.values()).keys() == {"a", "c"}


@given(names, st.text(max_size=20))
def test_exactly_one_live_backend_owns_each_key(backends: list[str], key: str) -> None:
    owners = [b for b in backends if key in owned([key], b, backends)]
    assert owners == [owner(key, backends)]


def test_a_backend_missing_from_the_list_it_read_still_owns_its_share() -> None:
    assert owned(KEYS, "b", ["a", "c"]) == owned(KEYS, "b", ["a", "b", "c"])
