"""``pipeline up``, ``pipeline backend`` and ``pipeline agent``: the long-running commands."""

from __future__ import annotations

import argparse
import functools
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import trio

from pipeline import containment, heap, logs
from pipeline.agent.agent import Agent
from pipeline.agent.metrics import AgentMetrics
from pipeline.agent.settings import AgentConfig
from pipeline.agent.sources import SourceSettings, check_source_names
from pipeline.agent.statsd import StatsdConfig
from pipeline.backend.auth import AgentCredentials
from pipeline.backend.server import Backend, BackendConfig
from pipeline.cli import locate
from pipeline.cli.daemon_flags import default_plugin_dirs
from pipeline.config import load_directory
from pipeline.errors import (
    ConfigError,
    ConfigErrors,
    ContainmentError,
    DataDirInUse,
    HandlerError,
    StoreError,
    UnknownSource,
)
from pipeline.fd_limit import raise_open_files_limit
from pipeline.metrics import BackendMetrics
from pipeline.tls import TLSFiles

log = logs.get_logger("cli")
T = TypeVar("T")


def _flat(lists: list[list[T]]) -> list[T]:
    return list(dict.fromkeys(item for items in lists for item in items))


def _source_settings(args: argparse.Namespace, data_dir: Path | None) -> SourceSettings:
    """What the host sources are given; their resume points live beside the spool (``<data>/sources``)."""
    return SourceSettings(
        docker_socket=args.docker_socket,
        kubeconfig=args.kubeconfig,
        package_paths=_flat(args.package_paths),
        package_interval=args.package_interval,
        state_dir=None if data_dir is None else data_dir / "sources",
    )


def refused_agent_flags(args: argparse.Namespace) -> int | None:
    """2 (argparse's status for a bad flag) after one line naming an unknown ``--source`` or
    agent credentials given by halves or twice, else None."""
    try:
        check_source_names(_flat(args.sources))
    except UnknownSource as exc:
        print(f"pipeline {args.command}: error: {exc}", file=sys.stderr)
        return 2
    if (problem := credentials_problem(args)) is not None:
        print(f"pipeline {args.command}: error: {problem}", file=sys.stderr)
        return 2
    return None


