"""Handler work on a shared store: a backend that dies leaves its jobs to the live ones, each
taken over by exactly one; a restarted backend resumes only its own."""

from __future__ import annotations

import threading
import time

import trio

from pipeline.backend.resume import JobResumer
from pipeline.core.cluster import Heartbeat
from pipeline.metrics import BackendMetrics
from pipeline.model.outbox import HandlerJob
from pipeline.store import EventStore
from pipeline.store.service import StoreService
from tests.store_support import StoreFactory
from tests.unit.test_store import make_event

LEASE = 10.0


def backend(make: StoreFactory, name: str) -> EventStore:
    store = make(name)
    store.open()
    return store


def test_a_dead_backends_jobs_are_shared_out_once_among_the_live(shared_db: StoreFactory) -> None:
    dead, b, c = (backend(shared_db, name) for name in ("dead", "b", "c"))
    dead.beat(Heartbeat("dead", 0.0))
    dead.write_batch([make_event(f"web{i}") for i in range(300)], [make_event(f"web{i}") for i in range(300)])
    for store in (b, c):
        store.beat(Heartbeat(store.backend, 0.0))
    assert b.claim_jobs(LEASE, 1000) == []  # "dead" beat a moment ago: alive, its jobs its own
    dead.leave("dead")  # or its lease runs out: its row says nothing any more
    taken: dict[str, list[int]] = {"b": [], "c": []}

    def claim(store: EventStore) -> None:
        while page := store.claim_jobs(LEASE, 7):
            taken[store.backend].extend(job.seq for job in page)

    threads = [threading.Thread(target=claim, args=(store,)) for store in (b, c)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken["b"] + taken["c"]) == sorted({*taken["b"], *taken["c"]})  # none twice
    assert len(taken["b"]) + len(taken["c"]) == 300  # none left
    assert [j.seq for j in b.pending_jobs(0, 1000, "b")] == sorted(taken["b"])  # now held by b
    for store in (dead, b, c):
        store.close()


async def test_a_restarted_backend_resumes_its_own_jobs_and_adopts_those_of_the_dead(shared_db: StoreFactory) -> None:
    mine, other = backend(shared_db, "mine"), backend(shared_db, "other")
    mine.write_batch([], [make_event("web1"), make_event("web2")])
    other.beat(Heartbeat("other", time.time()))
    other.write_batch([], [make_event("web3")])
    metrics = BackendMetrics.create()
    service = StoreService(mine, metrics.store)
    send, receive = trio.open_memory_channel[HandlerJob](100)
    resumer = JobResumer(service, send, metrics, lease=LEASE)
    with trio.fail_after(10):
        await check_resumer(resumer, mine, other)
    received = [receive.receive_nowait().event.entity_name for _ in range(3)]
    assert received == ["web1", "web2", "web3"]
    assert metrics.jobs_adopted._value.get() == 1
    mine.close()
    other.close()


async def check_resumer(resumer: JobResumer, mine: EventStore, other: EventStore) -> None:
    assert await resumer.resume(mine.last_job(), "mine") == 2
    assert await resumer.adopt() == 0  # "other" is alive
    other.leave("other")
    mine.beat(Heartbeat("mine", 0.0))
    assert await resumer.adopt() == 1
