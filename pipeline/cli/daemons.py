"""``pipeline up``, ``pipeline backend`` and ``pipeline agent``: the long-running commands."""

from __future__ import annotations

import argparse
import functools
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import trio

from pipeline import containment, logs
from pipeline.agent.agent import Agent
from pipeline.agent.settings import AgentConfig
from pipeline.agent.sources import SourceSettings, check_source_names
from pipeline.agent.statsd import StatsdConfig
from pipeline.backend.auth import AgentCredentials, parse_user
from pipeline.backend.server import Backend, BackendConfig
from pipeline.backend.sessions import (
    ACCESS_LIFETIME,
    MAX_ACCESS_LIFETIME,
    MAX_REFRESH_LIFETIME,
    REFRESH_LIFETIME,
    parse_lifetime,
)
from pipeline.cli import locate
from pipeline.cli.addresses import (
    parse_address,
    parse_floats,
    parse_list,
    parse_optional_address,
    parse_pairs,
    positive_float,
)
from pipeline.config import load_directory
from pipeline.core.keepalive import DEFAULT_CRITICAL_TIMEOUT, DEFAULT_INTERVAL, DEFAULT_WARNING_TIMEOUT
from pipeline.core.redact import DEFAULT_REDACT
from pipeline.core.statsd.aggregate import DEFAULT_MAX_KEYS
from pipeline.defaults import CONFIG_DIR
from pipeline.errors import ConfigError, ConfigErrors, ContainmentError, HandlerError, StoreError, UnknownSource
from pipeline.metrics import AgentMetrics, BackendMetrics
from pipeline.tls import TLSFiles


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, got {text}")
    return value


log = logs.get_logger("cli")
T = TypeVar("T")

SOURCE_TREE = Path(__file__).resolve().parents[2]


def default_plugin_dirs() -> list[Path]:
    """The source tree's ``checks/``, ``handlers/`` and ``hooks/``, where they exist."""
    return [d for d in (SOURCE_TREE / name for name in ("checks", "handlers", "hooks")) if d.is_dir()]


def add_backend_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=CONFIG_DIR,
                        help=f"resource directory (default: the one shipped in the package, {CONFIG_DIR})")  # fmt: skip
    parser.add_argument("--data", type=Path, default=Path("data"), help="data directory (default: ./data)")
    parser.add_argument("--api-addr", type=parse_address, default=("127.0.0.1", 8080), help="HTTP API and /metrics")
    parser.add_argument("--transport-addr", type=parse_address, default=("127.0.0.1", 8081), help="agent transport")
    parser.add_argument(
        "--admin-key",
        action="append",
        default=_env_list("PIPELINE_ADMIN_KEYS"),
        help="an API key of role admin (repeatable; also PIPELINE_ADMIN_KEYS, comma-separated)",
    )
    parser.add_argument(
        "--ingest-key",
        action="append",
        default=_env_list("PIPELINE_INGEST_KEYS"),
        help="an API key that may only push events (repeatable; also PIPELINE_INGEST_KEYS)",
    )
    parser.add_argument(
        "--viewer-key",
        action="append",
        default=_env_list("PIPELINE_VIEWER_KEYS"),
        help="an API key that may only read: the API's GETs, the dashboard without its buttons "
        "(repeatable; also PIPELINE_VIEWER_KEYS)",
    )
    parser.add_argument(
        "--api-user",
        type=parse_user,
        action="append",
        default=[],
        metavar="USER:PASSWORD",
        help="a user who may get a bearer token from GET /auth (admin role; repeatable)",
    )
    parser.add_argument("--access-token-expiry", type=_lifetime(MAX_ACCESS_LIFETIME), default=ACCESS_LIFETIME,
                        metavar="DURATION", help="how long an access token from /auth lasts (default 5m)")  # fmt: skip
    parser.add_argument("--refresh-token-expiry", type=_lifetime(MAX_REFRESH_LIFETIME), default=REFRESH_LIFETIME,
                        metavar="DURATION", help="how long a refresh token from /auth lasts (720m)")  # fmt: skip
    parser.add_argument(
        "--change-handlers",
        type=parse_list,
        default=[],
        help="handlers of pushed change events (deployments, boots ...)",
    )
    parser.add_argument(
        "--max-body-size", type=int, default=1024 * 1024, help="largest HTTP body accepted, in bytes (1 MiB)"
    )


