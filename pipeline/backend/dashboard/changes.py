"""What changed, for the dashboard's open pages: a bounded broadcast that never blocks.

The event processor, the silences and the dashboard's own actions :meth:`Changes.publish` a
short notice (``checks``: a check's latest event was stored or deleted; ``silences``: a silence
was created or ended). Each open ``/stream`` holds a :class:`Subscriber`, a bounded queue of
notices: publishing appends and wakes it, and never waits, so a slow or stalled browser can
never hold eventd back. A subscriber whose queue is full loses its oldest notice (counted in
``pipeline_dashboard_stream_dropped{reason="slow_browser"}``); since a page only refetches the
part a notice names, the newest notices are the ones that matter. Streams are bounded too
(:data:`MAX_STREAMS`): one more is refused and counted (``too_many_streams``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

import trio
from prometheus_client import Counter

from pipeline.logs import get_logger

log = get_logger("backend.dashboard")

#: Notices one stream holds for its browser, at most (the oldest go first).
QUEUE_DEPTH = 64
#: Open streams at most (a browser tab each).
MAX_STREAMS = 500
#: The kinds of change a page may listen for (``hx-trigger="sse:<kind>"``).
KINDS = ("checks", "silences")


class TooManyStreams(Exception):
    """The dashboard has :data:`MAX_STREAMS` open streams already."""


class Subscriber:
    def __init__(self, depth: int, dropped: Counter) -> None:
        self._queue: deque[str] = deque(maxlen=depth)
        self._dropped = dropped
        self._wake = trio.Event()

    def push(self, kind: str) -> None:
        if len(self._queue) == self._queue.maxlen:
            self._dropped.labels("slow_browser").inc()
        self._queue.append(kind)
        self._wake.set()

    async def take(self, timeout: float) -> list[str]:
        """The kinds of change since the last call, each once and in order of first notice;
        empty after ``timeout`` seconds without one (time for a keep-alive comment)."""
        with trio.move_on_after(timeout):
            await self._wake.wait()
        self._wake = trio.Event()
        kinds = list(dict.fromkeys(self._queue))
        self._queue.clear()
        return kinds


class Changes:
    def __init__(self, dropped: Counter, *, depth: int = QUEUE_DEPTH, max_streams: int = MAX_STREAMS) -> None:
        self._dropped = dropped
        self._depth = depth
        self._max = max_streams
        self._subscribers: set[Subscriber] = set()
        self.published = 0

    def __len__(self) -> int:
        return len(self._subscribers)

    def publish(self, kind: str) -> None:
        """Tell every open stream that ``kind`` changed (never waits)."""
        self.published += 1
        for subscriber in self._subscribers:
            subscriber.push(kind)

    @contextmanager
    def subscribe(self) -> Iterator[Subscriber]:
        """A subscriber for the block (TooManyStreams at the cap)."""
        if len(self._subscribers) >= self._max:
            self._dropped.labels("too_many_streams").inc()
            log.warning("dashboard stream refused: too many open", streams=len(self._subscribers))
            raise TooManyStreams()
        subscriber = Subscriber(self._depth, self._dropped)
        self._subscribers.add(subscriber)
        try:
            yield subscriber
        finally:
            self._subscribers.discard(subscriber)
