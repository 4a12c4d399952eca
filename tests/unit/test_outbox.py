"""The outbox: an event's handler work is stored with the event and kept until it is done;
what was recorded as done is not run again."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import trio

from pipeline.backend.handlers import HandlerRunner
from pipeline.config import Resources
from pipeline.errors import StoreError
from pipeline.metrics import BackendMetrics
from pipeline.model import Check, Entity, Event, MetricPoint, Metrics, ObjectMeta, new_event_id
from pipeline.model.outbox import Completion, workflow_key
from pipeline.model.resources import Handler
from pipeline.store import service as store_service
from pipeline.store.rows import event_row
from pipeline.store.service import StoreService
from pipeline.store.sqlite import SQLiteStore

ENV = {"PATH": "/usr/bin:/bin"}


def meta(name: str) -> ObjectMeta:
    return ObjectMeta(name=name, namespace="default")


def check_event(*handlers: str) -> Event:
    return Event(timestamp=1_800_000_000, entity=Entity(entity_class="agent", metadata=meta("web1")),
                 check=Check(metadata=meta("disk"), status=2, output="disk is full", handlers=list(handlers)),
                 metadata=ObjectMeta(namespace="default"), id=new_event_id())  # fmt: skip


def legacy(handler: str) -> str:
    return workflow_key("", f"legacy-pipeline-workflow-{handler}")


def test_a_job_is_kept_with_its_event_until_every_workflow_is_done(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "events.db")
    store.open()
    try:
        first, metrics_only = check_event("pager", "chat"), Event(id=new_event_id(), entity=check_event().entity)
        seqs = store.write_batch([first, metrics_only], [first, metrics_only])
        assert len(seqs) == 2
        assert seqs[0] < seqs[1]
        assert store.get_event("default", "web1", "disk") is not None  # the event and its job, together
        store.complete([Completion(seqs[0], legacy("pager")), Completion(seqs[1])])
        (pending,) = store.pending_jobs(0, 100)
        assert (pending.seq, pending.done) == (seqs[0], frozenset({legacy("pager")}))
        assert pending.decode().event == first
        assert store.last_job() == seqs[0]
        assert store.count_jobs() == 1
        store.complete([Completion(seqs[0])])
        assert store.pending_jobs(0, 100) == []
        assert store.count_jobs() == 0
    finally:
        store.close()


async def test_a_resumed_job_runs_only_the_workflows_not_recorded_as_done(tmp_path: Path) -> None:
    resources = Resources(handlers=[
        Handler(metadata=meta(name), type="pipe", command=f"cat > {tmp_path / name}") for name in ("pager", "chat", "log")
    ])  # fmt: skip
    completions, recorded = trio.open_memory_channel[Completion](10)
    runner = HandlerRunner(lambda: resources, BackendMetrics.create(), ENV, completions=completions)
    await runner.handle(check_event("pager", "chat", "log"), 7, frozenset({legacy("pager")}))
    assert not (tmp_path / "pager").exists()  # it ran before the crash: not again
    assert (tmp_path / "chat").exists()
    assert (tmp_path / "log").exists()
    got = [recorded.receive_nowait() for _ in range(2)]
    # the first of the two to finish is recorded alone; the last one ends the job in one row
    assert got[0].seq == 7
    assert got[0].workflow in {legacy("chat"), legacy("log")}
    assert got[1] == Completion(7)


async def test_completions_are_written_in_batches_and_the_last_ones_survive_a_stop(tmp_path: Path) -> None:
    metrics = BackendMetrics.create()
    service = StoreService(SQLiteStore(tmp_path / "events.db"), metrics.store)
    await service.open()
    events = [check_event("pager") for _ in range(3)]
    seqs = await service.write_batch(events, events)
    assert metrics.registry.get_sample_value("pipeline_outbox_jobs") == 3
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(service.run)
            for seq in seqs[:2]:
                service.completions.send_nowait(Completion(seq))
            nursery.cancel_scope.cancel()  # a stop: what was reported is written all the same
    assert [job.seq for job in await service.pending_jobs(0, 10)] == [seqs[2]]
    assert metrics.registry.get_sample_value("pipeline_outbox_jobs") == 1
    await service.close()


def test_a_job_keeps_the_whole_event_and_rows_are_never_reused(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "events.db")
    store.open()
    try:
        plain, with_metrics = check_event("pager"), check_event("pager")
        with_metrics.metrics = Metrics(points=[MetricPoint(name="m", value=1.0, timestamp=1_800_000_000)])
        first = store.write_batch([plain, with_metrics], [plain, with_metrics])
        jobs = store.pending_jobs(0, 10)
        assert [job.seq for job in jobs] == first
        # the job of a check event reuses the stored bytes; one with metrics keeps its metrics
        assert [job.decode().event for job in jobs] == [plain, with_metrics]
        stored = store.get_event("default", "web1", "disk")
        assert stored is not None
        assert stored.metrics is None
        store.complete([Completion(seq) for seq in first])
        again = store.write_batch([check_event()], [check_event(), check_event()])
        assert again == [first[-1] + 1, first[-1] + 2]  # after the last row ever used, in order
        assert [job.seq for job in store.pending_jobs(0, 10)] == again
    finally:
        store.close()


class CountingStore(SQLiteStore):
    """Counts the completion transactions; tells the test when ``expected`` rows are written."""

    def __init__(self, path: Path, expected: int, written: trio.Event) -> None:
        super().__init__(path)
        self.batches: list[int] = []
        self.expected, self.written = expected, written

    def complete(self, completions: Sequence[Completion]) -> None:
        super().complete(completions)
        self.batches.append(len(completions))
        if sum(self.batches) == self.expected:
            trio.from_thread.run_sync(self.written.set)


async def test_completions_that_come_one_by_one_are_written_together(tmp_path: Path) -> None:
    written = trio.Event()
    store = CountingStore(tmp_path / "events.db", 20, written)
    service = StoreService(store, BackendMetrics.create().store)
    await service.open()
    events = [check_event("pager") for _ in range(20)]
    seqs = await service.write_batch(events, events)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(service.run)
            for seq in seqs:  # as handlers finish: a millisecond apart, the writer free between
                await service.completions.send(Completion(seq))
                await trio.sleep(0.001)
            await written.wait()
            nursery.cancel_scope.cancel()
    # one transaction for what came within COMPLETIONS_LINGER, not one per few completions
    assert len(store.batches) <= 5, (store.batches, store_service.COMPLETIONS_LINGER)
    assert await service.pending_jobs(0, 100) == []
    await service.close()


async def test_a_batch_packed_by_the_service_is_stored_whole_or_not_at_all(tmp_path: Path) -> None:
    """The service packs a batch's rows before the store's thread writes them: the events read
    back as they went in, with their jobs; one that cannot be packed fails the batch, nothing
    written."""
    metrics = BackendMetrics.create()
    service = StoreService(SQLiteStore(tmp_path / "events.db"), metrics.store)
    await service.open()
    events = [check_event("pager") for _ in range(3)]
    seqs = await service.write_batch(events, events[:1])
    assert len(seqs) == 1
    stored = await service.list_events()
    assert [e.id for e in stored] == [events[-1].id]  # one check: the latest replaces the others
    assert stored[0].to_dict() == events[-1].to_dict()
    (job,) = await service.pending_jobs(0, 10)
    assert job.decode().event.to_dict() == events[0].to_dict()
    good, bad = check_event(), check_event()
    assert bad.check is not None
    bad.check.output = "\ud800"  # a lone surrogate cannot be packed
    with pytest.raises(StoreError, match=f"event {bad.id} cannot be serialised"):
        await service.write_batch([good, bad], [good, bad])
    assert [e.id for e in await service.list_events()] == [events[-1].id]
    assert len(await service.pending_jobs(0, 10)) == 1
    await service.close()


def test_rows_packed_by_the_caller_are_refused_with_a_merge(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "events.db")
    store.open()
    event = check_event()
    with pytest.raises(ValueError, match="cannot go with a merge"):
        store.write_batch([event], rows=[event_row(event)], merge=lambda event, latest: True)
    assert store.list_events() == []
    store.close()