def _lifetime(most: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            return parse_lifetime(text, most)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def _env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def add_backend_security_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--agent-user",
        type=parse_user,
        action="append",
        default=[],
        metavar="USER:PASSWORD",
        help="an agent login (repeatable); without any login or token, agents are accepted on loopback only",
    )
    parser.add_argument("--agent-token", action="append", default=[], help="an agent token (repeatable)")
    add_tls_flags(parser, "the backend's certificate", "CA that agent certificates must be signed by (mutual TLS)")


def add_tls_flags(parser: argparse.ArgumentParser, cert: str, ca: str) -> None:
    parser.add_argument("--cert-file", type=Path, help=f"PEM file of {cert} (enables TLS)")
    parser.add_argument("--key-file", type=Path, help="PEM file of its private key")
    parser.add_argument("--trusted-ca-file", type=Path, help=f"PEM file of the {ca}")


def add_agent_connection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend-addr",
        type=parse_address,
        action="append",
        help="backend transport HOST:PORT (repeatable: tried in turn; default 127.0.0.1:8081)",
    )
    parser.add_argument("--user", help="agent login, with --password")
    parser.add_argument("--password", help="agent password")
    parser.add_argument("--token", help="agent token configured on the backend")
    parser.add_argument("--heartbeat-interval", type=positive_float, default=5.0, help="seconds between pings (5)")
    parser.add_argument(
        "--heartbeat-timeout", type=positive_float, default=15.0, help="seconds of silence that end a connection (15)"
    )
    add_tls_flags(parser, "the agent's client certificate (mutual TLS)", "CA that signed the backend's certificate")


def add_agent_flags(parser: argparse.ArgumentParser, *, prefix: str = "") -> None:
    parser.add_argument(f"--{prefix}name", dest="agent_name", default=socket.gethostname(), help="entity name")
    parser.add_argument("--namespace", default="default", help="the namespace of the agent's entity (default)")
    parser.add_argument("--subscriptions", type=parse_list, default=None, help="comma-separated subscriptions")
    parser.add_argument("--labels", type=parse_pairs, default={}, help="entity labels as k=v,k2=v2")
    parser.add_argument("--annotations", type=parse_pairs, default={}, help="entity annotations as k=v,k2=v2")
    parser.add_argument(
        f"--{prefix}api-addr",
        dest="agent_api_addr",
        type=parse_optional_address,
        default=("127.0.0.1", 3031),
        help="agent HTTP API (/healthz, /metrics); empty disables it (default 127.0.0.1:3031)",
    )
    parser.add_argument(
        f"--{prefix}socket-addr",
        dest="agent_socket_addr",
        type=parse_optional_address,
        default=("127.0.0.1", 3030),
        help="Sensu client socket, TCP and UDP; empty disables it (default 127.0.0.1:3030)",
    )
    parser.add_argument("--keepalive-interval", type=positive_int, default=DEFAULT_INTERVAL, help="seconds (20)")
    parser.add_argument(
        "--keepalive-warning-timeout",
        type=non_negative_int,
        default=DEFAULT_WARNING_TIMEOUT,
        help="seconds of silence before the keepalive warns; 0 never (120)",
    )
    parser.add_argument(
        "--keepalive-critical-timeout",
        type=non_negative_int,
        default=DEFAULT_CRITICAL_TIMEOUT,
        help="seconds of silence before the keepalive is critical; 0 never (240)",
    )
    parser.add_argument("--keepalive-handlers", type=parse_list, default=[], help="handlers of keepalive events")
    parser.add_argument(
        "--redact", type=parse_list, default=list(DEFAULT_REDACT), help="label and annotation keys to mask"
    )
    parser.add_argument("--deregister", action="store_true", help="remove this agent's entity when it stops cleanly")
    parser.add_argument("--deregistration-handler", default="", help="handler of the deregistration event")


