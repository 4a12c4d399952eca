"""The backend pipeline: every event through its workflows, filter -> mutator -> handler.

An event's workflows are the legacy pipeline of ``check.handlers`` and ``metrics.handlers``
(handler sets expanded, unique, sorted by name, as Sensu Go builds it) and the workflows of
every Pipeline it names. Each workflow runs in its own task: a filter error, a mutator failure
or a handler failure is logged with the event id, the stage and the error, counted, and never
stops another workflow. A failing handler is retried with exponential backoff up to its
``max_attempts``; what still fails becomes a dead letter, kept in the store until it is
replayed (:meth:`HandlerRunner.replay`) or deleted. A bounded pool of workers takes events; a
capacity limiter bounds the handler and mutator processes running at once, and a handler's
``concurrency`` bounds its own runs.

Each stage is done by the first adapter of its list that can (:mod:`pipeline.backend.stages`,
as Sensu Go picks its pipeline adapters): a filter or mutator no adapter takes is an error
naming it, counted, as is a handler type no adapter takes. An event is wrapped once in
:class:`~pipeline.model.forms.EventForms`, which every workflow shares: its JSON dict and JSON
bytes are computed once, not once per filter, mutator and handler.

Events come as jobs of the outbox (:mod:`pipeline.model.outbox`): each workflow that finishes
(handled, filtered out, or kept as a dead letter) is reported on the ``completions`` channel,
and so is the end of the job, so that a restarted backend runs only what was not done.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import trio

from pipeline.assets.cache import AssetCache
from pipeline.backend import stages
from pipeline.backend.traces import PipelineTraces, workflow_trace
from pipeline.config import Resources
from pipeline.core.filtering import FilterError
from pipeline.core.stages import FilterAdapter, HandlerAdapter, HandlerRun, MutatorAdapter, StageError, StageRef
from pipeline.core.workflows import Problem, Workflow, legacy_handler_names, workflows_for
from pipeline.logs import get_logger
from pipeline.metrics import BackendMetrics
from pipeline.model import DEFAULT_NAMESPACE, Event, new_event_id
from pipeline.model.deadletter import DeadLetter
from pipeline.model.forms import EventForms
from pipeline.model.outbox import Completion, HandlerJob, workflow_key
from pipeline.model.resources import Handler
from pipeline.model.trace import DEAD_LETTER, ERROR, FILTERED, HANDLED, MUTATOR_FAILED, PASSED, STOPPED, WorkflowTrace

log = get_logger("backend.handlers")

#: Events waiting for a pipeline worker, at most.
INBOX_SIZE = 1000
#: Events going through their workflows at once.
WORKERS = 32
#: Handler and mutator processes running at once.
MAX_PROCESSES = 16
#: Distinct pipeline problems remembered, to warn of each once.
REPORTED_MAX = 1000
#: The first retry waits this long; each next one twice as long, up to RETRY_MAX.
RETRY_BASE, RETRY_MAX = 1.0, 60.0


class HandlerRunner:
    def __init__(
        self,
        resources: Callable[[], Resources],
        metrics: BackendMetrics,
        env: Mapping[str, str],
        *,
        workers: int = WORKERS,
        max_processes: int = MAX_PROCESSES,
        retry_base: float = RETRY_BASE,
        dead_letters: Callable[[DeadLetter], Awaitable[None]] | None = None,
        completions: trio.MemorySendChannel[Completion] | None = None,
        asset_cache: AssetCache | None = None,
        wall_clock: Callable[[], float] = time.time,
        traces: PipelineTraces | None = None,
    ) -> None:
        self._resources = resources
        #: where what each workflow did is recorded (the dashboard's event page, the trace API)
        self.traces = traces
        self._completions = completions
        self._dead_letters = dead_letters
        self.metrics = metrics
        self.env = dict(env)
        self.workers = workers
        self.retry_base = retry_base
        self._wall_clock = wall_clock
        self._services = stages.StageServices(resources, self.env, trio.CapacityLimiter(max_processes), asset_cache)
        self._filters: list[FilterAdapter] = []
        self._mutators: list[MutatorAdapter] = [make(self._services) for make in stages.MUTATOR_ADAPTERS]
        self._handlers: list[HandlerAdapter] = [make(self._services) for make in stages.HANDLER_ADAPTERS]
        self._limits: dict[str, trio.CapacityLimiter] = {}
        self._metrics_of: dict[str, tuple[Any, Any]] = {}
        self._mutator_metrics_of: dict[str, tuple[Any, Any]] = {}
        self._memo_resources: Resources | None = None
        self._memo: dict[tuple[str, ...], tuple[list[Workflow], list[Problem]]] = {}
        self.refresh(resources())
        self._reported: set[str] = set()
        self.inbox, self._receive = trio.open_memory_channel[HandlerJob](INBOX_SIZE)
        metrics.queues.watch("handlers_inbox", self.inbox)  # type: ignore[arg-type]
        self._busy = 0
        self._idle = trio.Event()

    def prepare(self, resources: Resources) -> None:
        """Check a change before it applies: each adapter that loads something (the plugins,
        built once) loads it, raising HandlerError naming what cannot be loaded."""
        for adapter in [*self._mutators, *self._handlers]:
            prepare = getattr(adapter, "prepare", None)
            if prepare is not None:
                prepare(resources)

    def refresh(self, resources: Resources) -> None:
        """Use a new set of resources from the next event on."""
        for adapter in [*self._mutators, *self._handlers]:
            refresh = getattr(adapter, "refresh", None)
            if refresh is not None:
                refresh(resources)
        self._filters = [make(resources, self._services) for make in stages.FILTER_ADAPTERS]
        limits = {}
        for handler in resources.handlers:
            if handler.concurrency > 0:
                current = self._limits.get(handler.metadata.name)
                if current is not None and current.total_tokens == handler.concurrency:
                    limits[handler.metadata.name] = current
                else:
                    limits[handler.metadata.name] = trio.CapacityLimiter(handler.concurrency)
        self._limits = limits

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                for _ in range(self.workers):
                    nursery.start_soon(self._worker, self._receive.clone())
                await self._receive.aclose()
                task_status.started()
        finally:
            if self._completions is not None:
                self._completions.close()  # lets the store service write the last ones and stop

    async def _worker(self, receive: trio.MemoryReceiveChannel[HandlerJob]) -> None:
        async with receive:
            async for job in receive:
                self._busy += 1
                try:
                    await self.handle(job.event, job.seq, job.done)
                finally:
                    self._busy -= 1
                    self._idle.set()

    async def drain(self) -> None:
        """Return once every job sent so far has been handled (callers bound the wait)."""
        while self._busy or self.inbox.statistics().current_buffer_used:
            self._idle = trio.Event()
            await self._idle.wait()

    async def handle(self, event: Event, seq: int = 0, done: frozenset[str] = frozenset()) -> None:
        """Run every workflow of the event (but those of ``done``), concurrently, each isolated
        from the others; report each on the completions channel as it finishes (job ``seq``)."""
        workflows, problems = self._workflows_for(event)
        self._report(event, problems)
        workflows = [w for w in workflows if workflow_key(w.pipeline, w.name) not in done]
        if self.traces is not None and (workflows or problems):
            records = self.traces.begin(event, workflows, problems)
        else:
            records = [workflow_trace(w) for w in workflows]
        if not workflows:  # most events: no nursery to open
            await self._complete(Completion(seq))
            return
        forms = EventForms(event)  # every workflow shares each form of the event, encoded once
        if len(workflows) == 1:  # nothing to run beside it: no nursery, no task to start
            await self._run_workflow(workflows[0], forms, records[0])
            await self._complete(Completion(seq))
            return
        remaining = [len(workflows)]

        async def run_one(workflow: Workflow, record: WorkflowTrace) -> None:
            await self._run_workflow(workflow, forms, record)
            remaining[0] -= 1
            if remaining[0]:  # the last one is recorded with the job's end, in one row
                await self._complete(Completion(seq, workflow_key(workflow.pipeline, workflow.name)))

        async with trio.open_nursery() as nursery:
            for workflow, record in zip(workflows, records, strict=True):
                nursery.start_soon(run_one, workflow, record)
        await self._complete(Completion(seq))

    def _workflows_for(self, event: Event) -> tuple[list[Workflow], list[Problem]]:
        """:func:`workflows_for`, remembered for events that name only handlers (most): the same
        names in the same namespace under the same resources give the same workflows."""
        resources = self._resources()
        if event.pipelines:
            return workflows_for(event, resources)
        if resources is not self._memo_resources:
            self._memo_resources, self._memo = resources, {}
        key = (event.namespace or DEFAULT_NAMESPACE, *legacy_handler_names(event))
        found = self._memo.get(key)
        if found is None:
            if len(self._memo) >= REPORTED_MAX:  # handler names come from events: stay bounded
                self._memo.clear()
            found = self._memo[key] = workflows_for(event, resources)
        return list(found[0]), list(found[1])

    def _report(self, event: Event, problems: list[Problem]) -> None:
        for problem in problems:
            self.metrics.handler_failures.labels(problem.name, problem.reason).inc()
            # Every keepalive names the "keepalive" handler, defined or not: warn once per name, then count.
            report = log.debug if problem.message in self._reported else log.warning
            if len(self._reported) >= REPORTED_MAX:  # names come from events too: stay bounded
                self._reported.clear()
            self._reported.add(problem.message)
            report("pipeline problem", event_id=event.id, entity=event.entity_name, check=event.check_name,
                   problem=problem.message)  # fmt: skip

    async def _complete(self, completion: Completion) -> None:
        if self._completions is None or not completion.seq:
            return
        try:
            # Without a checkpoint when there is room: a stop that cancels the workers right
            # after a handler ran must not lose the record that it ran.
            self._completions.send_nowait(completion)
        except trio.WouldBlock:
            await self._completions.send(completion)

    # -- one workflow ----------------------------------------------------------------------------

    async def _run_workflow(self, workflow: Workflow, forms: EventForms, record: WorkflowTrace) -> None:
        for name in workflow.filters:
            if not await self._passes(name, workflow, forms, record):
                record.outcome = STOPPED
                return
        handler = self._handler_adapter(workflow.handler)
        payload = await self._payload(workflow, forms, handler, record)
        if payload is None:
            record.outcome = MUTATOR_FAILED
            return
        error = await self._run_handler(workflow.handler, forms, payload, record)
        record.outcome = HANDLED if error is None else DEAD_LETTER
        if error is not None:
            record.dead_letter = await self._bury(workflow, forms.event, error)

    async def _payload(
        self, workflow: Workflow, forms: EventForms, handler: HandlerAdapter | None, record: WorkflowTrace
    ) -> bytes | None:
        """The mutated event for the workflow's handler; None when the mutator failed (logged)."""
        if handler is not None and not handler.mutated:
            record.mutator_outcome = "not run: the plugin takes the event itself"
            return b""
        record.mutator = workflow.mutator or "json"
        try:
            payload = await self._mutate(workflow.mutator or "json", forms)
        except StageError as exc:
            self.metrics.mutator_failures.labels(workflow.mutator, exc.reason).inc()
            log.error("mutator failed", event_id=forms.event.id, workflow=workflow.name, mutator=workflow.mutator,
                      handler=workflow.handler.metadata.name, error=exc)  # fmt: skip
            record.mutator_outcome = f"failed ({exc.reason}): {exc}"
            return None
        record.mutator_outcome = "ok"
        return payload

    async def _bury(self, workflow: Workflow, event: Event, error: StageError) -> str:
        """Keep the event as a dead letter of the workflow's handler; the letter's id ("" when not kept)."""
        handler = workflow.handler
        self.metrics.dead_letters.labels(handler.metadata.name).inc()
        if self._dead_letters is None:
            return ""
        letter = DeadLetter(
            id=new_event_id(),
            created=int(self._wall_clock()),
            namespace=event.namespace or "default",
            handler=handler.metadata.name,
            workflow=workflow.name,
            pipeline=workflow.pipeline,
            mutator=workflow.mutator,
            error=str(error),
            attempts=handler.max_attempts,
            event=event,
        )
        await self._dead_letters(letter)
        log.warning("dead letter kept", letter=letter.id, handler=letter.handler, event_id=event.id, error=error)
        return letter.id

    async def replay(self, letter: DeadLetter) -> str | None:
        """Send a dead letter's event to its handler again (as configured now, with its retries,
        its filters skipped: they passed the first time). None on success, else the error."""
        resources = self._resources()
        handler = resources.handler(letter.handler, letter.namespace)
        if handler is None or handler.type == "set":
            return f"handler {letter.handler!r} no longer exists"
        workflow = Workflow(letter.workflow, letter.pipeline, (), letter.mutator, handler)
        forms = EventForms(letter.event)
        record = workflow_trace(workflow)
        record.replay_of = letter.id
        if self.traces is not None:
            self.traces.replayed(letter.event, record)
        payload = await self._payload(workflow, forms, self._handler_adapter(handler), record)
        if payload is None:
            record.outcome = MUTATOR_FAILED
            return f"mutator {letter.mutator!r} failed"
        error = await self._run_handler(handler, forms, payload, record)
        record.outcome = HANDLED if error is None else DEAD_LETTER
        return None if error is None else str(error)

    async def _passes(self, name: str, workflow: Workflow, forms: EventForms, record: WorkflowTrace) -> bool:
        self.metrics.filter_runs.labels(name).inc()
        with self.metrics.filter_duration.labels(name).time():
            return await self._apply_filter(name, workflow, forms, record)

    async def _apply_filter(self, name: str, workflow: Workflow, forms: EventForms, record: WorkflowTrace) -> bool:
        event = forms.event
        ref = StageRef(name, event.namespace or "default")
        try:
            adapter = next((a for a in self._filters if a.can_filter(ref)), None)
            if adapter is None:
                raise FilterError(f"no EventFilter {name!r}")
            outcome = await adapter.filter(ref, forms, self._wall_clock())
        except FilterError as exc:
            self.metrics.filter_errors.labels(name).inc()
            log.error("filter failed", event_id=event.id, workflow=workflow.name, filter=name, error=exc)
            record.filtered(name, ERROR, str(exc))
            return False
        for error in outcome.errors:
            self.metrics.filter_errors.labels(name).inc()
            log.error("filter expression failed", event_id=event.id, workflow=workflow.name, filter=name,
                      error=error)  # fmt: skip
        if not outcome.passed:
            self.metrics.events_filtered.labels(name).inc()
            log.debug("event filtered", event_id=event.id, workflow=workflow.name, filter=name)
        record.filtered(name, PASSED if outcome.passed else FILTERED, "; ".join(str(e) for e in outcome.errors))
        return outcome.passed

    # -- mutators --------------------------------------------------------------------------------

    async def _mutate(self, name: str, forms: EventForms) -> bytes:
        runs, duration = self._mutator_metrics(name)
        runs.inc()
        ref = StageRef(name, forms.event.namespace or "default")
        adapter = next((a for a in self._mutators if a.can_mutate(ref)), None)
        if adapter is None:
            found = self._resources().mutator(name, ref.namespace)
            if found is None:
                raise StageError("missing", f"no Mutator {name!r}")
            raise StageError("unsupported", f"Mutator {name!r}: no mutator adapter for type {found.kind!r}")
        started = trio.current_time()
        try:
            return await adapter.mutate(ref, forms)
        finally:
            duration.observe(trio.current_time() - started)

    def _mutator_metrics(self, name: str) -> tuple[Any, Any]:
        """The run counter and duration histogram of mutator ``name`` (labelled once, not per
        event: two label lookups were about 2 % of the loop's CPU for a pipe handler's event)."""
        return _labelled(self._mutator_metrics_of, name, self.metrics.mutator_runs, self.metrics.mutator_duration)

    # -- handlers --------------------------------------------------------------------------------

    def _handler_adapter(self, handler: Handler) -> HandlerAdapter | None:
        for adapter in self._handlers:
            if adapter.can_handle(handler):
                return adapter
        return None

    async def _run_handler(
        self, handler: Handler, forms: EventForms, payload: bytes, record: WorkflowTrace
    ) -> StageError | None:
        """Run a handler, retrying; None once it succeeds, else the last error."""
        name = handler.metadata.name
        event = forms.event
        limit = self._limits.get(name)
        error = StageError("never_run", "no attempt made")
        for attempt in range(1, handler.max_attempts + 1):
            if attempt > 1:
                self.metrics.handler_retries.labels(name).inc()
                await trio.sleep(min(self.retry_base * 2 ** (attempt - 2), RETRY_MAX))
            runs, duration = self._handler_metrics(name)
            runs.inc()
            started = trio.current_time()
            try:
                if limit is not None:
                    async with limit:
                        run = await self._attempt(handler, forms, payload)
                else:
                    run = await self._attempt(handler, forms, payload)
            except StageError as exc:
                error = exc
                record.attempted(attempt, False, str(exc), exc.reason)
                self.metrics.handler_failures.labels(name, exc.reason).inc()
                duration.observe(trio.current_time() - started)
                give_up = attempt == handler.max_attempts
                log.error("handler gave up" if give_up else "handler failed", handler=name, event_id=event.id,
                          entity=event.entity_name, check=event.check_name, attempt=attempt,
                          max_attempts=handler.max_attempts, error=exc)  # fmt: skip
                continue
            duration.observe(trio.current_time() - started)
            record.attempted(attempt, True, run.output)
            # Debug, not info: one line per event handled would be the log's largest cost and volume.
            log.debug("handler ran", handler=name, event_id=event.id, entity=event.entity_name, check=event.check_name,
                     attempt=attempt, status=run.status, output=run.output)  # fmt: skip
            return None
        return error

    def _handler_metrics(self, name: str) -> tuple[Any, Any]:
        """The run counter and duration histogram of handler ``name`` (labelled once, not per run)."""
        return _labelled(self._metrics_of, name, self.metrics.handler_runs, self.metrics.handler_duration)

    async def _attempt(self, handler: Handler, forms: EventForms, payload: bytes) -> HandlerRun:
        """One run of a handler by the first adapter that can; raises StageError when it fails."""
        adapter = self._handler_adapter(handler)
        if adapter is None:
            raise StageError("unsupported", f"handler {handler.metadata.name!r}: no adapter for type {handler.type!r}")
        return await adapter.handle(handler, forms, payload)


def _labelled(kept: dict[str, tuple[Any, Any]], name: str, runs: Any, duration: Any) -> tuple[Any, Any]:
    """``runs`` and ``duration`` labelled with ``name``, kept in ``kept`` (names come from the
    configuration, bounded anyway: emptied past REPORTED_MAX)."""
    found = kept.get(name)
    if found is None:
        if len(kept) >= REPORTED_MAX:
            kept.clear()
        found = kept[name] = (runs.labels(name), duration.labels(name))
    return found
