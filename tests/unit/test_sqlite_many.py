"""Rows written in few statements (pipeline.sqlite_many) end as executemany leaves them."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.sqlite_many import _chunks, delete_keys, insert_rows

TABLE = "CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL, n INTEGER)"
rows_of = st.lists(
    st.tuples(st.integers(0, 40), st.text(max_size=3), st.none() | st.integers(-(2**63), 2**63 - 1)), max_size=150
)


def _both() -> tuple[sqlite3.Connection, sqlite3.Connection]:
    chunked, reference = sqlite3.connect(":memory:"), sqlite3.connect(":memory:")
    for conn in (chunked, reference):
        conn.execute(TABLE)
    return chunked, reference


def _all(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
    return conn.execute("SELECT k, v, n FROM t ORDER BY k").fetchall()


@settings(max_examples=60, deadline=None)
@given(rows=rows_of, verb=st.sampled_from(["INSERT OR REPLACE", "INSERT OR IGNORE"]))
def test_insert_rows_leaves_what_executemany_leaves(rows: list[tuple[int, str, int | None]], verb: str) -> None:
    """Repeated keys included: the last row wins a REPLACE and the first an IGNORE, in both."""
    chunked, reference = _both()
    insert_rows(chunked, f"{verb} INTO t (k, v, n)", rows)
    reference.executemany(f"{verb} INTO t (k, v, n) VALUES (?, ?, ?)", rows)
    assert _all(chunked) == _all(reference)


@settings(max_examples=40, deadline=None)
@given(rows=rows_of, doomed=st.lists(st.integers(0, 45), max_size=100))
def test_delete_keys_deletes_each_key(rows: list[tuple[int, str, int | None]], doomed: list[int]) -> None:
    chunked, reference = _both()
    for conn in (chunked, reference):
        conn.executemany("INSERT OR REPLACE INTO t VALUES (?, ?, ?)", rows)
    delete_keys(chunked, "DELETE FROM t WHERE k", doomed)
    reference.executemany("DELETE FROM t WHERE k = ?", [(k,) for k in doomed])
    assert _all(chunked) == _all(reference)


def test_a_batch_takes_few_statements_of_few_sizes() -> None:
    """200 events: three statements of 64 and two of 4, where executemany stepped 200 times."""
    assert _chunks(200) == [(0, 64), (64, 64), (128, 64), (192, 4), (196, 4)]
    assert _chunks(0) == []
    for total in range(1, 300):
        spans = _chunks(total)
        assert sum(size for _, size in spans) == total
        assert len(spans) <= total // 64 + 9


def test_an_insert_that_fails_names_sqlites_error_and_writes_nothing_more() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute(TABLE)
    conn.execute("BEGIN")
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        insert_rows(conn, "INSERT INTO t (k, v, n)", [(1, "a", 1), (1, "b", 2)])
    conn.execute("ROLLBACK")
    assert _all(conn) == []