def add_source_flags(parser: argparse.ArgumentParser) -> None:
    """The host sources (``--source``, repeatable, comma-separated too) and where they look."""
    defaults = SourceSettings()
    parser.add_argument(
        "--source",
        dest="sources",
        type=parse_list,
        action="append",
        default=[],
        metavar="NAME",
        help="switch on a source of host events: oom, packages, docker, kubernetes (repeatable)",
    )
    parser.add_argument(
        "--docker-socket",
        type=Path,
        default=defaults.docker_socket,
        help=f"the Docker Engine's unix socket (default {defaults.docker_socket})",
    )
    parser.add_argument(
        "--kubeconfig", type=Path, default=None, help="kubeconfig of the cluster (default: in-cluster service account)"
    )
    parser.add_argument(
        "--package-paths",
        type=parse_paths,
        action="append",
        default=[],
        help="Python site-packages and Node prefixes the packages source watches (repeatable, comma-separated)",
    )
    parser.add_argument(
        "--package-interval",
        type=positive_float,
        default=defaults.package_interval,
        help=f"seconds between two looks of the packages source (default {defaults.package_interval:g})",
    )


def parse_paths(text: str) -> list[Path]:
    return [Path(item) for item in parse_list(text)]


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


def refused_sources(args: argparse.Namespace) -> int | None:
    """2 (argparse's status for a bad flag) after one line naming an unknown ``--source``, else None."""
    try:
        check_source_names(_flat(args.sources))
    except UnknownSource as exc:
        print(f"pipeline {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return None


def add_spool_flags(parser: argparse.ArgumentParser, *, data: bool) -> None:
    if data:
        parser.add_argument(
            "--data", type=Path, default=Path("data"), help="data directory, for the spool (default ./data)"
        )
    parser.add_argument(
        "--spool-max-bytes",
        type=int,
        default=256 * 1024 * 1024,
        help="bytes of unacknowledged events kept on disk; past that the oldest are dropped and counted (256 MiB)",
    )


def add_statsd_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--statsd-addr",
        type=parse_optional_address,
        default=("127.0.0.1", 8125),
        help="StatsD UDP HOST:PORT, [::1]:PORT for IPv6; empty disables it (default 127.0.0.1:8125)",
    )
    parser.add_argument("--statsd-flush-interval", type=positive_float, default=10.0, help="seconds (default 10)")
    parser.add_argument(
        "--statsd-percentiles", type=parse_floats, default=[90.0], help="comma-separated, e.g. 90,99 (default 90)"
    )
    parser.add_argument(
        "--statsd-delete-idle", action="store_true", help="forget idle metrics after a flush (etsy's deleteIdleStats)"
    )
    parser.add_argument("--statsd-event-handlers", type=parse_list, default=[], help="handlers of the metric events")
    parser.add_argument(
        "--statsd-max-keys",
        type=positive_int,
        default=DEFAULT_MAX_KEYS,
        help="distinct StatsD keys held at once; samples of new keys beyond it are dropped and counted"
        f" (default {DEFAULT_MAX_KEYS})",
    )


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


def add_common_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plugin-dir",
        type=Path,
        action="append",
        dest="plugin_dirs",
        help="directory put first on PATH for checks and handlers (repeatable; default: the source tree's "
        "checks/, handlers/ and hooks/)",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                        help="the least important log lines written (info)")  # fmt: skip


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
    )


def _tls_files(args: argparse.Namespace) -> TLSFiles:
    return TLSFiles(getattr(args, "cert_file", None), getattr(args, "key_file", None),
                    getattr(args, "trusted_ca_file", None))  # fmt: skip


def _credentials(args: argparse.Namespace) -> dict[str, str]:
    if getattr(args, "token", None):
        return {"token": args.token}
    if getattr(args, "user", None):
        return {"user": args.user, "password": args.password or ""}
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
    try:
        containment.current()  # chosen and logged once, before any command runs
    except ContainmentError as exc:
        print(f"pipeline: cannot run: {exc}", file=sys.stderr)
        return 1
    failures: list[BaseException] = []
    try:
        trio.run(_until_signalled, main)
    except* (OSError, StoreError, HandlerError, ValueError) as group:
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
    if (refused := refused_sources(args)) is not None:
        return refused
    config = _standalone_agent_config(args)

    async def main(nursery: trio.Nursery) -> Controls:
        agent = Agent(config)
        await nursery.start(agent.run)

        async def stop() -> None:
            with trio.move_on_after(AGENT_STOP):
                await agent.stop()

        return Controls(stop=stop, reload=functools.partial(_reload_agent, agent, args, _standalone_agent_config))

    return run_daemon(args, main)


def cmd_up(args: argparse.Namespace) -> int:
    if (refused := refused_sources(args)) is not None:
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
