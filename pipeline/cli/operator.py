"""Operator commands that talk to a running backend or read config: ``event``, ``entity``, ``validate``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pipeline.cli import http_client
from pipeline.cli.event_filters import EventFilters
from pipeline.cli.locate import resolve_backend
from pipeline.cli.output import Bar, first_line, local_time, show, show_one
from pipeline.logs import printable

#: The output of a result ``pipeline event resolve`` writes (sensuctl's says "by sensuctl").
RESOLVED_OUTPUT = "Resolved manually by pipeline"


class ApiError(Exception):
    """The backend could not be reached or answered with an error."""


def segment(value: str, what: str) -> str:
    """``value`` as one segment of an API path: percent-quoted, so that a ``/``, ``?``, ``#`` or
    space in a name asks about that name (before, ``entity info 'a#b'`` answered about ``a``, and
    ``'a?b'`` with a query parameter error); ApiError naming ``what`` when it is empty."""
    if not value:
        raise ApiError(f"{what}: must not be empty")
    return quote(value, safe="")


def in_namespace(args: argparse.Namespace, *parts: str | tuple[str, str]) -> str:
    """``/api/core/v2/namespaces/<namespace>/...`` in the operator's namespace: each of ``parts``
    a word of the path as it is, or a value given by the operator and what it is (quoted)."""
    given = [part if isinstance(part, str) else segment(*part) for part in parts]
    return "/".join(["/api/core/v2/namespaces", segment(args.namespace, "--namespace"), *given])


def api_key(args: argparse.Namespace) -> str:
    """The key to send: ``--api-key``, else ``PIPELINE_API_KEY``, else ``<--data>/admin.key``."""
    if getattr(args, "api_key", None):
        return str(args.api_key)
    resolve_backend(args)
    if os.environ.get("PIPELINE_API_KEY"):
        return os.environ["PIPELINE_API_KEY"]
    path = Path(getattr(args, "data", "data")) / "admin.key"
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def auth_headers(args: argparse.Namespace) -> dict[str, str]:
    key = api_key(args)
    return {"Authorization": f"Key {key}"} if key else {}


def unauthorized_error(args: argparse.Namespace) -> ApiError:
    return ApiError(
        f"the backend at {args.api_url} refused the API key: give one with --api-key or PIPELINE_API_KEY "
        f"(a backend without keys writes one to <data>/admin.key; looked in {getattr(args, 'data', 'data')})"
    )


def api_request(
    args: argparse.Namespace,
    method: str,
    path: str,
    *,
    expect: int | None = None,
    timeout: float = 10.0,
    **kwargs: Any,
) -> http_client.Response:
    """A request with the operator's key; ApiError when the backend is unreachable, refuses the
    key, or (``expect`` given) answers anything else, with the backend's own message."""
    resolve_backend(args)
    url = args.api_url.rstrip("/") + path
    try:
        response = http_client.request(method, url, headers=auth_headers(args), timeout=timeout, **kwargs)
    except http_client.ClientError as exc:
        raise ApiError(f"cannot reach the backend at {args.api_url}: {exc}") from None
    if response.status_code in (401, 403):
        raise unauthorized_error(args)
    if expect is not None and response.status_code != expect:
        raise ApiError(refusal(response))
    return response


def refusal(response: http_client.Response) -> str:
    """The backend's ``message``, else the status and the start of the body (a proxy's page, say)."""
    try:
        return printable(str(response.json()["message"]))  # it may quote what a peer sent
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}: {printable(first_line(response.text)[:200])}"


def api_get(args: argparse.Namespace, path: str) -> Any:
    return api_request(args, "GET", path, expect=200).json()


