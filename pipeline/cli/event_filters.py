"""Which events ``pipeline event list`` shows: ``--status``, ``--entity``, ``--check``,
``--label``, ``--silenced``; never change events (``pipeline.io/event-kind: change``: deploys,
agent starts, container events), which are what happened rather than what is wrong, and which
``pipeline timeline`` lists."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from pipeline.core.numbers import parse_int

CHANGE_LABEL = "pipeline.io/event-kind"  # pipeline.core.push.common's, not imported: it would cost the command time
STATUS_NAMES = {"ok": 0, "warning": 1, "critical": 2, "unknown": 3}
#: A status as a number: a check's is a uint32.
STATUSES = (0, 2**32 - 1)


@dataclass(slots=True)
class EventFilters:
    statuses: set[int] = field(default_factory=set)
    non_ok: bool = False
    entity: str = ""
    check: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    silenced: bool | None = None
    silences: list[dict[str, Any]] = field(default_factory=list)
    now: float = 0.0

    @classmethod
    def of(cls, args: argparse.Namespace) -> EventFilters:
        """The filters of the flags; ValueError naming a bad ``--status`` or ``--label``."""
        wanted = cls(entity=args.entity, check=args.check, silenced=args.silenced)
        for text in args.status:
            name = text.strip().lower()
            if name in ("non-ok", "nonok", "failing"):
                wanted.non_ok = True
            elif (status := STATUS_NAMES.get(name, parse_int(name, STATUSES))) is not None:
                wanted.statuses.add(status)
            else:
                raise ValueError(f"--status: expected ok, warning, critical, unknown, non-ok or a number, got {text!r}")
        for text in args.label:
            key, sep, value = text.partition("=")
            if not sep or not key:
                raise ValueError(f"--label: expected KEY=VALUE, got {text!r}")
            wanted.labels[key] = value
        return wanted

    def match(self, event: dict[str, Any]) -> bool:
        check = event.get("check") or {}
        entity = event.get("entity") or {}
        check_labels = (check.get("metadata") or {}).get("labels") or {}
        if check_labels.get(CHANGE_LABEL) == "change":
            return False
        status = check.get("status", 0)
        if (self.statuses or self.non_ok) and not (status in self.statuses or (self.non_ok and status != 0)):
            return False
        if self.entity and (entity.get("metadata") or {}).get("name") != self.entity:
            return False
        if self.check and (check.get("metadata") or {}).get("name") != self.check:
            return False
        labels = {**((entity.get("metadata") or {}).get("labels") or {}), **check_labels}
        if any(labels.get(key) != value for key, value in self.labels.items()):
            return False
        return self.silenced is None or silenced(event, self.silences, self.now) == self.silenced


def silenced(event: dict[str, Any], silences: list[dict[str, Any]], now: float) -> bool:
    """Whether the event is silenced: marked so when it was processed, or matched now by a
    silence (a silence created since is counted, as the next result of the check would be)."""
    check = event.get("check") or {}
    if check.get("is_silenced"):
        return True
    name = (check.get("metadata") or {}).get("name", "")
    subscriptions = set(check.get("subscriptions") or []) | set((event.get("entity") or {}).get("subscriptions") or [])
    for entry in silences:
        if entry.get("begin", 0) > now:
            continue
        if entry.get("check") and entry["check"] != name:
            continue
        if not entry.get("subscription") or entry["subscription"] in subscriptions:
            return True
    return False
