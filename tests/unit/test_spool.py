"""The agent's on-disk spool: order, removal on ack, a byte bound that drops the oldest, persistence."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest

from pipeline.agent.spool import CHECKPOINT_BYTES, Spool
from pipeline.wire.limits import MAX_EVENT_BYTES


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


def event_bytes(entity: str, check: str, size: int = 0) -> bytes:
    event = {"entity": {"metadata": {"name": entity}}, "check": {"metadata": {"name": check}, "output": "x" * size}}
    return msgpack.packb(event, use_bin_type=True)


def test_a_frame_is_filled_by_bytes_and_a_too_large_event_is_named_for_setting_aside(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", max_bytes=64 * 1024 * 1024)
    spool.open()
    spool.append([(f"e{i}", b"x" * 900_000) for i in range(6)])
    spool.append([("huge", b"h" * (MAX_EVENT_BYTES + 1)), ("small", b"s")])
    first = spool.next_frame(0, 200)
    assert [r.id for r in first.rows] == ["e0", "e1", "e2", "e3"]
    second = spool.next_frame(first.last_seq, 200)
    assert [r.id for r in second.rows] == ["e4", "e5", "small"]
    assert second.too_large == [("huge", MAX_EVENT_BYTES + 1)]
    assert spool.next_frame(second.last_seq, 200).rows == []


def test_set_aside_events_leave_the_spool_and_are_listed_newest_first(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", max_bytes=10_000_000)
    spool.open()
    spool.append([("a", event_bytes("web1", "disk")), ("b", event_bytes("web1", "load")), ("c", b"\xc1")])
    moved, pruned = spool.set_aside([("a", "too_large", "too big"), ("c", "rejected", "bad")], now=100.0)
    assert [(m.id, m.entity, m.check, m.reason) for m in moved] == [
        ("a", "web1", "disk", "too_large"),
        ("c", "", "", "rejected"),  # not even msgpack: listed all the same
    ]
    assert pruned == 0
    assert [r.id for r in spool.after(0, 10)] == ["b"]
    assert spool.count == 1
    assert spool.bytes == len(event_bytes("web1", "load"))
    listed = spool.list_set_aside()
    assert [(r.id, r.error, r.at) for r in listed] == [("c", "bad", 100.0), ("a", "too big", 100.0)]
    assert listed[1].to_dict()["size"] == len(event_bytes("web1", "disk"))
    assert spool.set_aside_event("a") == event_bytes("web1", "disk")


def test_the_set_aside_list_is_bounded_oldest_dropped_first(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", max_bytes=10_000_000, set_aside_max_bytes=2500)
    spool.open()
    for i in range(4):
        spool.put_aside([(f"e{i}", "too_large", "", b"x" * 1000)], now=float(i))
    assert [r.id for r in spool.list_set_aside()] == ["e3", "e2"]
    _, pruned = spool.put_aside([("big", "too_large", "", b"x" * 5000)], now=9.0)
    assert pruned == 2
    assert [r.id for r in spool.list_set_aside()] == ["big"]  # the newest stays, whatever its size


def test_written_events_get_consecutive_seqs_that_go_on_after_reopening(tmp_path: Path) -> None:
    first = Spool(tmp_path / "spool.db", max_bytes=10_000)
    first.open()
    rows, dropped = first.write([("a", b"aa"), ("b", b"bbb")])
    assert ([(r.seq, r.id, r.event) for r in rows], dropped) == ([(1, "a", b"aa"), (2, "b", b"bbb")], 0)
    assert [(r.seq, r.id) for r in first.after(0, 10)] == [(1, "a"), (2, "b")]
    first.remove_seqs([2, 99])
    assert (first.count, first.bytes) == (1, 2)
    first.close()
    again = Spool(tmp_path / "spool.db", max_bytes=10_000)
    again.open()
    (row,), _ = again.write([("c", b"c")])
    assert row.seq == 3  # never a removed event's seq again
    assert [(r.seq, r.id) for r in again.after(0, 10)] == [(1, "a"), (3, "c")]
    again.close()


def test_checkpoints_keep_the_wal_near_its_bound(tmp_path: Path) -> None:
    """The spool's connection never checkpoints at a commit (wal_autocheckpoint=0): the agent
    calls checkpoint() when due, and the WAL starts over after each."""
    spool = Spool(tmp_path / "spool.db", max_bytes=256 * 1024 * 1024)
    spool.open()
    blob = b"x" * 4000
    checkpoints = 0
    for batch in range(1500):  # about 12 MB through the WAL, three times the bound
        spool.write([(f"e{batch}-{i}", blob) for i in range(4)])
        spool.remove([f"e{batch}-{i}" for i in range(4)])
        if spool.wants_checkpoint:
            spool.checkpoint()
            checkpoints += 1
    assert checkpoints >= 2
    assert (tmp_path / "spool.db-wal").stat().st_size < 2 * CHECKPOINT_BYTES
    spool.write([("last", b"kept")])
    spool.close()
    again = Spool(tmp_path / "spool.db", max_bytes=256 * 1024 * 1024)
    again.open()
    assert [(r.id, r.event) for r in again.after(0, 10)] == [("last", b"kept")]
    again.close()


def test_a_spool_in_memory_never_wants_a_checkpoint() -> None:
    spool = Spool(Path(":memory:"), max_bytes=256 * 1024 * 1024)
    spool.open()
    spool.write([("a", b"x" * (CHECKPOINT_BYTES + 1))])
    assert not spool.wants_checkpoint
    spool.checkpoint()  # nothing to do
    spool.close()
