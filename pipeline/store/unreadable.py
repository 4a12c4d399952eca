"""Stored records that no longer load, skipped wherever they are read.

A record written by an older version may hold a value today's model refuses (a number out of
today's range): one such row must not fail every list it is part of (``GET /events`` answered
500 for good) nor stop a start. Each is skipped, logged once with what names it, and counted
once through :attr:`Unreadable.count`, which the store service points at its metric.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import msgpack

from pipeline.errors import PipelineError
from pipeline.logs import get_logger

log = get_logger("store")

T = TypeVar("T")

#: What decoding a stored blob raises when today's model refuses it (the model's errors, and
#: msgpack's or the codec's ValueError and TypeError).
UNREADABLE = (PipelineError, ValueError, TypeError, msgpack.UnpackException)


def _ignore(kind: str) -> None:
    pass


class Unreadable:
    """What the store found unreadable. Called from the store's threads, hence the lock."""

    def __init__(self) -> None:
        #: called once per unreadable record with its kind ("event", "silence", ...)
        self.count: Callable[[str], None] = _ignore
        self._reported: set[tuple[Any, ...]] = set()
        self._lock = threading.Lock()

    def decode_rows(
        self, kind: str, names: Sequence[str], rows: Iterable[Sequence[Any]], decode: Callable[[Any], T]
    ) -> list[T]:
        """``decode`` of each row's last column; the other columns name the row (``names``)."""
        found = []
        for row in rows:
            try:
                found.append(decode(row[-1]))
            except UNREADABLE as exc:
                self.skipped(kind, dict(zip(names, row[:-1], strict=True)), exc)
        return found

    def skipped(self, kind: str, key: dict[str, Any], error: Exception) -> None:
        """Log and count a record the first time it is found unreadable."""
        identity = (kind, *key.values())
        with self._lock:
            if identity in self._reported:
                return
            self._reported.add(identity)
        log.error(f"stored {kind} no longer loads; skipped", **key, error=error)
        self.count(kind)