def credentials_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the agent's credentials flags: one was used and the other dropped
    (``--token`` won over ``--user``), or a password went without its user (ignored) or a user
    without a password (refused by every backend)."""
    token, user, password = (getattr(args, name, None) for name in ("token", "user", "password"))
    if token is not None and (user is not None or password is not None):
        return "give --token or --user with --password, not both"
    if (user is None) != (password is None):
        return "--user and --password go together"
    return None


def _statsd_config(args: argparse.Namespace) -> StatsdConfig | None:
    if args.statsd_addr is None:
        return None
    return StatsdConfig(
        addr=args.statsd_addr,
        flush_interval=args.statsd_flush_interval,
        percentiles=args.statsd_percentiles,
        delete_idle=args.statsd_delete_idle,
        event_handlers=args.statsd_event_handlers,
        max_keys=args.statsd_max_keys,
    )


def _backend_config(args: argparse.Namespace) -> BackendConfig:
    resources = load_directory(args.config)
    return BackendConfig(
        data_dir=args.data,
        resources=resources,
        api_addr=args.api_addr,
        transport_addr=args.transport_addr,
        plugin_dirs=args.plugin_dirs or default_plugin_dirs(),
        admin_keys=args.admin_key,
        ingest_keys=args.ingest_key,
        viewer_keys=args.viewer_key,
        change_handlers=args.change_handlers,
        api_users=args.api_user,
        access_token_expiry=args.access_token_expiry,
        refresh_token_expiry=args.refresh_token_expiry,
        max_body_size=args.max_body_size,
        agent_credentials=AgentCredentials(
            users=dict(getattr(args, "agent_user", [])), tokens=tuple(getattr(args, "agent_token", []))
        ),
        tls=_tls_files(args),
        config_dir=args.config,
        name=args.backend_name,
        store=args.store,
    )


def _tls_files(args: argparse.Namespace) -> TLSFiles:
    return TLSFiles(getattr(args, "cert_file", None), getattr(args, "key_file", None),
                    getattr(args, "trusted_ca_file", None))  # fmt: skip


def _credentials(args: argparse.Namespace) -> dict[str, str]:
    """The agent's credentials; ValueError for flags given by halves or twice (a reload's file)."""
    if (problem := credentials_problem(args)) is not None:
        raise ValueError(problem)
    if getattr(args, "token", None):
        return {"token": args.token}
    if getattr(args, "user", None):
        return {"user": args.user, "password": args.password}
    return {}


def _agent_config(
    args: argparse.Namespace, backend_addrs: list[tuple[str, int]], default_subs: list[str], data_dir: Path
) -> AgentConfig:
    return AgentConfig(
        name=args.agent_name,
        namespace=args.namespace,
        backend_addrs=backend_addrs,
        subscriptions=args.subscriptions if args.subscriptions is not None else default_subs,
        labels=args.labels,
        annotations=args.annotations,
        plugin_dirs=args.plugin_dirs or default_plugin_dirs(),
        api_addr=args.agent_api_addr,
        statsd=_statsd_config(args),
        data_dir=data_dir,
        spool_max_bytes=args.spool_max_bytes,
        socket_addr=args.agent_socket_addr,
        keepalive_interval=args.keepalive_interval,
        keepalive_warning_timeout=args.keepalive_warning_timeout,
        keepalive_critical_timeout=args.keepalive_critical_timeout,
        keepalive_handlers=args.keepalive_handlers,
        heartbeat_interval=getattr(args, "heartbeat_interval", 5.0),
        heartbeat_timeout=getattr(args, "heartbeat_timeout", 15.0),
        credentials=_credentials(args),
        tls=_tls_files(args),
        redact=args.redact,
        deregister=args.deregister,
        deregistration_handler=args.deregistration_handler,
        sources=_flat(args.sources),
        source_settings=_source_settings(args, data_dir),
    )


Stopper = Callable[[], Awaitable[None]]
#: How long a clean stop may take: the agent waiting for the ack of agent_stopped (AGENT_STOP),
#: the backend letting its handlers finish (BackendConfig.handler_drain, 10 s by default).
STOP_GRACE = 15.0
AGENT_STOP = 4.0


@dataclass(slots=True)
class Controls:
    """What a running daemon does on SIGTERM/SIGINT (``stop``, then it is cancelled) and SIGHUP (``reload``)."""

    stop: Stopper | None = None
    reload: Callable[[], Awaitable[None]] | None = None


async def _until_signalled(main: Callable[[trio.Nursery], Awaitable[Controls]]) -> None:
    """Run ``main`` until SIGINT/SIGTERM, let its stopper finish (bounded), then stop everything;
    SIGHUP reloads the configuration (the default action of SIGHUP would end the process)."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async with trio.open_nursery() as nursery:
            controls = Controls()

            async def on_signal() -> None:
                async for signum in signals:
                    if signum == signal.SIGHUP:
                        await _reload(controls)
                        continue
                    log.info("stopping", signal=signal.Signals(signum).name)
                    if controls.stop is not None:
                        with trio.move_on_after(STOP_GRACE):
                            await controls.stop()
                    nursery.cancel_scope.cancel()
                    return

            nursery.start_soon(on_signal)
            started = await main(nursery)
            controls.stop, controls.reload = started.stop, started.reload


async def _reload(controls: Controls) -> None:
    if controls.reload is None:
        log.warning("SIGHUP before the daemon was ready: nothing reloaded")
        return
    log.info("reloading", signal="SIGHUP")
    await controls.reload()


def run_daemon(args: argparse.Namespace, main: Callable[[trio.Nursery], Awaitable[Controls]]) -> int:
    """Run until signalled; a port in use or an unusable store is one clear line and exit 1."""
    logs.configure(args.log_level)
    if (raised := raise_open_files_limit()) is not None:
        log.info("open files limit raised", soft=raised[0], to=raised[1])
    try:
        containment.current()  # chosen and logged once, before any command runs
    except ContainmentError as exc:
        print(f"pipeline: cannot run: {exc}", file=sys.stderr)
        return 1
    failures: list[BaseException] = []
    try:
        trio.run(_until_signalled, main)
    except* (OSError, StoreError, HandlerError, ValueError, DataDirInUse) as group:
        failures = _leaves(group)
    finally:
        locate.forget_running()
    for error in failures:
        print(f"pipeline: cannot run: {error}", file=sys.stderr)
    return 1 if failures else 0


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    leaves: list[BaseException] = []
    for error in group.exceptions:
        leaves.extend(_leaves(error) if isinstance(error, BaseExceptionGroup) else [error])
    return leaves


