"""The operator commands' arguments (everything but the daemons), with help on each.

Building the parser imports nothing heavy: each command names its function as
``"module:function"``, imported by :func:`pipeline.cli.main.main` only when that command runs,
so ``pipeline --help`` and ``pipeline event list`` pay for no daemon, no trio, no loader.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.cli.addresses import MOST, check_status, positive_int, whole_number
from pipeline.cli.output import add_format_flag

AGENT_URL = "http://127.0.0.1:3031"


#: A silence's ``expire``: seconds from its begin, or -1 for none (Sensu's int64).
silence_expire = whole_number((-1, MOST), "whole seconds, or -1 for none")


def _func(parser: argparse.ArgumentParser, target: str) -> argparse.ArgumentParser:
    parser.set_defaults(func=f"pipeline.cli.{target}")
    return parser


def add_operator_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Every operator command, each with the flags that say which backend and key to use."""
    operators: list[argparse.ArgumentParser] = []
    _validate(commands)
    operators += _event(commands)
    operators += _entity(commands)
    operators += _silence(commands)
    operators += _deadletter(commands)
    operators.append(_timeline(commands))
    operators += _key(commands)
    operators += _resources(commands)
    for sub in operators:
        add_backend_choice(sub)


def add_backend_choice(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--api-url",
        default=None,
        help="the backend's API (default: the backend this user started last, else http://127.0.0.1:8080)",
    )
    sub.add_argument("--namespace", default="default", help="the namespace to act in (default)")
    sub.add_argument(
        "--api-key",
        default="",
        help="API key (default: PIPELINE_API_KEY, else admin.key in --data or the running backend's data)",
    )
    sub.add_argument(
        "--data",
        type=Path,
        default=None,
        help="a backend's data directory, to read its admin.key (default: the running backend's)",
    )


