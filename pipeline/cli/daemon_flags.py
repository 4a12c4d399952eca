"""The flags of ``pipeline up``, ``pipeline backend`` and ``pipeline agent``: only argparse and
the light modules their defaults come from, so that a daemon's ``--help`` and a bad flag answer
without importing the backend or the agent (:mod:`pipeline.cli.daemons` runs them)."""

from __future__ import annotations

import argparse
import os
import site
import socket
import sys
from collections.abc import Callable
from pathlib import Path

from pipeline.agent.source_settings import SourceSettings
from pipeline.backend.auth import parse_user
from pipeline.backend.sessions import (
    ACCESS_LIFETIME,
    MAX_ACCESS_LIFETIME,
    MAX_REFRESH_LIFETIME,
    REFRESH_LIFETIME,
    parse_lifetime,
)
from pipeline.cli.addresses import (
    parse_address,
    parse_floats,
    parse_list,
    parse_optional_address,
    parse_pairs,
    parse_peer_address,
    positive_float,
    positive_int,
    whole_number,
)
from pipeline.core.keepalive import DEFAULT_CRITICAL_TIMEOUT, DEFAULT_INTERVAL, DEFAULT_WARNING_TIMEOUT
from pipeline.core.redact import DEFAULT_REDACT
from pipeline.core.statsd.aggregate import DEFAULT_MAX_KEYS
from pipeline.core.store_url import check_store
from pipeline.defaults import CONFIG_DIR
from pipeline.errors import ValidationError
from pipeline.model.codec import UINT32

SOURCE_TREE = Path(__file__).resolve().parents[2]


# Sensu Go's agent keeps its keepalive interval and timeouts as uint32, and the keepalive's check
# carries them in fields of that range, which the backend checks: a larger one, taken here, made
# every keepalive of the agent refused.
keepalive_interval = whole_number((1, UINT32[1]), f"whole seconds from 1 to {UINT32[1]}")
keepalive_timeout = whole_number((0, UINT32[1]), f"whole seconds from 0 (never) to {UINT32[1]}")


def login(text: str) -> tuple[str, str]:
    """``USER:PASSWORD``, refused with what is wrong (argparse's own words were "invalid
    parse_user value")."""
    try:
        return parse_user(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def plugin_dir(text: str) -> Path:
    """A directory put on the PATH of checks, hooks and handlers: one that is not there would
    leave every command in it "not found", found out run by run."""
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is not a directory")
    return path


def api_key(text: str) -> str:
    """An API key given on the command line: an empty one, or one with spaces around it (a key is
    compared without them), could never be presented; the admin key file is not written when a
    key is given, so such a flag left the backend with no admin key at all."""
    if not text or text != text.strip():
        raise argparse.ArgumentTypeError("must be a key: not empty, no spaces around it")
    return text


def secret(text: str) -> str:
    """An agent's login, password or token: an empty one matches nothing (an empty login also
    dropped the password given with it)."""
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def store_url(text: str) -> str:
    try:
        return check_store(text)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def backend_name(text: str) -> str:
    if not text.strip() or len(text) > 200:
        raise argparse.ArgumentTypeError(f"a backend needs a name of 1 to 200 characters, got {text[:60]!r}")
    return text


def statsd_percentiles(text: str) -> list[float]:
    """``90,99.9,-10``: etsy's percentThreshold, each from -100 to 100 (a negative one: the
    lowest); 0, which makes no statistic, and past 100, which would read past the timer's values
    at every flush, are refused."""
    values = parse_floats(text)
    for value in values:
        if not 0 < abs(value) <= 100:
            raise argparse.ArgumentTypeError(f"a percentile is from -100 to 100 and not 0, got {value:g} in {text!r}")
    return values


#: The directories of the shipped plugins, in the source tree and where a wheel installs them.
PLUGIN_DIR_NAMES = ("checks", "handlers", "hooks")


def default_plugin_dirs(
    source_tree: Path = SOURCE_TREE, prefixes: tuple[Path, ...] | None = None, in_venv: bool | None = None
) -> list[Path]:
    """The shipped ``checks/``, ``handlers/`` and ``hooks/``: the source tree's where this runs
    from a checkout, else those a wheel installed under ``<prefix>/share/pipeline`` (the
    environment's or the user's prefix). In a virtual environment its ``bin`` comes last, so
    that the shipped Python scripts' ``#!/usr/bin/env python3`` finds the interpreter that has
    pipeline installed even when the environment is not activated."""
    if prefixes is None:
        prefixes = (Path(sys.prefix), Path(site.getuserbase()))
    if in_venv is None:
        in_venv = sys.prefix != sys.base_prefix
    dirs = []
    for name in PLUGIN_DIR_NAMES:
        candidates = [source_tree / name, *(prefix / "share" / "pipeline" / name for prefix in prefixes)]
        found = next((d for d in candidates if d.is_dir()), None)
        if found is not None:
            dirs.append(found)
    if in_venv:
        dirs.append(Path(sys.executable).parent)
    return dirs


def add_backend_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=CONFIG_DIR,
                        help=f"resource directory (default: the one shipped in the package, {CONFIG_DIR})")  # fmt: skip
    parser.add_argument("--data", type=Path, default=Path("data"), help="data directory (default: ./data)")
    parser.add_argument("--api-addr", type=parse_address, default=("127.0.0.1", 8080), help="HTTP API and /metrics")
    parser.add_argument("--transport-addr", type=parse_address, default=("127.0.0.1", 8081), help="agent transport")
    parser.add_argument(
        "--store",
        type=store_url,
        default="",
        help="where events and state are kept: a SQLite file (sqlite:///PATH or a path; default: <data>/events.db)"
        " or PostgreSQL shared by several backends (postgresql://USER:PASSWORD@HOST:PORT/DATABASE)",
    )
    parser.add_argument(
        "--backend-name",
        type=backend_name,
        default=socket.gethostname(),
        help="this backend's name among those sharing a store: unique to each (default: the host name)",
    )
    parser.add_argument(
        "--admin-key",
        type=api_key,
        action="append",
        default=_env_list("PIPELINE_ADMIN_KEYS"),
        help="an API key of role admin (repeatable; also PIPELINE_ADMIN_KEYS, comma-separated)",
    )
    parser.add_argument(
        "--ingest-key",
        type=api_key,
        action="append",
        default=_env_list("PIPELINE_INGEST_KEYS"),
        help="an API key that may only push events (repeatable; also PIPELINE_INGEST_KEYS)",
    )
    parser.add_argument(
        "--viewer-key",
        type=api_key,
        action="append",
        default=_env_list("PIPELINE_VIEWER_KEYS"),
        help="an API key that may only read: the API's GETs, the dashboard without its buttons "
        "(repeatable; also PIPELINE_VIEWER_KEYS)",
    )
    parser.add_argument(
        "--api-user",
        type=login,
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
        "--max-body-size", type=positive_int, default=1024 * 1024, help="largest HTTP body accepted, in bytes (1 MiB)"
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
        type=login,
        action="append",
        default=[],
        metavar="USER:PASSWORD",
        help="an agent login (repeatable); without any login or token, agents are accepted on loopback only",
    )
    parser.add_argument("--agent-token", type=secret, action="append", default=[], help="an agent token (repeatable)")
    add_tls_flags(parser, "the backend's certificate", "CA that agent certificates must be signed by (mutual TLS)")