def cmd_backend(args: argparse.Namespace) -> int:
    try:
        config = _backend_config(args)
    except ConfigErrors as exc:
        return _config_failed(exc)

    async def main(nursery: trio.Nursery) -> Controls:
        backend = Backend(config)
        addresses = await nursery.start(backend.run)
        locate.record_running(addresses.api_url, config.data_dir)
        heap.settle()
        return Controls(stop=backend.stop, reload=functools.partial(_reload_backend, backend))

    return run_daemon(args, main)


async def _reload_backend(backend: Backend) -> None:
    await backend.reload()  # the backend logs what changed, or every error


async def _reload_agent(
    agent: Agent, args: argparse.Namespace, make_config: Callable[[argparse.Namespace], AgentConfig]
) -> None:
    """Read the agent's settings again (its ``--config-file``, under the command line's flags) and
    apply what can change at run time; a broken file or contradicting settings change nothing."""
    try:
        fresh: argparse.Namespace = await trio.to_thread.run_sync(args.reread)
        agent.reload(make_config(fresh))
    except (ConfigError, ValueError) as exc:
        agent.metrics.config_reloads.labels("failed").inc()
        log.error("agent configuration not reloaded: the running settings stay", error=exc)
        return
    agent.metrics.config_reloads.labels("applied").inc()


def _standalone_agent_config(args: argparse.Namespace) -> AgentConfig:
    return _agent_config(args, args.backend_addr or [("127.0.0.1", 8081)], [], args.data)


def cmd_agent(args: argparse.Namespace) -> int:
    if (refused := refused_agent_flags(args)) is not None:
        return refused
    config = _standalone_agent_config(args)

    async def main(nursery: trio.Nursery) -> Controls:
        agent = Agent(config)
        await nursery.start(agent.run)
        heap.settle()

        async def stop() -> None:
            with trio.move_on_after(AGENT_STOP):
                await agent.stop()

        return Controls(stop=stop, reload=functools.partial(_reload_agent, agent, args, _standalone_agent_config))

    return run_daemon(args, main)


def cmd_up(args: argparse.Namespace) -> int:
    if (refused := refused_agent_flags(args)) is not None:
        return refused
    try:
        backend_config = _backend_config(args)
    except ConfigErrors as exc:
        return _config_failed(exc)

    async def main(nursery: trio.Nursery) -> Controls:
        # One process, one /metrics: the agent's metrics join the backend's registry.
        backend_metrics = BackendMetrics.create()
        agent_metrics = AgentMetrics.create(backend_metrics.registry, backend_metrics.queues)
        backend = Backend(backend_config, backend_metrics)
        addresses = await nursery.start(backend.run)
        locate.record_running(addresses.api_url, backend_config.data_dir)

        def up_agent_config(settings: argparse.Namespace) -> AgentConfig:
            return _agent_config(settings, [addresses.transport], ["system"], settings.data / "agent")

        agent_config = up_agent_config(args)
        agent = Agent(agent_config, agent_metrics)
        await nursery.start(agent.run)
        heap.settle()
        print(f"pipeline is up: API {addresses.api_url}, agent {agent_config.name!r}", file=sys.stderr, flush=True)

        async def stop() -> None:
            with trio.move_on_after(AGENT_STOP):
                await agent.stop()
            await backend.stop()

        async def reload() -> None:
            await backend.reload()
            await _reload_agent(agent, args, up_agent_config)

        return Controls(stop=stop, reload=reload)

    return run_daemon(args, main)


def _config_failed(exc: ConfigErrors) -> int:
    for error in exc.errors:
        print(error, file=sys.stderr)
    print(f"pipeline: refusing to start: {len(exc.errors)} configuration error(s)", file=sys.stderr)
    return 1
