"""``pipeline create -f``, ``pipeline get`` and ``pipeline delete``: resources through the API."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from pipeline.cli.operator import ApiError, api_get, api_request, first_line, local_time, refusal, show
from pipeline.config.loader import StrictLoader, yaml_error, yaml_files

#: YAML kind -> API path segment, in the order that satisfies references when creating.
API_PATHS = {"EventFilter": "filters", "Mutator": "mutators", "HookConfig": "hooks", "Handler": "handlers",
             "Pipeline": "pipelines", "CheckConfig": "checks", "Silenced": "silenced"}  # fmt: skip
KINDS = {path: kind for kind, path in API_PATHS.items()}


def _documents(source: Path) -> list[tuple[str, int, Any]]:
    files = yaml_files(source) if source.is_dir() else [source]
    found = []
    for path in files:
        try:
            for number, document in enumerate(yaml.load_all(path.read_text(), Loader=StrictLoader), start=1):
                if document is not None:
                    found.append((str(path), number, document))
        except yaml.YAMLError as exc:
            raise ApiError(str(yaml_error(str(path), exc))) from None
        except (OSError, ValueError) as exc:  # ValueError: an integer over 4300 digits
            raise ApiError(f"{path}: {exc}") from None
    return found


def _order(item: tuple[str, int, Any]) -> tuple[int, int]:
    document = item[2]
    kind = document.get("type") if isinstance(document, dict) else None
    rank = list(API_PATHS).index(kind) if kind in API_PATHS else len(API_PATHS)
    is_set = isinstance(document, dict) and (document.get("spec") or {}).get("type") == "set"
    return rank, 1 if is_set else 0  # sets after the handlers they name


def cmd_create(args: argparse.Namespace) -> int:
    """Apply every document of a file or directory, one progress line each; exit 1 if any failed."""
    documents = sorted(_documents(args.file), key=_order)
    failed = 0
    for number, (file, index, document) in enumerate(documents, start=1):
        kind = document.get("type") if isinstance(document, dict) else None
        metadata = document.get("metadata") or {} if isinstance(document, dict) else {}
        name, namespace = metadata.get("name", ""), metadata.get("namespace") or args.namespace
        label = f"[{number}/{len(documents)}] {file}: document {index}: {kind} {name!r}"
        if kind not in API_PATHS:
            failed += 1
            print(f"{label}: unknown type (expected one of {', '.join(API_PATHS)})")
            continue
        base = f"/api/core/v2/namespaces/{namespace}/{API_PATHS[kind]}"
        if kind == "Silenced":
            response = api_request(args, "POST", base, json={"metadata": metadata, **(document.get("spec") or {})})
        else:
            response = api_request(args, "PUT", f"{base}/{name}", json=document)
        if response.status_code in (200, 201):
            print(f"{label}: saved")
        else:
            failed += 1
            print(f"{label}: {refusal(response)}")
    print(f"{len(documents) - failed} of {len(documents)} resources saved")
    return 1 if failed else 0


def cmd_get(args: argparse.Namespace) -> int:
    if args.kind not in KINDS:
        print(f"pipeline: unknown kind {args.kind!r} (one of {', '.join(KINDS)})", file=sys.stderr)
        return 2
    path = f"/api/core/v2/namespaces/{args.namespace}/{args.kind}" + (f"/{args.name}" if args.name else "")
    found = api_get(args, path)
    if args.name:
        print(json.dumps(found, indent=2))
        return 0
    columns = COLUMNS[args.kind]
    rows = [[cell(item) for _, cell in columns] for item in found]
    return show(found, args, f"no {args.kind}", [header for header, _ in columns], rows)


Item = dict[str, Any]


def _text(key: str) -> Callable[[Item], str]:
    return lambda item: first_line(str(item.get(key) or ""))


def _number(key: str) -> Callable[[Item], str]:
    return lambda item: str(item[key]) if item.get(key) else ""


def _names(key: str) -> Callable[[Item], str]:
    return lambda item: ",".join(item.get(key) or [])


def _name(item: Item) -> str:
    return str((item.get("metadata") or {}).get("name", ""))


def _schedule(check: Item) -> str:
    return str(check.get("cron") or f"every {check.get('interval', 0)}s")


def _execute(handler: Item) -> str:
    """What a handler does, in sensuctl's words (RUN, PIPE TO, CALL), plus our plugins."""
    kind, socket = handler.get("type") or "pipe", handler.get("socket") or {}
    if kind in ("tcp", "udp"):
        return f"PIPE TO: {kind}://{socket.get('host', '')}:{socket.get('port', '')}"
    if kind == "set":
        return "CALL: " + ",".join(handler.get("handlers") or [])
    if kind == "plugin":
        return f"PLUGIN: {handler.get('plugin', '')}"
    return "RUN: " + first_line(str(handler.get("command") or ""))


