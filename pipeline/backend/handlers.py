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

Events come as jobs of the outbox (:mod:`pipeline.model.outbox`): each workflow that finishes
(handled, filtered out, or kept as a dead letter) is reported on the ``completions`` channel,
and so is the end of the job, so that a restarted backend runs only what was not done.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import trio

from pipeline import plugins
from pipeline.backend.secrets import command_environment
from pipeline.config import Resources
from pipeline.core.filtering import BUILTIN_FILTERS, CompiledFilter, FilterError
from pipeline.core.templates import RenderError, Template, compile_template, render
from pipeline.core.workflows import Problem, Workflow, workflows_for
from pipeline.errors import SecretUnavailable
from pipeline.logs import get_logger
from pipeline.metrics import BackendMetrics
from pipeline.model import Event, new_event_id
from pipeline.model.deadletter import DeadLetter
from pipeline.model.outbox import Completion, HandlerJob, workflow_key
from pipeline.model.resources import Handler
from pipeline.process import run_command

log = get_logger("backend.handlers")

#: Events waiting for a pipeline worker, at most.
INBOX_SIZE = 1000
#: Events going through their workflows at once.
WORKERS = 32
#: Handler and mutator processes running at once.
MAX_PROCESSES = 16
#: Bytes of handler output kept for the log line.
LOGGED_OUTPUT = 500
#: Distinct pipeline problems remembered, to warn of each once.
REPORTED_MAX = 1000
#: Sensu Go's timeout of tcp and udp handlers without one.
SOCKET_TIMEOUT = 60
#: The first retry waits this long; each next one twice as long, up to RETRY_MAX.
RETRY_BASE, RETRY_MAX = 1.0, 60.0


