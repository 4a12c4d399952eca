"""``pipeline validate`` and ``create -f`` (resource files), ``get`` and ``delete`` (resources through the API)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.cli import http_client
from pipeline.cli.operator import api_get, api_request, in_namespace, refusal, segment
from pipeline.cli.output import Bar, first_line, show, show_one, silence_ends
from pipeline.logs import printable

if TYPE_CHECKING:  # the loader and the model cost `get` and `delete` a tenth of a second: imported where used
    from pipeline.config.documents import Document
    from pipeline.config.loader import Loaded
    from pipeline.model.entity import Entity

#: API path segment -> resource kind, for ``pipeline get`` and ``pipeline delete``.
KINDS = {"filters": "EventFilter", "mutators": "Mutator", "hooks": "HookConfig", "handlers": "Handler",
         "pipelines": "Pipeline", "checks": "CheckConfig", "silenced": "Silenced"}  # fmt: skip
#: Singular (and Sensu's type) names of the kinds, as kubectl and sensuctl users type them.
ALIASES = {"filter": "filters", "eventfilter": "filters", "mutator": "mutators", "hook": "hooks",
           "hookconfig": "hooks", "handler": "handlers", "pipeline": "pipelines", "check": "checks",
           "checkconfig": "checks", "silence": "silenced", "silences": "silenced"}  # fmt: skip
APPLY = "/api/pipeline/v1/apply"
ORIGINS = "/api/pipeline/v1/resources/origins"


def report(loaded: Loaded, path: Path) -> bool:
    """Print every error and warning of ``loaded`` on its own line (stderr); whether it has no error.
    ``pipeline validate`` and ``pipeline create -f`` both print through here: the same lines."""
    for error in loaded.errors:
        print(printable(str(error)), file=sys.stderr)
    for warning in loaded.warnings:
        print(f"warning: {printable(str(warning))}", file=sys.stderr)
    if loaded.errors:
        print(f"{len(loaded.errors)} error(s) in {path}", file=sys.stderr)
    return not loaded.errors


def cmd_validate(args: argparse.Namespace) -> int:
    """Check a resource file or directory: every error, then the warnings; exit 1 on an error."""
    from pipeline.config.loader import load_path

    loaded = load_path(args.path)
    if not report(loaded, args.path):
        return 1
    warned = f" ({len(loaded.warnings)} warning(s))" if loaded.warnings else ""
    print(f"{args.path}: ok{warned}")
    return 0


def cmd_create(args: argparse.Namespace) -> int:
    """Apply every document of a file or directory, all or nothing: checked here as ``validate``
    checks it, then sent in one request that the backend applies in one transaction."""
    from pipeline.config.loader import load_path

    loaded = load_path(args.file, namespace=args.namespace)
    if not report(loaded, args.file):
        print("nothing applied", file=sys.stderr)
        return 1
    documents = [(document, kind, resource) for document, kind, resource in loaded.documents if kind != "Entity"]
    body = [_with_namespace(document.data, kind, resource) for document, kind, resource in documents]
    response = api_request(args, "POST", APPLY, json=body, timeout=60.0)
    if response.status_code != 200:
        print_refusals(response, [document for document, _, _ in documents])
        print("nothing applied", file=sys.stderr)
        return 1
    total = len(loaded.documents)
    with Bar(total, "saving") as bar:
        for number, (document, kind, resource) in enumerate(loaded.documents, start=1):
            if kind == "Entity":
                _put_entity(args, document, resource)
            bar.line(f"[{number}/{total}] {document.file}: document {document.number}: {kind} "
                     f"{resource.metadata.name!r}: saved")  # fmt: skip
            bar.advance()
    print(f"{total} of {total} resources saved")
    return 0


def _with_namespace(data: dict[str, Any], kind: str, resource: Any) -> dict[str, Any]:
    """The document as written, with the namespace it was checked in (``--namespace`` when it names none)."""
    if kind == "Namespace":
        return data
    metadata = {**(data.get("metadata") or {}), "namespace": resource.metadata.namespace}
    return {**data, "metadata": metadata}


def print_refusals(response: http_client.Response, documents: list[Document]) -> None:
    for line in _refusals(response, documents):
        print(line, file=sys.stderr)


def _refusals(response: http_client.Response, documents: list[Document]) -> list[str]:
    """The backend's refusal, one line per refused document, located as a local error would be."""
    from pipeline.config.documents import line_of
    from pipeline.errors import ConfigError

    try:
        errors = response.json()["errors"]
    except (ValueError, KeyError, TypeError):
        return [f"pipeline: {refusal(response)}"]
    lines = []
    for error in errors:
        number, path, message = error.get("document"), str(error.get("field") or ""), str(error.get("message"))
        if not isinstance(number, int) or not 0 < number <= len(documents):
            lines.append(printable(f"{response.request.url}: {message}"))
            continue
        document = documents[number - 1]
        metadata = document.data.get("metadata") or {}
        label = f"{document.data.get('type')} {str(metadata.get('name', '')) or ''!r}"
        text = ConfigError(document.file, f"{path}: {message}" if path else message, document=document.number,
                           resource=label, line=line_of(document, path))  # fmt: skip
        lines.append(printable(str(text)))
    return lines


