"""The backend daemon: store, event processor, handlers, agent transport and HTTP API.

The store lives in the outer scope and the listeners and workers inside, so that shutdown
stops taking work before the store is closed.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

import trio

from pipeline.backend.api import EntityService, ReplayResult, create_app
from pipeline.backend.auth import AgentCredentials
from pipeline.backend.auth_http import RequireKey, key_routes
from pipeline.backend.eventd import EventProcessor
from pipeline.backend.handlers import HandlerRunner
from pipeline.backend.keys import ADMIN, ApiKeys, digest, new_key
from pipeline.backend.liveness import Liveness
from pipeline.backend.push_api import push_routes
from pipeline.backend.resources import ResourceService
from pipeline.backend.silences import Silences
from pipeline.backend.throttle import AuthGuard
from pipeline.backend.transport import TransportServer
from pipeline.config import Resources
from pipeline.errors import HandlerError, StoreError, ValidationError
from pipeline.http import Limits, serve_app
from pipeline.logs import get_logger
from pipeline.metrics import BackendMetrics
from pipeline.model import CheckConfig
from pipeline.model.check import HookConfig
from pipeline.model.deadletter import DeadLetter
from pipeline.process import plugin_environment
from pipeline.store.sqlite import SQLiteStore
from pipeline.tls import TLSFiles, server_context

log = get_logger("backend")

#: The admin API key a backend without any creates in its data directory.
ADMIN_KEY_FILE = "admin.key"


@dataclass(slots=True)
class BackendConfig:
    data_dir: Path
    resources: Resources
    api_addr: tuple[str, int] = ("127.0.0.1", 8080)
    transport_addr: tuple[str, int] = ("127.0.0.1", 8081)
    plugin_dirs: list[Path] = field(default_factory=list)
    name: str = field(default_factory=socket.gethostname)
    agent_credentials: AgentCredentials = field(default_factory=AgentCredentials)
    #: API keys: admin (everything) and ingest (pushing events only)
    admin_keys: list[str] = field(default_factory=list)
    ingest_keys: list[str] = field(default_factory=list)
    #: handlers of pushed change events
    change_handlers: list[str] = field(default_factory=list)
    max_body_size: int = 1024 * 1024
    #: users who may get a bearer token from /auth (admin role)
    api_users: list[tuple[str, str]] = field(default_factory=list)
    tls: TLSFiles = field(default_factory=TLSFiles)


@dataclass(slots=True, frozen=True)
class BackendAddresses:
    api: tuple[str, int]
    transport: tuple[str, int]

    @property
    def api_url(self) -> str:
        return f"http://{self.api[0]}:{self.api[1]}"


class Backend:
    def __init__(
        self,
        config: BackendConfig,
        metrics: BackendMetrics | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics or BackendMetrics.create()
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = SQLiteStore(config.data_dir / "events.db")
        self.resource_service = ResourceService(config.resources, self.store, check=self._check_resources,
                                                changed=self._resources_changed)  # fmt: skip
        self.transport: TransportServer | None = None
        env = plugin_environment(config.plugin_dirs)
        env["PIPELINE_DATA_DIR"] = str(config.data_dir.resolve())
        self.handlers = HandlerRunner(lambda: self.resources, self.metrics, env, dead_letters=self._keep_dead_letter)
        self.keys = ApiKeys.of(config.admin_keys, config.ingest_keys, config.api_users)
        self.admin_key = self._admin_key_file()
        self.silences = Silences(self.store, self.metrics, config.resources.silences)
        self.eventd = EventProcessor(self.store, self.metrics, self.handlers.inbox, silences=self.silences)
        self.liveness = Liveness(self.eventd, self.store, self.metrics)
        self._ssl = server_context(config.tls) if config.tls.any else None
        self._transport().check_exposure()  # refuse a bad setup before anything starts

    @property
    def resources(self) -> Resources:
        return self.resource_service.current

    def _check_resources(self, resources: Resources) -> None:
        try:
            self.handlers.prepare(resources)
        except HandlerError as exc:
            raise ValidationError("spec.plugin", str(exc)) from None

    async def _resources_changed(self, resources: Resources) -> None:
        self.handlers.refresh(resources)
        if self.transport is not None:
            await self.transport.broadcast_checks()

    async def execute_check(self, namespace: str, name: str, subscriptions: list[str] | None) -> int | None:
        """Run a check once now on the agents of ``subscriptions`` (the check's own by default):
        Sensu's ad hoc execution. None when there is no such check; else how many agents were asked."""
        check: CheckConfig | None = self.resource_service.get("CheckConfig", namespace, name)
        if check is None or self.transport is None:
            return None
        hooks = self.resources.hooks_for([check])
        return await self.transport.execute(
            check, hooks, check.subscriptions if subscriptions is None else subscriptions
        )

    def checks_for(self, subscriptions: list[str], namespace: str) -> tuple[list[CheckConfig], list[HookConfig]]:
        """The checks an agent with these subscriptions runs, and the hooks they name."""
        checks = self.resources.checks_for(subscriptions, namespace)
        return checks, self.resources.hooks_for(checks)

    async def run(self, *, task_status: trio.TaskStatus[BackendAddresses] = trio.TASK_STATUS_IGNORED) -> None:
        await trio.to_thread.run_sync(self.store.open)
        try:
            self.keys.stored = {k.digest: k for k in await trio.to_thread.run_sync(self.store.list_api_keys)}
            await self.resource_service.load()
            self.handlers.refresh(self.resources)
            await self.eventd.load_state()
            await self.silences.load()
            self.liveness.load(self.eventd.checks)
            async with trio.open_nursery() as nursery:
                await nursery.start(self.handlers.run)
                await nursery.start(self.eventd.run)
                await nursery.start(self.liveness.run)
                self.transport = self._transport()
                transport_addr = await nursery.start(self.transport.run)
                api_addr = await nursery.start(self._serve_http)
                addresses = BackendAddresses(api=api_addr, transport=transport_addr)
                log.info("backend ready", api=addresses.api_url, transport=f"{transport_addr[0]}:{transport_addr[1]}")
                task_status.started(addresses)
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self.store.close)
            log.info("backend stopped")

    async def delete_event(self, namespace: str, entity: str, check: str) -> bool:
        """Delete a check's latest event and forget its state (the event log keeps its past)."""
        deleted = await trio.to_thread.run_sync(self.store.delete_event, namespace, entity, check)
        if deleted:
            self.eventd.checks.pop((namespace, entity, check), None)
            self.liveness.ttls.cancel((namespace, entity, check))
            log.info("event deleted", entity=entity, check=check, namespace=namespace)
        return deleted

    async def _keep_dead_letter(self, letter: DeadLetter) -> None:
        try:
            await trio.to_thread.run_sync(self.store.put_dead_letter, letter)
        except StoreError as exc:
            log.error("dead letter lost: the store failed", letter=letter.id, event_id=letter.event.id, error=exc)

    async def replay_dead_letter(self, letter_id: str) -> ReplayResult | None:
        """Hand a dead letter to its handler again; on success it is deleted. None if unknown."""
        letter = await trio.to_thread.run_sync(self.store.get_dead_letter, letter_id)
        if letter is None:
            return None
        error = await self.handlers.replay(letter)
        if error is None:
            await trio.to_thread.run_sync(self.store.delete_dead_letter, letter_id)
            log.info("dead letter replayed", letter=letter_id, handler=letter.handler, event_id=letter.event.id)
            return ReplayResult(letter_id, True, "")
        letter.error = error
        letter.attempts += 1
        await trio.to_thread.run_sync(self.store.put_dead_letter, letter)
        log.warning("dead letter replay failed", letter=letter_id, handler=letter.handler, error=error)
        return ReplayResult(letter_id, False, error)

    def _transport(self) -> TransportServer:
        return TransportServer(
            *self.config.transport_addr,
            self.eventd,
            self.checks_for,
            self.metrics,
            liveness=self.liveness,
            credentials=self.config.agent_credentials,
            ssl_context=self._ssl,
            name=self.config.name,
        )

    async def _serve_http(self, *, task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED) -> None:
        entities = EntityService(last_seen=self.liveness.last_seen, deregister=self.liveness.deregister)
        guard = AuthGuard(self.metrics)  # one throttle for logins, API keys and ingest keys alike
        push = push_routes(self.eventd.offer, self.metrics, lambda key: self.keys.role_of_key(key) is not None,
                           guard, change_handlers=self.config.change_handlers)  # fmt: skip
        routes = [*key_routes(self.keys, self.store, guard), *push]
        app = create_app(self.store, self.eventd.offer, self.metrics, entities=entities,
                         replay=self.replay_dead_letter, extra_routes=routes,
                         delete_event=self.delete_event, silences=self.silences,
                         resources=self.resource_service, execute=self.execute_check)  # fmt: skip
        await serve_app(RequireKey(app, self.keys, self.metrics, guard), self.config.api_addr,
                        limits=Limits(max_body=self.config.max_body_size), metrics=self.metrics.http,
                        task_status=task_status)  # fmt: skip

    def _admin_key_file(self) -> str | None:
        """``<data>/admin.key``: read if there; created (mode 0600) when no admin key or user is configured."""
        path = self.config.data_dir / ADMIN_KEY_FILE
        if path.exists():
            key = path.read_text().strip()
        elif self.config.admin_keys or self.config.api_users:
            return None
        else:
            key = new_key()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(key + "\n")
            log.info("admin API key created", path=str(path))
        self.keys.configured[digest(key)] = ADMIN
        return key