def add_tls_flags(parser: argparse.ArgumentParser, cert: str, ca: str) -> None:
    parser.add_argument("--cert-file", type=Path, help=f"PEM file of {cert} (enables TLS)")
    parser.add_argument("--key-file", type=Path, help="PEM file of its private key")
    parser.add_argument("--trusted-ca-file", type=Path, help=f"PEM file of the {ca}")


def add_agent_connection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend-addr",
        type=parse_peer_address,
        action="append",
        help="backend transport HOST:PORT (repeatable: tried in turn; default 127.0.0.1:8081)",
    )
    parser.add_argument("--user", type=secret, help="agent login, with --password")
    parser.add_argument("--password", type=secret, help="agent password (with --user)")
    parser.add_argument("--token", type=secret, help="agent token configured on the backend (or --user/--password)")
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
    parser.add_argument("--keepalive-interval", type=keepalive_interval, default=DEFAULT_INTERVAL, help="seconds (20)")
    parser.add_argument(
        "--keepalive-warning-timeout",
        type=keepalive_timeout,
        default=DEFAULT_WARNING_TIMEOUT,
        help="seconds of silence before the keepalive warns; 0 never (120)",
    )
    parser.add_argument(
        "--keepalive-critical-timeout",
        type=keepalive_timeout,
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


def add_spool_flags(parser: argparse.ArgumentParser, *, data: bool) -> None:
    if data:
        parser.add_argument(
            "--data", type=Path, default=Path("data"), help="data directory, for the spool (default ./data)"
        )
    parser.add_argument(
        "--spool-max-bytes",
        type=positive_int,
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
        "--statsd-percentiles", type=statsd_percentiles, default=[90.0], help="comma-separated, e.g. 90,99 (default 90)"
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


def add_common_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plugin-dir",
        type=plugin_dir,
        action="append",
        dest="plugin_dirs",
        help="directory put first on PATH for checks, hooks and handlers (repeatable; default: the shipped "
        "checks/, handlers/ and hooks/, from the source tree or <prefix>/share/pipeline)",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                        help="the least important log lines written (info)")  # fmt: skip