def _put_entity(args: argparse.Namespace, document: Document, entity: Entity) -> None:
    """An entity through Sensu Go's entities API (create or replace)."""
    from pipeline.model.codec import encode

    namespace = entity.metadata.namespace
    path = f"/api/core/v2/namespaces/{segment(namespace, 'namespace')}/entities/{segment(entity.metadata.name, 'name')}"
    api_request(args, "PUT", path, expect=201, json=encode(entity))


def known_kind(args: argparse.Namespace, kinds: Collection[str] = KINDS) -> bool:
    """Whether ``args.kind`` names a kind, singular or plural (``check`` is ``checks``); it is
    made the API's plural. Else one line on stderr naming the kinds."""
    kind = str(args.kind).lower()
    kind = ALIASES.get(kind, kind)
    if kind not in kinds:
        print(f"pipeline: unknown kind {args.kind!r} (one of {', '.join(kinds)})", file=sys.stderr)
        return False
    args.kind = kind
    return True


def cmd_get(args: argparse.Namespace) -> int:
    if not known_kind(args):
        return 2
    path = in_namespace(args, args.kind, *([(args.name, "name")] if args.name else []))
    found = api_get(args, path)
    if args.name:
        if args.format == "table":
            args.format = "json"  # one resource whole, unless yaml is asked for
        return show_one(found, args)
    columns = COLUMNS[args.kind]
    if args.kind != "silenced":  # where each comes from: the config directory or the API (which wins)
        sources = _sources(args)
        columns = [*columns, ("source", lambda item: sources.get((args.namespace, _name(item)), ""))]
    rows = [[cell(item) for _, cell in columns] for item in found]
    return show(found, args, f"no {args.kind}", [header for header, _ in columns], rows)


def _sources(args: argparse.Namespace) -> dict[tuple[str, str], str]:
    """(namespace, name) -> ``file`` or ``api`` for the resources of ``args.kind``."""
    kind = KINDS[args.kind]
    origins = api_get(args, ORIGINS)
    return {(o["namespace"], o["name"]): o["source"] for o in origins if o["type"] == kind}


def cmd_revert(args: argparse.Namespace) -> int:
    """Drop the API's change of a resource: the config directory's version runs again."""
    if not known_kind(args, [k for k in KINDS if k != "silenced"]):
        return 2
    where = f"{args.kind}/{segment(args.namespace, '--namespace')}/{segment(args.name, 'name')}"
    api_request(args, "DELETE", f"/api/pipeline/v1/overrides/{where}", expect=204)
    print(f"{args.kind} {args.name!r}: the config directory's version runs again")
    return 0


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
                 ("until", silence_ends), ("creator", _text("creator")), ("reason", _text("reason"))],
}  # fmt: skip


def cmd_delete(args: argparse.Namespace) -> int:
    if not known_kind(args):
        return 2
    api_request(args, "DELETE", in_namespace(args, args.kind, (args.name, "name")), expect=204)
    print(f"{args.kind} {args.name!r} deleted")
    return 0


def cmd_check_execute(args: argparse.Namespace) -> int:
    subscriptions = [s for s in args.subscriptions.split(",") if s]
    body = {"check": args.name, "subscriptions": subscriptions, "reason": args.reason, "creator": "pipeline"}
    path = in_namespace(args, "checks", (args.name, "check"), "execute")
    agents = api_request(args, "POST", path, expect=202, json=body).json()["agents"]
    if not agents:
        where = ", ".join(subscriptions) if subscriptions else "the check's subscriptions"
        print(f"pipeline: check {args.name!r}: no connected agent is subscribed to {where}: nothing runs it",
              file=sys.stderr)  # fmt: skip
        return 1
    print(f"check {args.name!r}: {agents} agent{'' if agents == 1 else 's'} asked to run it now")
    return 0