def event_rows(events: Sequence[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for event in events:
        check = event.get("check") or {}
        rows.append(
            [
                event.get("entity", {}).get("metadata", {}).get("name", ""),
                check.get("metadata", {}).get("name", ""),
                str(check.get("status", "")),
                check.get("state", ""),
                str(check.get("occurrences", "")),
                first_line(check.get("output", "")),
            ]
        )
    return rows


def cmd_event_list(args: argparse.Namespace) -> int:
    """The latest event of every check, filtered; change events are the timeline's, not listed."""
    try:
        wanted = EventFilters.of(args)
    except ValueError as exc:
        print(f"pipeline event list: error: {exc}", file=sys.stderr)
        return 2
    if wanted.silenced is not None:
        wanted.silences, wanted.now = api_get(args, in_namespace(args, "silenced")), time.time()
    events = [e for e in api_get(args, in_namespace(args, "events")) if wanted.match(e)]
    headers = ["entity", "check", "status", "state", "occurrences", "output"]
    return show(events, args, "no events", headers, event_rows(events))


def cmd_event_info(args: argparse.Namespace) -> int:
    event = api_get(args, event_path(args))
    return show_one(event, args)


def event_path(args: argparse.Namespace) -> str:
    return in_namespace(args, "events", (args.entity, "entity"), (args.check, "check"))


def cmd_event_resolve(args: argparse.Namespace) -> int:
    """sensuctl's resolve: the event read back with status 0, a manual output and the time now
    (its id kept: the backend takes it as a new result), through the check's handlers."""
    event = api_get(args, event_path(args))
    check = event.get("check")
    if not isinstance(check, dict):
        raise ApiError(f"event {args.entity}/{args.check} has no check to resolve")
    check["status"] = 0
    check["output"] = RESOLVED_OUTPUT
    event["timestamp"] = int(time.time())
    api_request(args, "PUT", event_path(args), expect=201, json=event)
    print("Resolved")
    return 0


def cmd_event_delete(args: argparse.Namespace) -> int:
    api_request(args, "DELETE", event_path(args), expect=204)
    print("Deleted")
    return 0


def entity_rows(entities: Sequence[dict[str, Any]], now: float) -> list[list[str]]:
    rows = []
    for entity in entities:
        seen = entity.get("last_seen") or 0
        rows.append(
            [
                entity.get("metadata", {}).get("name", ""),
                entity.get("entity_class", ""),
                entity.get("system", {}).get("hostname", ""),
                f"{int(now - seen)}s ago" if seen else "never",
                ",".join(entity.get("subscriptions", [])),
            ]
        )
    return rows


def cmd_entity_list(args: argparse.Namespace) -> int:
    entities = api_get(args, in_namespace(args, "entities"))
    headers = ["entity", "class", "hostname", "last seen", "subscriptions"]
    return show(entities, args, "no entities", headers, entity_rows(entities, time.time()))


def cmd_entity_info(args: argparse.Namespace) -> int:
    entity = api_get(args, in_namespace(args, "entities", (args.name, "entity")))
    return show_one(entity, args)


def cmd_entity_delete(args: argparse.Namespace) -> int:
    """Sensu's entity delete: the entity and its events go; the handlers hear them resolved."""
    api_request(args, "DELETE", in_namespace(args, "entities", (args.name, "entity")), expect=204)
    print("Deleted")
    return 0


DEAD_LETTERS = "/api/pipeline/v1/deadletters"


def api_post(args: argparse.Namespace, path: str) -> tuple[int, Any]:
    # a replay runs the handler with its retries: minutes, at worst
    response = api_request(args, "POST", path, timeout=600.0)
    return response.status_code, response.json()


def dead_letter_rows(letters: Sequence[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for letter in letters:
        event = letter.get("event", {})
        entity = event.get("entity", {}).get("metadata", {}).get("name", "")
        check = (event.get("check") or {}).get("metadata", {}).get("name", "")
        created = local_time(letter.get("created", 0))
        rows.append([letter["id"], created, letter.get("handler", ""), f"{entity}/{check}",
                     str(letter.get("attempts", "")), first_line(letter.get("error", ""))])  # fmt: skip
    return rows


def cmd_deadletter_list(args: argparse.Namespace) -> int:
    letters = api_get(args, DEAD_LETTERS)
    headers = ["id", "created", "handler", "event", "attempts", "error"]
    return show(letters, args, "no dead letters", headers, dead_letter_rows(letters))


def cmd_deadletter_replay(args: argparse.Namespace) -> int:
    """Replay one dead letter, or all of them with a line of progress each; exit 1 if any failed."""
    if args.all == bool(args.id):
        print("pipeline: give a dead letter ID or --all", file=sys.stderr)
        return 2
    ids = [letter["id"] for letter in api_get(args, DEAD_LETTERS)] if args.all else [args.id]
    failed = 0
    with Bar(len(ids), "replaying") as bar:
        for number, letter_id in enumerate(ids, start=1):
            status, body = api_post(args, f"{DEAD_LETTERS}/{segment(letter_id, 'dead letter id')}/replay")
            if status == 404:
                raise ApiError(body.get("message", f"dead letter {letter_id} not found"))
            if body.get("replayed"):
                bar.line(f"[{number}/{len(ids)}] {letter_id}: delivered")
            else:
                failed += 1
                bar.line(f"[{number}/{len(ids)}] {letter_id}: failed again: {printable(str(body.get('error', '')))}")
            bar.advance()
    if args.all:
        print(f"replayed {len(ids) - failed} of {len(ids)} dead letters")
    return 1 if failed else 0


def cmd_timeline(args: argparse.Namespace) -> int:
    """Every logged event in time order, page after page."""
    params = {k: v for k, v in (("since", args.since), ("until", args.until), ("entity", args.entity),
                                ("type", args.type), ("limit", str(args.page))) if v}  # fmt: skip
    path = in_namespace(args, "timeline")
    events: list[dict[str, Any]] = []
    while True:
        response = api_request(args, "GET", path, expect=200, params=params, timeout=30.0)
        events.extend(response.json())
        cursor = response.headers.get("sensu-continue")  # http_client lowercases names
        if not cursor or len(events) >= args.limit:
            break
        params["continue"] = cursor
    events = events[: args.limit]
    headers = ["time", "entity", "check", "status", "output"]
    return show(events, args, "nothing happened in that time", headers, [timeline_row(e) for e in events])


def timeline_row(event: dict[str, Any]) -> list[str]:
    check = event.get("check") or {}
    return [local_time(event.get("timestamp", 0)), event.get("entity", {}).get("metadata", {}).get("name", ""),
            check.get("metadata", {}).get("name", "metrics"), str(check.get("status", "")),
            first_line(check.get("output", ""))]  # fmt: skip


KEYS = "/api/pipeline/v1/keys"


def cmd_key_create(args: argparse.Namespace) -> int:
    created = api_request(args, "POST", KEYS, expect=201, json={"role": args.role, "name": args.name}).json()
    print(f"{created['key']}")
    print(f"key {created['id']} ({created['role']}): shown once, keep it now", file=sys.stderr)
    return 0


def cmd_key_list(args: argparse.Namespace) -> int:
    keys = api_get(args, KEYS)
    rows = [[k["id"], k["role"], k["name"], local_time(k["created"])] for k in keys]
    empty = "no keys created through the API (command-line and admin.key keys are not listed)"
    return show(keys, args, empty, ["id", "role", "name", "created"], rows)


def cmd_key_revoke(args: argparse.Namespace) -> int:
    api_request(args, "DELETE", f"{KEYS}/{segment(args.id, 'key id')}", expect=204)
    print(f"key {args.id} revoked")
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    """``pipeline reload``: the backend reads its configuration directory again (as on SIGHUP)."""
    response = api_request(args, "POST", "/api/pipeline/v1/reload", timeout=60)
    if response.status_code not in (200, 422):
        raise ApiError(refusal(response))
    report = response.json()
    if report["result"] != "applied":
        for error in report["errors"]:
            print(error, file=sys.stderr)
        print(f"pipeline: configuration not reloaded: {len(report['errors'])} error(s); the backend keeps running "
              "the configuration it had", file=sys.stderr)  # fmt: skip
        return 1
    counts = ", ".join(f"{len(report[what])} {what}" for what in ("added", "changed", "removed"))
    print(f"configuration reloaded from {report['directory']}: {counts}")
    for what in ("added", "changed", "removed"):
        for name in report[what]:
            print(f"  {what} {name}")
    for name in report["overridden_by_api"]:
        print(f"  kept the version changed through the API: {name}")
    return 0
