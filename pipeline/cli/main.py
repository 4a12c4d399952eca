"""The ``pipeline`` command line."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline import __version__
from pipeline.cli import daemons, operator, resources, send
from pipeline.cli.config_file import CONFIG_FILE_FLAG, config_file_in, file_defaults
from pipeline.errors import ConfigError
from pipeline.logs import printable


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The command line, and the daemon subcommands (which also read ``--config-file``)."""
    daemon_commands: dict[str, argparse.ArgumentParser] = {}
    parser = argparse.ArgumentParser(prog="pipeline", description="A monitoring event pipeline in the Sensu tradition.")
    parser.add_argument("--version", action="version", version=f"pipeline {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="run a backend and a local agent in one process tree")
    daemons.add_backend_flags(up)
    daemons.add_agent_flags(up, prefix="agent-")
    daemons.add_spool_flags(up, data=False)
    daemons.add_statsd_flags(up)
    daemons.add_source_flags(up)
    daemons.add_common_flags(up)
    up.set_defaults(func=daemons.cmd_up)
    daemon_commands["up"] = up

    backend = commands.add_parser("backend", help="run the backend")
    daemons.add_backend_flags(backend)
    daemons.add_backend_security_flags(backend)
    daemons.add_common_flags(backend)
    backend.set_defaults(func=daemons.cmd_backend)
    daemon_commands["backend"] = backend

    agent = commands.add_parser("agent", help="run an agent")
    daemons.add_agent_connection_flags(agent)
    daemons.add_agent_flags(agent)
    daemons.add_spool_flags(agent, data=True)
    daemons.add_statsd_flags(agent)
    daemons.add_source_flags(agent)
    daemons.add_common_flags(agent)
    agent.set_defaults(func=daemons.cmd_agent)
    daemon_commands["agent"] = agent
    for daemon in daemon_commands.values():
        daemon.add_argument(CONFIG_FILE_FLAG, type=Path, help="YAML file of settings (long flag names as keys)")

    validate = commands.add_parser("validate", help="check a resource file or directory: every error, and warnings")
    validate.add_argument("path", type=Path, help="a YAML or JSON resource file, or a directory of them")
    validate.set_defaults(func=resources.cmd_validate)

    event = commands.add_parser("event", help="list and inspect events")
    event_commands = event.add_subparsers(dest="event_command", required=True, metavar="SUBCOMMAND")
    event_list = event_commands.add_parser("list", help="the latest event of every check, as a table")
    event_list.add_argument("--format", choices=["table", "json"], default="table")
    event_list.set_defaults(func=operator.cmd_event_list)
    event_info = event_commands.add_parser("info", help="one event as JSON")
    event_info.add_argument("entity")
    event_info.add_argument("check")
    event_info.set_defaults(func=operator.cmd_event_info)
    event_send = event_commands.add_parser("send", help="send a change event (a deploy), to the backend or the agent")
    send.add_send_flags(event_send)
    event_send.set_defaults(func=send.cmd_event_send)
    event_resolve = event_commands.add_parser("resolve", help="a new OK result, through the check's handlers")
    event_delete = event_commands.add_parser("delete", help="delete an event (the timeline keeps its past)")
    for sub, func in ((event_resolve, operator.cmd_event_resolve), (event_delete, operator.cmd_event_delete)):
        sub.add_argument("entity")
        sub.add_argument("check")
        sub.set_defaults(func=func)
    entity = commands.add_parser("entity", help="list, inspect and delete entities (agents and proxies)")
    entity_commands = entity.add_subparsers(dest="entity_command", required=True, metavar="SUBCOMMAND")
    entity_list = entity_commands.add_parser("list", help="every entity: class, hostname, when last seen")
    entity_list.add_argument("--format", choices=["table", "json"], default="table")
    entity_list.set_defaults(func=operator.cmd_entity_list)
    entity_info = entity_commands.add_parser("info", help="one entity as JSON")
    entity_delete = entity_commands.add_parser("delete", help="delete an entity and its events")
    for sub, func in ((entity_info, operator.cmd_entity_info), (entity_delete, operator.cmd_entity_delete)):
        sub.add_argument("name")
        sub.set_defaults(func=func)
    deadletter = commands.add_parser("deadletter", help="events handlers failed to take: list and replay")
    deadletter_commands = deadletter.add_subparsers(dest="deadletter_command", required=True, metavar="SUBCOMMAND")
    deadletter_list = deadletter_commands.add_parser("list", help="every dead letter, oldest first")
    deadletter_list.add_argument("--format", choices=["table", "json"], default="table")
    deadletter_list.set_defaults(func=operator.cmd_deadletter_list)
    deadletter_replay = deadletter_commands.add_parser("replay", help="send dead letters to their handler again")
    deadletter_replay.add_argument("id", nargs="?", help="the dead letter to replay")
    deadletter_replay.add_argument("--all", action="store_true", help="replay every dead letter, oldest first")
    deadletter_replay.set_defaults(func=operator.cmd_deadletter_replay)
    timeline = commands.add_parser("timeline", help="what happened, in time order: checks, changes, keepalives")
    timeline.add_argument("--since", default="1h", help="1h, 30m, 2d (ago), epoch seconds or ISO-8601 (default 1h)")
    timeline.add_argument("--until", default="", help="same forms; default now")
    timeline.add_argument("--entity", default="", help="only this entity")
    timeline.add_argument("--type", default="", help="only this check or change type (deployment, keepalive, ...)")
    timeline.add_argument("--limit", type=int, default=1000, help="at most this many lines (1000)")
    timeline.add_argument("--page", type=int, default=500, help=argparse.SUPPRESS)
    timeline.set_defaults(func=operator.cmd_timeline)
    key = commands.add_parser("key", help="API keys: create, list, revoke")
    key_commands = key.add_subparsers(dest="key_command", required=True, metavar="SUBCOMMAND")
    key_create = key_commands.add_parser("create", help="a new key, printed once")
    key_create.add_argument("--role", choices=["admin", "ingest", "viewer"], default="ingest")
    key_create.add_argument("--name", default="", help="what the key is for")
    key_create.set_defaults(func=operator.cmd_key_create)
    key_list = key_commands.add_parser("list", help="the keys created through the API")
    key_list.set_defaults(func=operator.cmd_key_list)
    key_revoke = key_commands.add_parser("revoke", help="revoke a key created through the API")
    key_revoke.add_argument("id")
    key_revoke.set_defaults(func=operator.cmd_key_revoke)
    create = commands.add_parser("create", help="apply resource files through the API, all or nothing")
    create.add_argument("-f", "--file", type=Path, required=True, help="a YAML or JSON file, or a directory of them")
    create.set_defaults(func=resources.cmd_create)
    get = commands.add_parser(
        "get", help="list resources: checks, hooks, handlers, filters, mutators, pipelines, silenced"
    )
    get.add_argument("kind")
    get.add_argument("name", nargs="?")
    get.add_argument("--format", choices=["table", "json"], default="table")
    get.set_defaults(func=resources.cmd_get)
    delete = commands.add_parser("delete", help="delete a resource through the API")
    delete.add_argument("kind")
    delete.add_argument("name")
    delete.set_defaults(func=resources.cmd_delete)
    revert = commands.add_parser("revert", help="drop the API's change of a resource: the config files' version runs")
    revert.add_argument("kind")
    revert.add_argument("name")
    revert.set_defaults(func=resources.cmd_revert)
    check = commands.add_parser("check", help="run a check once, now, on its agents")
    check_commands = check.add_subparsers(dest="check_command", required=True)
    check_execute = check_commands.add_parser("execute", help="Sensu's ad hoc execution, whatever the schedule")
    check_execute.add_argument("name")
    check_execute.add_argument("--subscriptions", default="", help="comma-separated (default: the check's own)")
    check_execute.add_argument("--reason", default="", help="logged by the backend with the request")
    check_execute.set_defaults(func=resources.cmd_check_execute)
    reload = commands.add_parser("reload", help="read the backend's configuration directory again and apply it")
    reload.set_defaults(func=operator.cmd_reload)
    operator_commands = (event_list, event_info, event_send, event_resolve, event_delete, entity_list, entity_info,
                         entity_delete, deadletter_list, deadletter_replay, timeline, key_create, key_list, key_revoke,
                         create, get, delete, revert, check_execute, reload)  # fmt: skip
    for sub in operator_commands:
        sub.add_argument("--api-url", default="http://127.0.0.1:8080")
        sub.add_argument("--namespace", default="default")
        sub.add_argument("--api-key", default="", help="API key (default: PIPELINE_API_KEY, else <--data>/admin.key)")
        sub.add_argument("--data", type=Path, default=Path("data"), help="where to look for admin.key (./data)")
    return parser, daemon_commands


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    """The arguments of ``argv``; a daemon's ``--config-file`` settings under its command line flags
    (raises ConfigError naming the file and the key)."""
    parser, daemon_commands = build_parser()
    settings = config_file_in(argv)
    if settings is not None and argv and argv[0] in daemon_commands:
        daemon = daemon_commands[argv[0]]
        daemon.set_defaults(**file_defaults(daemon, settings))
    args = parser.parse_args(argv)
    # A daemon reads its settings again on SIGHUP: the same command line, the file as it is then.
    args.reread = functools.partial(parse_arguments, argv)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse_arguments(argv)
    except ConfigError as exc:
        print(f"pipeline: {exc}", file=sys.stderr)
        return 1
    try:
        code: int = args.func(args)
    except operator.ApiError as exc:
        print(f"pipeline: {printable(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
