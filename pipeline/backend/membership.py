"""This backend among the backends sharing its store: it beats in the store every
:data:`~pipeline.core.cluster.HEARTBEAT_INTERVAL` seconds, reads everyone's last beat, and
tells liveness (a message on a bounded channel) when the set of live backends changes, since
that moves entities from one owner to another (:mod:`pipeline.core.cluster`).

On a store no other backend shares (SQLite) the beat is kept all the same (it is cheap), so
that the one backend is in the ``backends`` table as several would be.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import trio

from pipeline.core.cluster import HEARTBEAT_INTERVAL, LEASE, Heartbeat, entity_key, live_backends, owner
from pipeline.errors import StoreError
from pipeline.logs import get_logger
from pipeline.metrics import BackendMetrics
from pipeline.store.service import StoreService

log = get_logger("backend.membership")


@dataclass(frozen=True, slots=True)
class BackendsChanged:
    """The live backends were ``before`` and are ``after`` (sorted names)."""

    before: tuple[str, ...]
    after: tuple[str, ...]


class Membership:
    def __init__(
        self,
        store: StoreService,
        me: Heartbeat,
        metrics: BackendMetrics,
        changes: trio.MemorySendChannel[BackendsChanged] | None = None,
        *,
        interval: float = HEARTBEAT_INTERVAL,
        lease: float = LEASE,
    ) -> None:
        self.store = store
        self.me = me
        self.metrics = metrics
        self._changes = changes
        self.interval = interval
        self.lease = lease
        #: the live backends as last read (this one always among them), sorted
        self.live: tuple[str, ...] = (me.backend,)
        metrics.backends_live.set_function(lambda: len(self.live))

    @property
    def name(self) -> str:
        return self.me.backend

    def owns(self, namespace: str, entity: str) -> bool:
        """Whether this backend raises the entity's keepalive and ttl failures."""
        return owner(entity_key(namespace, entity), self.live) == self.me.backend

    def owns_check(self, namespace: str, check: str) -> bool:
        """Whether this backend schedules the check (round robin, proxy requests)."""
        return owner(f"check:{namespace}/{check}", self.live) == self.me.backend

    async def beat(self) -> None:
        """One beat: record this backend's, read everyone's; tell liveness if the live set moved.
        A store that fails leaves the live set as it was (logged, counted): a backend that cannot
        reach the store cannot take work over either."""
        try:
            beats = await self.store.beat(self.me)
        except StoreError as exc:
            self.metrics.store.failures.labels("beat").inc()
            log.error("heartbeat not recorded", backend=self.me.backend, error=exc)
            return
        mine = next((b.beat for b in beats if b.backend == self.me.backend), None)
        assert mine is not None, "the store returns the beat it recorded"
        live = tuple(sorted({*live_backends(beats, mine, self.lease), self.me.backend}))
        if live != self.live:
            await self._changed(self.live, live)

    async def _changed(self, before: Sequence[str], after: tuple[str, ...]) -> None:
        self.live = after
        gone, joined = sorted(set(before) - set(after)), sorted(set(after) - set(before))
        self.metrics.backend_changes.inc()
        log.info("backends changed", live=",".join(after), gone=",".join(gone), joined=",".join(joined))
        if self._changes is not None:
            await self._changes.send(BackendsChanged(tuple(before), after))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Beat until cancelled; the first beat is done before ``started``, so the backend knows
        the others before it takes work. A clean stop leaves the store at once."""
        await self.beat()
        task_status.started()
        try:
            while True:
                await trio.sleep(self.interval)
                await self.beat()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(self.interval):
                try:
                    await self.store.leave(self.me.backend)
                except StoreError as exc:
                    log.warning("backend not removed from the store; the others wait for its lease",
                                backend=self.me.backend, error=exc)  # fmt: skip
