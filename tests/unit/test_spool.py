"""The agent's on-disk spool: order, removal on ack, a byte bound that drops the oldest, persistence."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.agent.spool import Spool


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    s = Spool(tmp_path / "spool.db", max_bytes=1000)
    s.open()
    return s


def test_events_come_back_in_order_and_go_on_ack(spool: Spool) -> None:
    spool.append([("a", b"1" * 10), ("b", b"2" * 10)])
    spool.append([("c", b"3" * 10)])
    rows = spool.after(0, 10)
    assert [(r.id, r.event) for r in rows] == [("a", b"1" * 10), ("b", b"2" * 10), ("c", b"3" * 10)]
    assert [r.id for r in spool.after(rows[0].seq, 10)] == ["b", "c"]
    assert [r.id for r in spool.after(0, 2)] == ["a", "b"]
    spool.remove(["a", "c", "unknown"])
    assert [r.id for r in spool.after(0, 10)] == ["b"]
    assert (spool.count, spool.bytes) == (1, 10)


def test_a_full_spool_drops_the_oldest_and_says_how_many(spool: Spool) -> None:
    assert spool.append([(f"e{i}", b"x" * 100) for i in range(10)]) == 0
    assert spool.append([("new1", b"y" * 100), ("new2", b"y" * 100)]) == 2
    ids = [r.id for r in spool.after(0, 100)]
    assert ids == [f"e{i}" for i in range(2, 10)] + ["new1", "new2"]
    assert spool.bytes == 1000


def test_what_was_spooled_is_there_after_reopening(tmp_path: Path) -> None:
    first = Spool(tmp_path / "spool.db", max_bytes=10_000)
    first.open()
    first.append([("a", b"aa"), ("b", b"bb")])
    first.remove(["a"])
    first.close()
    again = Spool(tmp_path / "spool.db", max_bytes=10_000)
    again.open()
    assert [(r.id, r.event) for r in again.after(0, 10)] == [("b", b"bb")]
    assert (again.count, again.bytes) == (1, 2)
    again.close()
