"""Many rows in few SQLite statements.

``executemany`` steps its statement once a row, and Python's sqlite3 lets go of the GIL around
every step and takes it back after. A batch of 200 events made some 400 such hand-overs between
the store's thread and the trio thread: each one a futex wake, and under load a wait of the
trio thread for the store's Python (issue 19: a journal record's ``write(2)``, 1 µs alone, took
20 µs on the trio thread while a batch was written). Here the rows go in statements of up to
:data:`CHUNK_ROWS` rows each, so that a batch lets go of the GIL a handful of times. The
statements come in a few fixed sizes, so that sqlite3's statement cache keeps them.

Rows are written in the order given, as ``executemany`` writes them: with ``INSERT OR REPLACE``
the last of two rows with one key wins, with ``INSERT OR IGNORE`` the first.
"""

from __future__ import annotations

import functools
import itertools
import sqlite3
from collections.abc import Sequence

#: The statement sizes, largest first: at most 64 rows (8 columns make 512 parameters, under
#: SQLite's oldest limit of 999), and any count in at most nine statements beyond the full ones.
CHUNKS = (64, 16, 4, 1)
CHUNK_ROWS = CHUNKS[0]


@functools.lru_cache(maxsize=64)
def _values(width: int, rows: int) -> str:
    one = "(" + ", ".join(["?"] * width) + ")"
    return ", ".join([one] * rows)


@functools.lru_cache(maxsize=64)
def _marks(count: int) -> str:
    return ", ".join(["?"] * count)


def _chunks(total: int) -> list[tuple[int, int]]:
    """(start, length) of each statement for ``total`` rows."""
    spans, at = [], 0
    while at < total:
        size = next(size for size in CHUNKS if size <= total - at)
        spans.append((at, size))
        at += size
    return spans


def insert_rows(conn: sqlite3.Connection, head: str, rows: Sequence[Sequence[object]]) -> None:
    """``head`` (``INSERT ... INTO t (a, b)``) with ``VALUES`` for every row of ``rows``, in order;
    every row has the same number of columns."""
    if not rows:
        return
    width = len(rows[0])
    for start, size in _chunks(len(rows)):
        params = list(itertools.chain.from_iterable(rows[start : start + size]))
        conn.execute(f"{head} VALUES {_values(width, size)}", params)


def delete_keys(conn: sqlite3.Connection, head: str, keys: Sequence[object]) -> None:
    """``head`` (``DELETE FROM t WHERE k``) for every key of ``keys`` (``IN (...)``)."""
    for start, size in _chunks(len(keys)):
        conn.execute(f"{head} IN ({_marks(size)})", list(keys[start : start + size]))