def _mutation(mutator: Item) -> str:
    return first_line(str(mutator.get("command") or mutator.get("eval") or mutator.get("template") or ""))


def _workflows(pipeline: Item) -> str:
    return ",".join(str(w.get("name", "")) for w in pipeline.get("workflows") or [])


def _silenced_until(entry: Item) -> str:
    until = "resolution" if entry.get("expire_on_resolve") else ""
    if entry.get("expire_at"):
        until = ", ".join(filter(None, [local_time(entry["expire_at"]), until]))
    return until or "never"


#: What ``pipeline get KIND`` shows of each kind, after sensuctl's ``list`` columns.
COLUMNS: dict[str, list[tuple[str, Callable[[Item], str]]]] = {
    "checks": [("name", _name), ("command", _text("command")), ("schedule", _schedule), ("timeout", _number("timeout")),
               ("ttl", _number("ttl")), ("subscriptions", _names("subscriptions")), ("handlers", _names("handlers"))],
    "hooks": [("name", _name), ("command", _text("command")), ("timeout", _number("timeout")),
              ("stdin", lambda h: "yes" if h.get("stdin") else "")],
    "handlers": [("name", _name), ("type", lambda h: str(h.get("type") or "pipe")), ("timeout", _number("timeout")),
                 ("filters", _names("filters")), ("mutator", _text("mutator")), ("execute", _execute)],
    "filters": [("name", _name), ("action", _text("action")),
                ("expressions", lambda f: " && ".join(f.get("expressions") or []))],
    "mutators": [("name", _name), ("type", lambda m: str(m.get("type") or "pipe")), ("mutation", _mutation)],
    "pipelines": [("name", _name), ("workflows", _workflows)],
    "silenced": [("name", _name), ("subscription", _text("subscription")), ("check", _text("check")),
                 ("until", _silenced_until), ("creator", _text("creator")), ("reason", _text("reason"))],
}  # fmt: skip


def cmd_delete(args: argparse.Namespace) -> int:
    if args.kind not in KINDS:
        print(f"pipeline: unknown kind {args.kind!r} (one of {', '.join(KINDS)})", file=sys.stderr)
        return 2
    api_request(args, "DELETE", f"/api/core/v2/namespaces/{args.namespace}/{args.kind}/{args.name}", expect=204)
    print(f"{args.kind} {args.name!r} deleted")
    return 0


def cmd_check_execute(args: argparse.Namespace) -> int:
    subscriptions = [s for s in args.subscriptions.split(",") if s]
    body = {"check": args.name, "subscriptions": subscriptions, "reason": args.reason, "creator": "pipeline"}
    path = f"/api/core/v2/namespaces/{args.namespace}/checks/{args.name}/execute"
    agents = api_request(args, "POST", path, expect=202, json=body).json()["agents"]
    print(f"check {args.name!r}: {agents} agent{'' if agents == 1 else 's'} asked to run it now")
    return 0