def _validate(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    validate = commands.add_parser("validate", help="check a resource file or directory: every error, and warnings")
    validate.add_argument("path", type=Path, help="a YAML or JSON resource file, or a directory of them")
    _func(validate, "resources:cmd_validate")


def _event(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> list[argparse.ArgumentParser]:
    event = commands.add_parser("event", help="list, inspect, send, resolve and delete events")
    subs = event.add_subparsers(dest="event_command", required=True, metavar="SUBCOMMAND")
    listing = _func(
        subs.add_parser(
            "list",
            help="the latest event of every check, as a table; change events (deploys, agent starts, container "
            "events) are not listed: see `pipeline timeline`",
        ),
        "operator:cmd_event_list",
    )
    add_format_flag(listing)
    listing.add_argument(
        "--status",
        action="append",
        default=[],
        metavar="STATUS",
        help="only this status: ok, warning, critical, unknown, non-ok or a number (repeatable)",
    )
    listing.add_argument("--entity", default="", help="only the events of this entity")
    listing.add_argument("--check", default="", help="only the events of this check")
    listing.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only events whose check or entity has this label (repeatable: all must match)",
    )
    listing.add_argument(
        "--silenced",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="only silenced events (--silenced) or only those not silenced (--no-silenced)",
    )
    info = _func(
        subs.add_parser("info", help="one event (JSON unless --format says otherwise)"), "operator:cmd_event_info"
    )
    add_format_flag(info, "json")
    send = _func(
        subs.add_parser("send", help="send a change event (a deploy), to the backend or the agent"),
        "send:cmd_event_send",
    )
    add_send_flags(send)
    resolve = _func(
        subs.add_parser("resolve", help="a new OK result, through the check's handlers"), "operator:cmd_event_resolve"
    )
    delete = _func(
        subs.add_parser("delete", help="delete an event (the timeline keeps its past)"), "operator:cmd_event_delete"
    )
    for sub in (info, resolve, delete):
        sub.add_argument("entity", help="the entity's name")
        sub.add_argument("check", help="the check's name")
    return [listing, info, send, resolve, delete]


def add_send_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--type", required=True, help="the kind of change (deployment, restart): the check's name")
    parser.add_argument("--message", required=True, help="what happened: the check's output")
    parser.add_argument("--tag", action="append", default=[], help="a label k:v (repeatable)")
    parser.add_argument("--link", action="append", default=[], help='"title: url", an annotation (repeatable)')
    parser.add_argument(
        "--status", type=check_status, default=0, help="0 OK (default), 1 warning, 2 critical, 3 unknown"
    )
    parser.add_argument("--host", default="", help="the entity (default: this machine, or the agent's own)")
    parser.add_argument("--agent", action="store_true", help="send through the local agent, which spools it")
    parser.add_argument("--agent-url", default=AGENT_URL, help=f"the local agent's API (default {AGENT_URL})")


def _entity(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> list[argparse.ArgumentParser]:
    entity = commands.add_parser("entity", help="list, inspect and delete entities (agents and proxies)")
    subs = entity.add_subparsers(dest="entity_command", required=True, metavar="SUBCOMMAND")
    listing = _func(
        subs.add_parser("list", help="every entity: class, hostname, when last seen"), "operator:cmd_entity_list"
    )
    add_format_flag(listing)
    info = _func(
        subs.add_parser("info", help="one entity (JSON unless --format says otherwise)"), "operator:cmd_entity_info"
    )
    add_format_flag(info, "json")
    delete = _func(subs.add_parser("delete", help="delete an entity and its events"), "operator:cmd_entity_delete")
    for sub in (info, delete):
        sub.add_argument("name", help="the entity's name")
    return [listing, info, delete]


def _silence(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> list[argparse.ArgumentParser]:
    silence = commands.add_parser("silence", help="silence events: create, list, delete (Sensu's silenced entries)")
    subs = silence.add_subparsers(dest="silence_command", required=True, metavar="SUBCOMMAND")
    create = _func(
        subs.add_parser("create", help="silence a subscription, a check, or a check on a subscription"),
        "silences:cmd_silence_create",
    )
    create.add_argument(
        "--subscription",
        default="",
        help="the subscription to silence (entity:NAME for one entity); with --check, that check there",
    )
    create.add_argument("--check", default="", help="the check to silence (on every entity unless --subscription)")
    create.add_argument("--reason", default="", help="why, shown with the silence")
    until = create.add_mutually_exclusive_group()
    until.add_argument(
        "--expire",
        type=silence_expire,
        default=None,
        metavar="SECONDS",
        help="seconds until the silence ends (default: never, or at resolution)",
    )
    until.add_argument("--duration", default="", help="how long it lasts, as 90s, 30m, 2h or 1d")
    create.add_argument(
        "--expire-on-resolve", action="store_true", help="end the silence when the silenced event turns OK"
    )
    create.add_argument(
        "--begin", default="", help="when it starts: a duration from now (30m), epoch seconds or ISO-8601 (default now)"
    )
    listing = _func(
        subs.add_parser("list", help="every silence: what it silences, until when, why"), "silences:cmd_silence_list"
    )
    add_format_flag(listing)
    delete = _func(subs.add_parser("delete", help="end a silence now"), "silences:cmd_silence_delete")
    delete.add_argument("name", help="the silence's name, subscription:check (as `silence list` shows it)")
    return [create, listing, delete]


def _deadletter(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> list[argparse.ArgumentParser]:
    deadletter = commands.add_parser("deadletter", help="events handlers failed to take: list and replay")
    subs = deadletter.add_subparsers(dest="deadletter_command", required=True, metavar="SUBCOMMAND")
    listing = _func(subs.add_parser("list", help="every dead letter, oldest first"), "operator:cmd_deadletter_list")
    add_format_flag(listing)
    replay = _func(
        subs.add_parser("replay", help="send dead letters to their handler again"), "operator:cmd_deadletter_replay"
    )
    replay.add_argument("id", nargs="?", help="the dead letter to replay")
    replay.add_argument("--all", action="store_true", help="replay every dead letter, oldest first")
    return [listing, replay]


def _timeline(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    timeline = _func(
        commands.add_parser("timeline", help="what happened, in time order: checks, change events, keepalives"),
        "operator:cmd_timeline",
    )
    timeline.add_argument("--since", default="1h", help="1h, 30m, 2d (ago), epoch seconds or ISO-8601 (default 1h)")
    timeline.add_argument("--until", default="", help="same forms; default now")
    timeline.add_argument("--entity", default="", help="only this entity")
    timeline.add_argument("--type", default="", help="only this check or change type (deployment, keepalive, ...)")
    timeline.add_argument("--limit", type=positive_int, default=1000, help="at most this many lines (1000)")
    timeline.add_argument("--page", type=positive_int, default=500, help=argparse.SUPPRESS)
    add_format_flag(timeline)
    return timeline


def _key(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> list[argparse.ArgumentParser]:
    key = commands.add_parser("key", help="API keys: create, list, revoke")
    subs = key.add_subparsers(dest="key_command", required=True, metavar="SUBCOMMAND")
    create = _func(subs.add_parser("create", help="a new key, printed once"), "operator:cmd_key_create")
    create.add_argument(
        "--role",
        choices=["admin", "ingest", "viewer"],
        default="ingest",
        help="admin may do anything; ingest may only push events (default); viewer may only read",
    )
    create.add_argument("--name", default="", help="what the key is for")
    listing = _func(subs.add_parser("list", help="the keys created through the API"), "operator:cmd_key_list")
    add_format_flag(listing)
    revoke = _func(subs.add_parser("revoke", help="revoke a key created through the API"), "operator:cmd_key_revoke")
    revoke.add_argument("id", help="the key's id, as `key list` shows it")
    return [create, listing, revoke]


KINDS_HELP = "checks, hooks, handlers, filters, mutators, pipelines, silenced (singular works too: check)"


def _resources(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> list[argparse.ArgumentParser]:
    create = _func(
        commands.add_parser("create", help="apply resource files through the API, all or nothing"),
        "resources:cmd_create",
    )
    create.add_argument("-f", "--file", type=Path, required=True, help="a YAML or JSON file, or a directory of them")
    get = _func(commands.add_parser("get", help=f"list resources: {KINDS_HELP}"), "resources:cmd_get")
    get.add_argument("kind", help=KINDS_HELP)
    get.add_argument("name", nargs="?", help="one resource, whole (JSON unless --format says otherwise)")
    add_format_flag(get)
    delete = _func(commands.add_parser("delete", help="delete a resource through the API"), "resources:cmd_delete")
    revert = _func(
        commands.add_parser("revert", help="drop the API's change of a resource: the config files' version runs"),
        "resources:cmd_revert",
    )
    for sub in (delete, revert):
        sub.add_argument("kind", help=KINDS_HELP)
        sub.add_argument("name", help="the resource's name")
    check = commands.add_parser("check", help="run a check once, now, on its agents")
    check_commands = check.add_subparsers(dest="check_command", required=True, metavar="SUBCOMMAND")
    execute = _func(
        check_commands.add_parser("execute", help="Sensu's ad hoc execution, whatever the schedule"),
        "resources:cmd_check_execute",
    )
    execute.add_argument("name", help="the check's name")
    execute.add_argument("--subscriptions", default="", help="comma-separated (default: the check's own)")
    execute.add_argument("--reason", default="", help="logged by the backend with the request")
    reload = _func(
        commands.add_parser("reload", help="read the backend's configuration directory again and apply it"),
        "operator:cmd_reload",
    )
    dump = _func(
        commands.add_parser("dump", help="every resource, in sensuctl dump's format (restore reads it back)"),
        "dumps:cmd_dump",
    )
    dump.add_argument(
        "--format",
        choices=["yaml", "wrapped-json"],
        default="yaml",
        help="yaml: documents split by ---; wrapped-json: one JSON object a line (sensuctl's names)",
    )
    dump.add_argument("-f", "--file", type=Path, default=None, help="write here rather than to stdout")
    dump.add_argument("--all-namespaces", action="store_true", help="every namespace, not only --namespace")
    restore = _func(
        commands.add_parser("restore", help="apply a dump (or sensuctl dump's output), all or nothing"),
        "dumps:cmd_restore",
    )
    restore.add_argument("file", type=Path, help="a file `pipeline dump` or `sensuctl dump` wrote")
    return [create, get, delete, revert, execute, reload, dump, restore]
