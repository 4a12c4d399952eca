"""The agent's on-disk spool: order, removal on ack, a byte bound that drops the oldest, persistence."""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.agent.spool import Spool
from pipeline.agent.spool_log import SEGMENT_BYTES
from pipeline.errors import StoreError
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
    spool.remove_seqs([rows[0].seq, rows[2].seq, 99])
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
    rows, _ = first.write([("a", b"aa"), ("b", b"bb")])
    first.remove_seqs([rows[0].seq])
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
    assert second.too_large == [(7, MAX_EVENT_BYTES + 1)]
    assert spool.next_frame(second.last_seq, 200).rows == []


def test_set_aside_events_leave_the_spool_and_are_listed_newest_first(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", max_bytes=10_000_000)
    spool.open()
    a, _, c = spool.write([("a", event_bytes("web1", "disk")), ("b", event_bytes("web1", "load")), ("c", b"\xc1")])[0]
    moved, pruned = spool.set_aside([(a.seq, "too_large", "too big"), (c.seq, "rejected", "bad"), (99, "x", "")], 100.0)
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


def test_acknowledged_segments_are_deleted_and_queued_ones_synced_when_full(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", max_bytes=256 * 1024 * 1024)
    spool.open()
    blob = b"x" * 4000

    def on_disk() -> int:
        return sum(path.stat().st_size for path in (tmp_path / "spool").iterdir())

    for batch in range(1500):  # about 24 MB through the log, six segments' worth, all acknowledged
        rows, _ = spool.write([(f"e{batch}-{i}", blob) for i in range(4)])
        spool.remove_seqs([row.seq for row in rows])
        assert not spool.wants_sync  # a segment gone before it is full: nothing to sync
    assert on_disk() < SEGMENT_BYTES
    syncs = 0
    for batch in range(600):  # the backend away: 9.6 MB stay queued
        spool.write([(f"q{batch}-{i}", blob) for i in range(4)])
        if spool.wants_sync:
            spool.sync()
            syncs += 1
    assert syncs >= 2
    # Beyond the queued events: at most the dead rest of the oldest segment they share.
    assert 9_600_000 < on_disk() < 9_600_000 + SEGMENT_BYTES + 100_000
    spool.close()
    again = Spool(tmp_path / "spool.db", max_bytes=256 * 1024 * 1024)
    again.open()
    assert again.count == 2400
    assert [r.id for r in again.after(0, 2)] == ["q0-0", "q0-1"]
    again.close()


def segments(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "spool").glob("*.seg"))


def test_a_write_cut_short_by_a_kill_is_cut_off_at_the_next_start(tmp_path: Path) -> None:
    """The agent killed in the middle of a write: that write was never answered, and nothing
    before it is lost."""
    first = Spool(tmp_path / "spool.db", max_bytes=10_000)
    first.open()
    first.write([("a", b"aa")])
    first.write([("b", b"bb"), ("c", b"cc")])
    first.close()
    (newest,) = segments(tmp_path)
    whole = newest.stat().st_size
    with newest.open("r+b") as f:
        f.truncate(whole - 3)  # into c's record
    again = Spool(tmp_path / "spool.db", max_bytes=10_000)
    again.open()
    assert [(r.id, r.event) for r in again.after(0, 10)] == [("a", b"aa"), ("b", b"bb")]
    (row,), _ = again.write([("d", b"dd")])  # appended after b, not after the cut record
    assert row.seq == 3
    again.close()
    last = Spool(tmp_path / "spool.db", max_bytes=10_000)
    last.open()
    assert [(r.seq, r.id) for r in last.after(0, 10)] == [(1, "a"), (2, "b"), (3, "d")]
    last.close()


def reopened_with_damage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: Callable[[bytearray], None]) -> Spool:
    """A spool of events a to f, a segment each, reopened after ``damage`` to b's segment."""
    monkeypatch.setattr("pipeline.agent.spool_log.SEGMENT_BYTES", 100)
    first = Spool(tmp_path / "spool.db", max_bytes=100_000)
    first.open()
    for name in "abcdef":
        first.write([(name, name.encode() * 120)])  # a segment each
    first.close()
    second_segment = segments(tmp_path)[1]
    data = bytearray(second_segment.read_bytes())
    damage(data)
    second_segment.write_bytes(bytes(data))
    again = Spool(tmp_path / "spool.db", max_bytes=100_000)
    again.open()
    return again


def test_a_damaged_older_segment_is_read_up_to_the_damage_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def flip_last_byte(data: bytearray) -> None:
        data[-1] ^= 0xFF

    again = reopened_with_damage(tmp_path, monkeypatch, flip_last_byte)
    assert [r.id for r in again.after(0, 10)] == ["a", "c", "d", "e", "f"]
    assert again.damaged_at_open == 1
    again.close()


