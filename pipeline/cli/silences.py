"""``pipeline silence create|list|delete``: Sensu Go's silenced entries, through its API."""

from __future__ import annotations

import argparse
import datetime
import re
import sys
import time
from typing import Any

from pipeline.cli.operator import api_get, api_request, in_namespace
from pipeline.cli.output import first_line, local_time, show, silence_ends
from pipeline.core.numbers import UNIX_SECONDS, parse_int

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DURATION = re.compile(r"(\d+)([smhdw])", re.ASCII)


def parse_duration(text: str) -> int:
    """``90s``, ``30m``, ``2h``, ``1d``, ``1h30m`` or plain seconds -> seconds; ValueError else."""
    compact = text.strip().lower().replace(" ", "")
    if (seconds := parse_int(compact, UNIX_SECONDS)) is not None:  # no longer than the calendar
        return seconds
    parts = DURATION.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"expected a duration such as 90s, 30m, 2h or 1d, got {text!r}")
    return sum(int(n) * UNITS[u] for n, u in parts)


def parse_moment(text: str, now: float) -> int:
    """``30m`` (from now), epoch seconds, or ISO-8601 (local time unless it names a zone) -> epoch seconds."""
    try:
        epoch = parse_int(text.strip(), UNIX_SECONDS)
        return epoch if epoch is not None else int(now) + parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"expected 30m (from now), epoch seconds or ISO-8601, got {text!r}") from None
    return int(moment.timestamp())  # a naive time is local, as the operator typed it


def silence_body(args: argparse.Namespace, now: float) -> dict[str, Any]:
    """The silenced entry of the flags; ValueError naming the flag."""
    if not args.subscription and not args.check:
        raise ValueError("give --subscription, --check or both (what to silence)")
    body: dict[str, Any] = {
        "metadata": {"namespace": args.namespace},
        "subscription": args.subscription,
        "check": args.check,
        "reason": args.reason,
        "creator": "pipeline",
        "expire_on_resolve": args.expire_on_resolve,
    }
    if args.expire is not None:
        body["expire"] = args.expire
    elif args.duration:
        body["expire"] = _flag("--duration", parse_duration, args.duration)
    if args.begin:
        body["begin"] = _flag("--begin", lambda text: parse_moment(text, now), args.begin)
    return body


def _flag(name: str, parse: Any, text: str) -> Any:
    try:
        return parse(text)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def cmd_silence_create(args: argparse.Namespace) -> int:
    try:
        body = silence_body(args, time.time())
    except ValueError as exc:
        print(f"pipeline silence create: error: {exc}", file=sys.stderr)
        return 2
    path = in_namespace(args, "silenced")
    api_request(args, "POST", path, expect=201, json=body)
    name = f"{args.subscription or '*'}:{args.check or '*'}"
    print(f"silence {name} created{until(body)}")
    return 0


def until(body: dict[str, Any]) -> str:
    ends = []
    if body.get("expire"):
        ends.append(f"for {body['expire']} s")
    if body.get("expire_on_resolve"):
        ends.append("until the event resolves")
    return f" ({', '.join(ends)})" if ends else ""


def silence_rows(entries: list[dict[str, Any]]) -> list[list[str]]:
    return [[str((e.get("metadata") or {}).get("name", "")), str(e.get("subscription") or ""),
             str(e.get("check") or ""), local_time(e["begin"]) if e.get("begin") else "", silence_ends(e),
             str(e.get("creator") or ""), first_line(str(e.get("reason") or ""))] for e in entries]  # fmt: skip


def cmd_silence_list(args: argparse.Namespace) -> int:
    entries = api_get(args, in_namespace(args, "silenced"))
    headers = ["name", "subscription", "check", "begins", "ends", "creator", "reason"]
    return show(entries, args, "no silences", headers, silence_rows(entries))


def cmd_silence_delete(args: argparse.Namespace) -> int:
    api_request(args, "DELETE", in_namespace(args, "silenced", (args.name, "silence")), expect=204)
    print(f"silence {args.name} deleted")
    return 0
