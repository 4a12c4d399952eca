"""The ``pipeline`` command line.

Only what the command given needs is imported: the daemons' flags (and trio, the backend, the
agent) when a daemon runs, YAML and the resource loader when a command reads files. ``pipeline
--help`` and ``pipeline event list`` answer in a fraction of a second (BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pipeline import __version__
from pipeline.cli.commands import add_operator_commands
from pipeline.cli.config_file import CONFIG_FILE_FLAG, config_file_in, file_defaults
from pipeline.errors import ConfigError
from pipeline.logs import printable

DAEMONS = {
    "up": "run a backend and a local agent in one process tree",
    "backend": "run the backend",
    "agent": "run an agent",
}


def build_parser(
    command: str | None = None,
) -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The command line, and the daemon subcommands (which also read ``--config-file``). The
    daemons' flags are added for ``command`` only (every daemon's when None)."""
    daemon_commands: dict[str, argparse.ArgumentParser] = {}
    parser = argparse.ArgumentParser(prog="pipeline", description="A monitoring event pipeline in the Sensu tradition.")
    parser.add_argument("--version", action="version", version=f"pipeline {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in DAEMONS.items():
        daemon = commands.add_parser(name, help=text)
        daemon_commands[name] = daemon
        if command is None or command == name:
            _add_daemon_flags(name, daemon)
    add_operator_commands(commands)
    return parser, daemon_commands


def _add_daemon_flags(name: str, daemon: argparse.ArgumentParser) -> None:
    from pipeline.cli import daemon_flags as daemons  # the flags only: running them imports the rest

    if name in ("up", "backend"):
        daemons.add_backend_flags(daemon)
    if name == "backend":
        daemons.add_backend_security_flags(daemon)
    if name == "agent":
        daemons.add_agent_connection_flags(daemon)
    if name in ("up", "agent"):
        daemons.add_agent_flags(daemon, prefix="agent-" if name == "up" else "")
        daemons.add_spool_flags(daemon, data=name == "agent")
        daemons.add_statsd_flags(daemon)
        daemons.add_source_flags(daemon)
    daemons.add_common_flags(daemon)
    daemon.add_argument(CONFIG_FILE_FLAG, type=Path, help="YAML file of settings (long flag names as keys)")
    daemon.set_defaults(func=f"pipeline.cli.daemons:cmd_{name}")


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    """The arguments of ``argv``; a daemon's ``--config-file`` settings under its command line flags
    (raises ConfigError naming the file and the key)."""
    parser, daemon_commands = build_parser(argv[0] if argv else None)
    settings = config_file_in(argv)
    if settings is not None and argv and argv[0] in daemon_commands:
        daemon = daemon_commands[argv[0]]
        daemon.set_defaults(**file_defaults(daemon, settings))
    args = parser.parse_args(argv)
    # A daemon reads its settings again on SIGHUP: the same command line, the file as it is then.
    args.reread = functools.partial(parse_arguments, argv)
    return args


def command_function(args: argparse.Namespace) -> Callable[[argparse.Namespace], int]:
    """The function of the command, imported now (``"pipeline.cli.operator:cmd_event_list"``)."""
    if callable(args.func):
        return args.func  # type: ignore[no-any-return]
    module, _, name = str(args.func).partition(":")
    function: Callable[[argparse.Namespace], int] = getattr(importlib.import_module(module), name)
    return function


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse_arguments(argv)
        code = run(args)
        sys.stdout.flush()  # a closed pipe shows here rather than at exit, where it would be a traceback
    except ConfigError as exc:
        print(f"pipeline: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return reader_gone()
    except KeyboardInterrupt:
        return 130
    return code


def run(args: argparse.Namespace) -> int:
    from pipeline.cli.operator import ApiError

    try:
        return command_function(args)(args)
    except ApiError as exc:
        print(f"pipeline: {printable(str(exc))}", file=sys.stderr)
        return 1


def reader_gone() -> int:
    """The reader of stdout left (``pipeline event list | head``): not a failure, and nothing more
    to write; stdout points at /dev/null so that Python's flush at exit does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