def test_a_failed_write_leaves_the_log_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = Spool(tmp_path / "spool.db", max_bytes=10_000)
    spool.open()
    spool.write([("a", b"aa")])
    real_write = os.write

    def half_then_full(fd: int, data: bytes) -> int:
        if fd in {s.fd for s in spool.log._segments.values()}:
            real_write(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr("pipeline.agent.spool_log.os.write", half_then_full)
    with pytest.raises(StoreError, match=r"cannot write to the spool: .*No space left"):
        spool.write([("b", b"bb")])
    assert (spool.count, spool.bytes, spool.log.last_seq) == (1, 2, 1)
    monkeypatch.undo()
    spool.write([("c", b"cc")])
    spool.close()
    again = Spool(tmp_path / "spool.db", max_bytes=10_000)
    again.open()
    assert [(r.seq, r.id) for r in again.after(0, 10)] == [(1, "a"), (2, "c")]
    again.close()


OLD_SCHEMA = """
CREATE TABLE spool (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, size INTEGER NOT NULL,
                    event BLOB NOT NULL);
CREATE INDEX spool_by_id ON spool (id);
"""


def test_rows_of_an_older_spool_that_are_not_events_are_left_and_the_rest_moved(tmp_path: Path) -> None:
    """SQLite keeps whatever a column is given: a row of the older spool table whose id is not
    text, or too long for the log, or whose event is not bytes, is left behind (logged), and the
    agent starts with the others, in order."""
    with closing(sqlite3.connect(tmp_path / "spool.db")) as old, old:
        old.executescript(OLD_SCHEMA)
        old.executemany("INSERT INTO spool (id, size, event) VALUES (?, ?, ?)",
                        [("first", 1, b"1"), (b"a blob", 1, b"x"), ("text", 4, "not bytes"), ("i" * 70_000, 1, b"x"),
                         ("", 1, b"x"), ("last", 1, b"2")])  # fmt: skip
    spool = Spool(tmp_path / "spool.db", max_bytes=100_000)
    spool.open()
    assert [(r.id, r.event) for r in spool.after(0, 10)] == [("first", b"1"), ("last", b"2")]
    spool.close()


def test_events_an_older_version_left_in_sqlite_are_moved_into_the_log_in_order(tmp_path: Path) -> None:
    with closing(sqlite3.connect(tmp_path / "spool.db")) as old, old:
        old.executescript(OLD_SCHEMA)
        old.executemany("INSERT INTO spool (id, size, event) VALUES (?, ?, ?)",
                        [(f"old{i}", 3, f"e{i:02d}".encode()) for i in range(1200)])  # fmt: skip
        old.execute("DELETE FROM spool WHERE id = 'old0'")  # acknowledged before the upgrade
    spool = Spool(tmp_path / "spool.db", max_bytes=100_000)
    spool.open()
    spool.write([("new", b"n")])
    spool.close()
    again = Spool(tmp_path / "spool.db", max_bytes=100_000)
    again.open()  # moved once: not again
    assert [r.id for r in again.after(0, 2000)] == [f"old{i}" for i in range(1, 1200)] + ["new"]
    assert again.after(0, 1)[0].event == b"e01"
    with closing(sqlite3.connect(tmp_path / "spool.db")) as check:
        assert check.execute("SELECT name FROM sqlite_master WHERE name = 'spool'").fetchall() == []
    again.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.one_of(st.tuples(st.just("write"), st.integers(1, 4), st.integers(1, 60)),
                                st.tuples(st.just("remove"), st.integers(0, 50), st.integers(1, 5)),
                                st.tuples(st.just("reopen"), st.just(0), st.just(0))),
                      max_size=60))  # fmt: skip
def test_the_log_keeps_what_a_plain_queue_keeps_across_reopens(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, steps: list[tuple[str, int, int]]
) -> None:
    """Against a model (an ordered dict): writes, removals anywhere in the queue, bounds dropping
    the oldest, and reopening at any point, with segments small
    enough to turn over often."""
    monkeypatch.setattr("pipeline.agent.spool_log.SEGMENT_BYTES", 150)
    path = tmp_path_factory.mktemp("spool") / "spool.db"
    spool = Spool(path, max_bytes=600)
    spool.open()
    model: dict[int, tuple[str, bytes]] = {}
    highest = 0
    for number, (kind, a, b) in enumerate(steps):
        if kind == "write":
            events = [(f"e{number}-{i}", bytes([number % 256]) * b) for i in range(a)]
            rows, dropped = spool.write(events)
            assert rows[0].seq > highest  # never a seq used before
            highest = rows[-1].seq
            model.update({row.seq: (row.id, row.event) for row in rows})
            while sum(len(e) for _, e in model.values()) > 600:
                del model[next(iter(model))]
                dropped -= 1
            assert dropped == 0
        elif kind == "remove" and model:
            chosen = list(model)[a % len(model) :][:b]
            spool.remove_seqs(chosen)
            for seq in chosen:
                del model[seq]
        elif kind == "reopen":  # close() writes nothing: the files are what a kill leaves too
            spool.close()
            spool = Spool(path, max_bytes=600)
            spool.open()
        assert [(r.seq, r.id, r.event) for r in spool.after(0, 1000)] == [(s, i, e) for s, (i, e) in model.items()]
        assert (spool.count, spool.bytes) == (len(model), sum(len(e) for _, e in model.values()))
    spool.close()


def test_a_second_process_on_the_same_spool_is_refused(tmp_path: Path) -> None:
    first = Spool(tmp_path / "spool.db", max_bytes=10_000)
    first.open()
    second = Spool(tmp_path / "spool.db", max_bytes=10_000)
    with pytest.raises(StoreError, match="spool is in use by another process"):
        second.open()
    first.close()
    second.open()  # free once the first has closed it
    second.close()


def test_a_damaged_record_type_is_damage_not_removals_nor_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flipped type byte would read an event's body as a list of removed seqs: the check covers
    the type, and a body not the shape of its type is damage too."""

    def event_to_removals(data: bytearray) -> None:
        data[0] = 2

    again = reopened_with_damage(tmp_path, monkeypatch, event_to_removals)
    assert [r.id for r in again.after(0, 10)] == ["a", "c", "d", "e", "f"]
    assert again.damaged_at_open == 1
    again.close()
