"""Handler work left unfinished, taken up: a previous run's at start, and a dead backend's
while backends share a store.

Every handler job is written with its event, held by the backend that wrote it, and deleted
once its handlers all ran (:mod:`pipeline.model.outbox`). At start a backend resumes what it
held before it stopped. With a shared store it also looks, every :data:`ADOPT_INTERVAL`, for
jobs held by backends with no heartbeat for a lease (dead, or gone for good) and takes them over
in one statement, so that two backends looking at once share them out and each job runs on
one. A job's handlers run at least once: one that ran just before its backend died, and whose
completion was not yet written, runs again (handlers get the event id to de-duplicate).
"""

from __future__ import annotations

from collections.abc import Sequence

import trio

from pipeline.core.cluster import LEASE
from pipeline.errors import StoreError
from pipeline.logs import get_logger
from pipeline.metrics import BackendMetrics
from pipeline.model.outbox import Completion, HandlerJob, StoredJob
from pipeline.store.service import StoreService
from pipeline.store.unreadable import UNREADABLE

log = get_logger("backend.resume")

#: Jobs read from the outbox at once when resuming or taking over.
RESUME_PAGE = 500
#: Seconds between two looks for a dead backend's jobs (shared store).
ADOPT_INTERVAL = LEASE / 2


class JobResumer:
    def __init__(
        self,
        store: StoreService,
        handlers: trio.MemorySendChannel[HandlerJob],
        metrics: BackendMetrics,
        *,
        lease: float = LEASE,
        interval: float = ADOPT_INTERVAL,
    ) -> None:
        self.store = store
        self.handlers = handlers
        self.metrics = metrics
        self.lease = lease
        self.interval = interval

    async def resume(self, last: int, backend: str | None = None) -> int:
        """Hand the handlers the jobs a previous run left unfinished, up to row ``last`` (only
        those ``backend`` held, if given: on a shared store the others are other backends')."""
        after, resumed = 0, 0
        while after < last:
            page = [job for job in await self.store.pending_jobs(after, RESUME_PAGE, backend) if job.seq <= last]
            if not page:
                break
            after = page[-1].seq
            resumed += await self._hand_over(page)
        if resumed:
            log.info("handler work of a previous run resumed", jobs=resumed)
        return resumed

    async def adopt(self) -> int:
        """Take over the jobs of backends with no heartbeat for a lease; how many."""
        adopted = 0
        while True:
            try:
                page = await self.store.claim_jobs(self.lease, RESUME_PAGE)
            except StoreError as exc:
                self.metrics.store.failures.labels("claim_jobs").inc()
                log.error("cannot take over a dead backend's handler work", error=exc)
                break
            if not page:
                break
            adopted += await self._hand_over(page)
            self.metrics.jobs_adopted.inc(len(page))
        if adopted:
            log.info("handler work of a dead backend taken over", jobs=adopted)
        return adopted

    async def run_adoption(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await self.adopt()
            await trio.sleep(self.interval)

    async def _hand_over(self, page: Sequence[StoredJob]) -> int:
        handed = 0
        for stored in page:
            job = self._readable(stored)
            if job is None:  # it can never run: taken out, so that it is not read at every start
                await self.store.completions.send(Completion(stored.seq))
                continue
            self.metrics.store.outbox_resumed.inc()
            await self.handlers.send(job)
            handed += 1
        return handed

    def _readable(self, stored: StoredJob) -> HandlerJob | None:
        try:
            return stored.decode()
        except UNREADABLE as exc:
            self.metrics.store.outbox_unreadable.inc()
            log.error("outbox job unreadable; dropped", job=stored.seq, error=exc)
            return None
