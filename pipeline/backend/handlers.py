"""Run the handlers an event names, each isolated from the others.

For now handlers come from the legacy lists ``check.handlers`` and ``metrics.handlers``, as
Sensu Go's legacy pipeline builds them: de-duplicated and sorted by name, missing handlers
logged and skipped. A ``pipe`` handler gets the event as Sensu Go v2 JSON on stdin. A bounded
pool of workers takes events; a capacity limiter bounds how many handler processes run at
once. A failing handler is logged and counted and never stops another.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import trio

from pipeline import plugins
from pipeline.config import Resources
from pipeline.logs import get_logger
from pipeline.metrics import BackendMetrics
from pipeline.model import Event
from pipeline.model.resources import Handler
from pipeline.process import run_command, with_env_vars

log = get_logger("backend.handlers")

#: Events waiting for a handler worker, at most.
INBOX_SIZE = 1000
#: Events being handled at once.
WORKERS = 32
#: Handler processes running at once.
MAX_PROCESSES = 16
#: Bytes of handler output kept for the log line.
LOGGED_OUTPUT = 500


def handler_names(event: Event) -> list[str]:
    """The legacy handler names of an event: check and metrics handlers, unique, sorted."""
    names: set[str] = set()
    if event.check is not None:
        names.update(event.check.handlers)
    if event.metrics is not None:
        names.update(event.metrics.handlers)
    return sorted(names)


class HandlerRunner:
    def __init__(
        self,
        resources: Callable[[], Resources],
        metrics: BackendMetrics,
        env: Mapping[str, str],
        *,
        workers: int = WORKERS,
        max_processes: int = MAX_PROCESSES,
    ) -> None:
        self._resources = resources
        self.metrics = metrics
        self.env = dict(env)
        self.workers = workers
        self._processes = trio.CapacityLimiter(max_processes)
        self._plugins = {
            h.metadata.name: plugins.load(h.plugin, h.options) for h in resources().handlers if h.type == "plugin"
        }
        self.inbox, self._receive = trio.open_memory_channel[Event](INBOX_SIZE)
        metrics.queues.watch("handlers_inbox", self.inbox)  # type: ignore[arg-type]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(self.workers):
                nursery.start_soon(self._worker, self._receive.clone())
            await self._receive.aclose()
            task_status.started()

    async def _worker(self, receive: trio.MemoryReceiveChannel[Event]) -> None:
        async with receive:
            async for event in receive:
                await self.handle(event)

    async def handle(self, event: Event) -> None:
        """Run every handler the event names, concurrently, each isolated from the others."""
        resources = self._resources()
        namespace = event.namespace or "default"
        handlers = []
        for name in handler_names(event):
            handler = resources.handler(name, namespace)
            if handler is None:
                self.metrics.handler_failures.labels(name, "missing").inc()
                log.warning("handler not found", handler=name, namespace=namespace, event_id=event.id)
            else:
                handlers.append(handler)
        if not handlers:
            return
        payload = event.to_json()
        async with trio.open_nursery() as nursery:
            for handler in handlers:
                nursery.start_soon(self._run_handler, handler, event, payload)

    async def _run_handler(self, handler: Handler, event: Event, payload: bytes) -> None:
        name = handler.metadata.name
        self.metrics.handler_runs.labels(name).inc()
        if handler.type == "plugin":
            await self._run_plugin(handler, event)
            return
        env = with_env_vars(self.env, handler.env_vars)
        try:
            async with self._processes:
                result = await run_command(handler.command, timeout=handler.timeout, stdin=payload, env=env)
        except OSError as exc:
            self.metrics.handler_failures.labels(name, "spawn").inc()
            log.error("handler could not start", handler=name, event_id=event.id, error=exc)
            return
        self._report(
            name, event, result.duration, result.status, result.timed_out, result.output[:LOGGED_OUTPUT].strip()
        )

    async def _run_plugin(self, handler: Handler, event: Event) -> None:
        """An in-process plugin: its exception is its failure; it never stops another handler."""
        name = handler.metadata.name
        started = trio.current_time()
        status, output = 0, ""
        with trio.move_on_after(handler.timeout or math.inf) as scope:
            try:
                await self._plugins[name].handle(event)
            except Exception as exc:  # a plugin's failure is data, counted and logged
                status, output = 1, f"{type(exc).__name__}: {exc}"
        timed_out = scope.cancelled_caught
        duration = trio.current_time() - started
        self._report(name, event, duration, 2 if timed_out else status, timed_out, output, failure="exception")

    def _report(
        self,
        name: str,
        event: Event,
        duration: float,
        status: int,
        timed_out: bool,
        output: str,
        *,
        failure: str = "exit_status",
    ) -> None:
        self.metrics.handler_duration.labels(name).observe(duration)
        fields = {
            "handler": name,
            "event_id": event.id,
            "entity": event.entity_name,
            "check": event.check_name,
            "status": status,
            "duration": f"{duration:.3f}",
            "output": output,
        }
        if timed_out:
            self.metrics.handler_failures.labels(name, "timeout").inc()
            log.error("handler timed out", **fields)
        elif status != 0:
            self.metrics.handler_failures.labels(name, failure).inc()
            log.error("handler failed", **fields)
        else:
            log.info("handler ran", **fields)