class StageError(Exception):
    """A mutator or handler failed; ``reason`` labels the metric, the message says what happened."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


@dataclass(slots=True, frozen=True)
class HandlerRun:
    """What one attempt of a handler did, for the log."""

    status: int
    output: str


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
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._resources = resources
        self._completions = completions
        self._dead_letters = dead_letters
        self.metrics = metrics
        self.env = dict(env)
        self.workers = workers
        self.retry_base = retry_base
        self._wall_clock = wall_clock
        self._processes = trio.CapacityLimiter(max_processes)
        self._plugins: dict[str, plugins.HandlerPlugin] = {}
        #: every plugin built, by (handler, plugin, options): checking a change and applying it build it once
        self._built: dict[tuple[str, str, str], plugins.HandlerPlugin] = {}
        self._filters: dict[tuple[str, str], CompiledFilter] = {}
        self._limits: dict[str, trio.CapacityLimiter] = {}
        self.refresh(resources())
        self._templates: dict[str, Template] = {}
        self._reported: set[str] = set()
        self.inbox, self._receive = trio.open_memory_channel[HandlerJob](INBOX_SIZE)
        metrics.queues.watch("handlers_inbox", self.inbox)  # type: ignore[arg-type]
        self._busy = 0
        self._idle = trio.Event()

    def prepare(self, resources: Resources) -> dict[str, plugins.HandlerPlugin]:
        """The plugins of ``resources``, loaded (the ones already loaded are kept); raises HandlerError
        naming a plugin that cannot be loaded, so that a bad change is refused before it applies."""
        loaded = {}
        for handler in resources.handlers:
            if handler.type == "plugin":
                key = (handler.metadata.name, handler.plugin, json.dumps(handler.options, sort_keys=True))
                if key not in self._built:
                    self._built[key] = plugins.load(handler.plugin, handler.options)
                loaded[handler.metadata.name] = self._built[key]
        return loaded

    def refresh(self, resources: Resources) -> None:
        """Use a new set of resources from the next event on."""
        self._plugins = self.prepare(resources)
        in_use = {id(plugin) for plugin in self._plugins.values()}
        self._built = {key: plugin for key, plugin in self._built.items() if id(plugin) in in_use}
        self._filters = {(f.metadata.namespace or "default", f.metadata.name): CompiledFilter.of(f)
                         for f in resources.filters}  # fmt: skip
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
        workflows, problems = workflows_for(event, self._resources())
        self._report(event, problems)
        workflows = [w for w in workflows if workflow_key(w.pipeline, w.name) not in done]
        if not workflows:  # most events: no nursery to open
            await self._complete(Completion(seq))
            return
        remaining = [len(workflows)]

        async def run_one(workflow: Workflow) -> None:
            await self._run_workflow(workflow, event)
            remaining[0] -= 1
            if remaining[0]:  # the last one is recorded with the job's end, in one row
                await self._complete(Completion(seq, workflow_key(workflow.pipeline, workflow.name)))

        async with trio.open_nursery() as nursery:
            for workflow in workflows:
                nursery.start_soon(run_one, workflow)
        await self._complete(Completion(seq))

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

    async def _run_workflow(self, workflow: Workflow, event: Event) -> None:
        for name in workflow.filters:
            if not self._passes(name, workflow, event):
                return
        payload = await self._payload(workflow, event)
        if payload is None:
            return
        error = await self._run_handler(workflow.handler, event, payload)
        if error is not None:
            await self._bury(workflow, event, error)

    async def _payload(self, workflow: Workflow, event: Event) -> bytes | None:
        """The mutated event for the workflow's handler; None when the mutator failed (logged)."""
        if workflow.handler.type == "plugin":
            return b""  # a plugin takes the event itself
        try:
            return await self._mutate(workflow.mutator or "json", event)
        except StageError as exc:
            self.metrics.mutator_failures.labels(workflow.mutator, exc.reason).inc()
            log.error("mutator failed", event_id=event.id, workflow=workflow.name, mutator=workflow.mutator,
                      handler=workflow.handler.metadata.name, error=exc)  # fmt: skip
            return None

    async def _bury(self, workflow: Workflow, event: Event, error: StageError) -> None:
        handler = workflow.handler
        self.metrics.dead_letters.labels(handler.metadata.name).inc()
        if self._dead_letters is None:
            return
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

    async def replay(self, letter: DeadLetter) -> str | None:
        """Send a dead letter's event to its handler again (as configured now, with its retries,
        its filters skipped: they passed the first time). None on success, else the error."""
        resources = self._resources()
        handler = resources.handler(letter.handler, letter.namespace)
        if handler is None or handler.type == "set":
            return f"handler {letter.handler!r} no longer exists"
        workflow = Workflow(letter.workflow, letter.pipeline, (), letter.mutator, handler)
        payload = await self._payload(workflow, letter.event)
        if payload is None:
            return f"mutator {letter.mutator!r} failed"
        error = await self._run_handler(handler, letter.event, payload)
        return None if error is None else str(error)

    def _passes(self, name: str, workflow: Workflow, event: Event) -> bool:
        self.metrics.filter_runs.labels(name).inc()
        with self.metrics.filter_duration.labels(name).time():
            return self._apply_filter(name, workflow, event)

    def _apply_filter(self, name: str, workflow: Workflow, event: Event) -> bool:
        builtin = BUILTIN_FILTERS.get(name)
        try:
            if builtin is not None:
                passed = builtin(event)
            else:
                compiled = self._filters.get((event.namespace or "default", name))
                if compiled is None:
                    raise FilterError(f"no EventFilter {name!r}")
                outcome = compiled.apply(event, self._wall_clock())
                for error in outcome.errors:
                    self.metrics.filter_errors.labels(name).inc()
                    log.error("filter expression failed", event_id=event.id, workflow=workflow.name, filter=name,
                              error=error)  # fmt: skip
                passed = outcome.passed
        except FilterError as exc:
            self.metrics.filter_errors.labels(name).inc()
            log.error("filter failed", event_id=event.id, workflow=workflow.name, filter=name, error=exc)
            return False
        if not passed:
            self.metrics.events_filtered.labels(name).inc()
            log.debug("event filtered", event_id=event.id, workflow=workflow.name, filter=name)
        return passed

    # -- mutators --------------------------------------------------------------------------------

    async def _mutate(self, name: str, event: Event) -> bytes:
        self.metrics.mutator_runs.labels(name).inc()
        if name == "json":
            return event.to_json()
        if name == "only_check_output":
            if event.check is None:
                raise StageError("no_check", "only_check_output: the event has no check")
            return event.check.output.encode()
        mutator = self._resources().mutator(name, event.namespace or "default")
        if mutator is None:
            raise StageError("missing", f"no Mutator {name!r}")
        started = trio.current_time()
        try:
            if mutator.kind == "template":
                try:
                    return render(self._template(mutator.metadata.name, mutator.template), event).encode()
                except RenderError as exc:
                    raise StageError("template", str(exc)) from None
            try:
                env = command_environment(self.env, mutator.env_vars, mutator.secrets, self._resources(),
                                          mutator.metadata.namespace)  # fmt: skip
                async with self._processes:
                    result = await run_command(mutator.command, timeout=mutator.timeout, stdin=event.to_json(), env=env)
            except OSError as exc:
                raise StageError("spawn", f"{mutator.command!r} could not start: {exc}") from None
            except SecretUnavailable as exc:
                raise StageError("secret", str(exc)) from None
            if result.timed_out:
                raise StageError("timeout", f"timed out after {mutator.timeout} s")
            if result.status != 0:
                raise StageError("exit_status", f"exited {result.status}: {result.output[:LOGGED_OUTPUT].strip()}")
            return result.output.encode()
        finally:
            self.metrics.mutator_duration.labels(name).observe(trio.current_time() - started)

    def _template(self, name: str, text: str) -> Template:
        """The compiled template of a mutator (compiled once; the loader has checked its syntax)."""
        cached = self._templates.get(name)
        if cached is None or cached.source != text:
            cached = self._templates[name] = compile_template(text, f"Mutator {name}: spec.template")
        return cached

    # -- handlers --------------------------------------------------------------------------------

    async def _run_handler(self, handler: Handler, event: Event, payload: bytes) -> StageError | None:
        """Run a handler, retrying; None once it succeeds, else the last error."""
        name = handler.metadata.name
        limit = self._limits.get(name)
        error = StageError("never_run", "no attempt made")
        for attempt in range(1, handler.max_attempts + 1):
            if attempt > 1:
                self.metrics.handler_retries.labels(name).inc()
                await trio.sleep(min(self.retry_base * 2 ** (attempt - 2), RETRY_MAX))
            self.metrics.handler_runs.labels(name).inc()
            started = trio.current_time()
            try:
                if limit is not None:
                    async with limit:
                        run = await self._attempt(handler, event, payload)
                else:
                    run = await self._attempt(handler, event, payload)
            except StageError as exc:
                error = exc
                self.metrics.handler_failures.labels(name, exc.reason).inc()
                self.metrics.handler_duration.labels(name).observe(trio.current_time() - started)
                give_up = attempt == handler.max_attempts
                log.error("handler gave up" if give_up else "handler failed", handler=name, event_id=event.id,
                          entity=event.entity_name, check=event.check_name, attempt=attempt,
                          max_attempts=handler.max_attempts, error=exc)  # fmt: skip
                continue
            self.metrics.handler_duration.labels(name).observe(trio.current_time() - started)
            log.info("handler ran", handler=name, event_id=event.id, entity=event.entity_name, check=event.check_name,
                     attempt=attempt, status=run.status, output=run.output)  # fmt: skip
            return None
        return error

    async def _attempt(self, handler: Handler, event: Event, payload: bytes) -> HandlerRun:
        """One run of a handler; raises StageError when it fails."""
        if handler.type == "pipe":
            return await self._attempt_pipe(handler, payload)  # timed from the process start, not the queue
        timeout = handler.timeout or (SOCKET_TIMEOUT if handler.type in ("tcp", "udp") else 0)
        with trio.move_on_after(timeout or math.inf):
            if handler.type == "plugin":
                return await self._attempt_plugin(handler, event)
            if handler.type == "tcp":
                return await self._attempt_tcp(handler, payload)
            return await self._attempt_udp(handler, payload)
        raise StageError("timeout", f"timed out after {timeout} s")

    async def _attempt_plugin(self, handler: Handler, event: Event) -> HandlerRun:
        try:
            await self._plugins[handler.metadata.name].handle(event)
        except Exception as exc:  # a plugin's failure is data: counted, logged, retried
            raise StageError("exception", f"{type(exc).__name__}: {exc}") from None
        return HandlerRun(0, "")

    async def _attempt_pipe(self, handler: Handler, payload: bytes) -> HandlerRun:
        try:
            env = command_environment(self.env, handler.env_vars, handler.secrets, self._resources(),
                                      handler.metadata.namespace)  # fmt: skip
            async with self._processes:
                result = await run_command(handler.command, timeout=handler.timeout, stdin=payload, env=env)
        except OSError as exc:
            raise StageError("spawn", f"{handler.command!r} could not start: {exc}") from None
        except SecretUnavailable as exc:
            raise StageError("secret", str(exc)) from None
        output = result.output[:LOGGED_OUTPUT].strip()
        if result.timed_out:
            raise StageError("timeout", f"timed out after {handler.timeout} s")
        if result.status != 0:
            raise StageError("exit_status", f"exited {result.status}: {output}")
        return HandlerRun(0, output)

    async def _attempt_tcp(self, handler: Handler, payload: bytes) -> HandlerRun:
        assert handler.socket is not None
        address = f"{handler.socket.host}:{handler.socket.port}"
        try:
            stream = await trio.open_tcp_stream(handler.socket.host, handler.socket.port)
            async with stream:
                await stream.send_all(payload)
        except (OSError, trio.BrokenResourceError) as exc:
            raise StageError("connection", f"tcp {address}: {exc}") from None
        return HandlerRun(0, f"wrote {len(payload)} bytes to tcp {address}")

    async def _attempt_udp(self, handler: Handler, payload: bytes) -> HandlerRun:
        assert handler.socket is not None
        address = f"{handler.socket.host}:{handler.socket.port}"
        try:
            infos = await trio.socket.getaddrinfo(handler.socket.host, handler.socket.port, type=trio.socket.SOCK_DGRAM)
            family, kind, proto, _, target = infos[0]
            with trio.socket.socket(family, kind, proto) as sock:
                sent = await sock.sendto(payload, target)
        except OSError as exc:
            raise StageError("connection", f"udp {address}: {exc}") from None
        if sent != len(payload):
            raise StageError("short_write", f"udp {address}: sent {sent} of {len(payload)} bytes")
        return HandlerRun(0, f"sent {len(payload)} bytes to udp {address}")
