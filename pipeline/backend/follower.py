"""What other backends change, in force here within a second: resources, silences and API keys
changed through any backend sharing the store.

Every change of one of them counts a revision in the store, in the transaction that makes it
(:data:`pipeline.store.base.FOLLOWED`). This task polls the revisions every
:data:`FOLLOW_INTERVAL` and reads again each kind whose revision moved; reading one small row per
kind is cheaper than any notification machinery, and never misses one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

import trio

from pipeline.errors import StoreError
from pipeline.logs import get_logger
from pipeline.metrics import BackendMetrics
from pipeline.store.base import FOLLOWED
from pipeline.store.service import StoreService

log = get_logger("backend.follower")

#: Seconds between two looks at the revisions: a change made elsewhere is in force here within it.
FOLLOW_INTERVAL = 0.5


class ChangeFollower:
    def __init__(
        self,
        store: StoreService,
        readers: Mapping[str, Callable[[], Awaitable[object]]],
        metrics: BackendMetrics,
        *,
        interval: float = FOLLOW_INTERVAL,
    ) -> None:
        unknown = set(readers) - set(FOLLOWED)
        assert not unknown, f"not followed: {unknown}"
        self.store = store
        #: by kind, what reads that kind again from the store
        self.readers = dict(readers)
        self.metrics = metrics
        self.interval = interval
        self._seen: dict[str, int] = {}

    async def start_from(self) -> None:
        """Take the store's revisions as seen (call before the backend reads what they count, so
        that a change made between the two is read again rather than missed)."""
        self._seen = await self.store.revisions()

    async def look(self) -> list[str]:
        """Read again each kind whose revision moved; the kinds read."""
        try:
            revisions = await self.store.revisions()
        except StoreError as exc:
            self.metrics.store.failures.labels("revisions").inc()
            log.error("cannot read the revisions", error=exc)
            return []
        moved = [kind for kind in self.readers if revisions.get(kind, 0) != self._seen.get(kind, 0)]
        for kind in moved:
            try:
                await self.readers[kind]()
            except StoreError as exc:
                self.metrics.store.failures.labels(f"follow_{kind}").inc()
                log.error("cannot read what another backend changed", kind=kind, error=exc)
                continue  # its revision is not taken as seen: read again at the next look
            self._seen[kind] = revisions.get(kind, 0)
            self.metrics.changes_followed.labels(kind).inc()
        return moved

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await trio.sleep(self.interval)
            await self.look()
