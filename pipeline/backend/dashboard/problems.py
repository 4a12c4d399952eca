"""The problems list, pure: which events are problems, since when, filtered, grouped, paged.

A problem is a check event whose status is not OK; change events (label
``pipeline.io/event-kind: change``) are not problems, they live on the timeline. A problem is
silenced when a silence in force matches it now (the stored ``is_silenced`` says what held when
the result came in, not after a silence was made or ended), and hidden unless asked for.

The incident started at the first non-OK result after the last OK one in the check's history;
when the whole history is non-OK, just after ``last_ok`` (or at the oldest result known, when
the check was never OK): "critical for 2 h, last result 1 min ago".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from pipeline.core.numbers import parse_int
from pipeline.core.push.common import is_change
from pipeline.core.silencing import silencing_names
from pipeline.model import DEFAULT_NAMESPACE, Check, Event
from pipeline.model.codec import UINT32
from pipeline.model.pipeline import Silenced

#: Problems on one page.
PAGE_SIZE = 100
STATUS_NAMES = {0: "ok", 1: "warning", 2: "critical", 3: "unknown"}
#: Status words the ``status`` filter takes.
STATUS_OF = {name: number for number, name in STATUS_NAMES.items()}

Key = tuple[str, str, str]


def status_name(status: int) -> str:
    return STATUS_NAMES.get(status, "unknown")


def key_of(event: Event) -> Key:
    return (event.namespace or DEFAULT_NAMESPACE, event.entity_name, event.check_name)


def incident_start(check: Check) -> int:
    """When the check's current non-OK spell began (its executed time if it is OK)."""
    start = check.executed
    for past in reversed(check.history):
        if past.status == 0:
            return start
        start = past.executed or start
    if check.last_ok and check.last_ok < start:
        return check.last_ok
    return start


def ago(seconds: float) -> str:
    """A short duration for people: ``35 s``, ``4 min``, ``2 h``, ``3 d``."""
    seconds = max(0.0, seconds)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{math.floor(seconds / size)} {unit}"
    return f"{int(seconds)} s"


@dataclass(slots=True, frozen=True)
class ProblemQuery:
    """What the page asks: filters (empty: any), the silenced shown or not, the grouping
    (``entity``, ``label:<name>`` or ``none``) and the page (from 1)."""

    status: str = ""
    entity: str = ""
    check: str = ""
    label: str = ""
    namespace: str = ""
    silenced: bool = False
    group: str = "entity"
    page: int = 1

    def matches(self, problem: Problem) -> bool:
        event = problem.event
        if self.namespace and problem.key[0] != self.namespace:
            return False
        if self.entity and problem.key[1] != self.entity:
            return False
        if self.check and problem.key[2] != self.check:
            return False
        if self.label:
            name, has_value, value = self.label.partition("=")
            labels = labels_of(event)
            if name not in labels or (has_value and labels[name] != value):
                return False
        return True

    def status_matches(self, problem: Problem) -> bool:
        if not self.status:
            return True
        wanted = STATUS_OF.get(self.status.lower())
        if wanted is None:
            wanted = parse_int(self.status, UINT32)
        return problem.status == wanted or (wanted == 3 and problem.status > 3)


@dataclass(slots=True, frozen=True)
class Problem:
    event: Event
    key: Key
    status: int
    since: int
    last: int
    silences: list[str]

    @property
    def status_name(self) -> str:
        return status_name(self.status)

    @property
    def path(self) -> str:
        return "/".join(self.key)

    @property
    def dom_id(self) -> str:
        """An HTML id for the row's box that is also a plain CSS selector (htmx looks it up)."""
        return "sel-" + self.path.encode().hex()


@dataclass(slots=True)
class ProblemPage:
    groups: list[tuple[str, list[Problem]]]
    #: problems per status name after every filter but status (the header's counts)
    counts: dict[str, int] = field(default_factory=dict)
    silenced: int = 0
    total: int = 0
    page: int = 1
    pages: int = 1


def labels_of(event: Event) -> dict[str, str]:
    labels = dict(event.entity.metadata.labels) if event.entity is not None else {}
    if event.check is not None:
        labels.update(event.check.metadata.labels)
    return labels


def problems_of(events: Iterable[Event], silences: Mapping[str, Sequence[Silenced]], now: float) -> list[Problem]:
    """Every non-OK check event that is not a change event, newest incident first."""
    found = []
    for event in events:
        check = event.check
        if check is None or check.status == 0 or is_change(event):
            continue
        key = key_of(event)
        names = silencing_names(event, silences.get(key[0], ()), now)
        found.append(Problem(event, key, check.status, incident_start(check), check.executed, names))
    found.sort(key=lambda p: (-p.since, -p.status, p.key))
    return found


def page_of(found: Sequence[Problem], query: ProblemQuery, page_size: int = PAGE_SIZE) -> ProblemPage:
    """The problems the query asks for, counted by status, grouped, one page of them."""
    shown = [p for p in found if query.matches(p) and (query.silenced or not p.silences)]
    silenced = sum(1 for p in found if query.matches(p) and p.silences)
    counts = {name: 0 for name in ("critical", "warning", "unknown")}
    for problem in shown:
        counts[problem.status_name] = counts.get(problem.status_name, 0) + 1
    listed = [p for p in shown if query.status_matches(p)]
    pages = max(1, math.ceil(len(listed) / page_size))
    number = min(max(1, query.page), pages)
    rows = listed[(number - 1) * page_size : number * page_size]
    return ProblemPage(group(rows, query.group), counts, silenced, len(listed), number, pages)


def group(rows: Sequence[Problem], by: str) -> list[tuple[str, list[Problem]]]:
    """Rows in groups, in the order each group first appears (the newest incident's first)."""
    if by == "none":
        return [("", list(rows))] if rows else []
    label = by.removeprefix("label:") if by.startswith("label:") else None
    groups: dict[str, list[Problem]] = {}
    for row in rows:
        if label is not None:
            name = labels_of(row.event).get(label, f"(no {label})")
        else:
            name = row.key[1] if row.key[0] == DEFAULT_NAMESPACE else f"{row.key[0]}/{row.key[1]}"
        groups.setdefault(name, []).append(row)
    return list(groups.items())
