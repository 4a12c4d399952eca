"""``/timeline``: change events (deploys, package installs, container events) and check state
changes interleaved by time, oldest first, filterable by entity, type (the check name) and
window, paged on the server with the store's cursor.

A check result that did not change its check's status is not shown: the timeline answers
"what happened", and a check that stayed OK for a day happened 1,440 times. Which results
changed state is read from each stored result's history (its previous status is the entry
before its own), so a page needs no other query.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pipeline.backend.dashboard.context import DashboardContext
from pipeline.backend.dashboard.pages import page, render
from pipeline.backend.dashboard.sessions import Viewer
from pipeline.backend.dashboard.shown import refused, utc
from pipeline.core.push.common import is_change
from pipeline.core.timespec import parse_time
from pipeline.errors import StoreError
from pipeline.http_params import takes_query
from pipeline.model import DEFAULT_NAMESPACE, Event
from pipeline.store.base import TimelineQuery

PARAMETERS = ("namespace", "entity", "type", "since", "until", "continue")
#: the window a page opens with, when ``since`` is not given at all
DEFAULT_SINCE = "24h"
#: entries a page shows (about: it may show a few more, see :func:`read_page`)
PAGE = 100
#: logged results one page reads at most, shown or not: a window of a million unchanged
#: results answers in bounded time, with a link to read on
MAX_SCANNED = 5000
#: the fewest logged results one store query reads
MIN_BATCH = 25
#: a line of output longer than this is cut on the page (the event page shows it whole)
OUTPUT_SHOWN = 200
STATUS_WORDS = {0: "OK", 1: "WARNING", 2: "CRITICAL"}


@dataclass(slots=True, frozen=True)
class Entry:
    """One line of the timeline."""

    when: str
    kind: str  # "change" or "state"
    namespace: str
    entity: str
    check: str
    status: int
    transition: str
    output: str
    entity_url: str
    event_url: str


def status_word(status: int) -> str:
    return STATUS_WORDS.get(status, f"UNKNOWN ({status})")


def changed_state(event: Event) -> bool:
    """Whether a check result changed its check's status (a first result: when it is not OK)."""
    check = event.check
    if check is None:
        return False
    if len(check.history) < 2:
        return check.status != 0
    return check.history[-1].status != check.history[-2].status


def entry_of(event: Event) -> Entry:
    assert event.check is not None
    check, namespace = event.check, event.namespace or DEFAULT_NAMESPACE
    change = is_change(event)
    if change or len(check.history) < 2:
        transition = status_word(check.status)
    else:
        transition = f"{status_word(check.history[-2].status)} → {status_word(check.status)}"
    first_line = check.output.strip().splitlines()[0] if check.output.strip() else ""
    output = first_line if len(first_line) <= OUTPUT_SHOWN else first_line[:OUTPUT_SHOWN] + "…"
    name, entity = check.metadata.name, event.entity_name
    return Entry(utc(event.timestamp or check.executed), "change" if change else "state", namespace, entity, name,
                 check.status, transition, output, f"/entities/{_seg(namespace)}/{_seg(entity)}",
                 f"/events/{_seg(namespace)}/{_seg(entity)}/{_seg(name)}")  # fmt: skip


def _seg(text: str) -> str:
    return quote(text, safe="")


async def read_page(ctx: DashboardContext, query: TimelineQuery) -> tuple[list[Entry], str, int]:
    """The entries of one page from ``query.after`` on, the cursor of the next (empty at the
    end) and how many logged results were read. Whole store pages are shown, so a page may hold
    up to ``MIN_BATCH - 1`` entries over :data:`PAGE`."""
    entries: list[Entry] = []
    scanned, cursor = 0, ""
    while len(entries) < PAGE and scanned < MAX_SCANNED:
        limit = min(max(PAGE - len(entries), MIN_BATCH), MAX_SCANNED - scanned)
        events, cursor = await ctx.store.timeline(_with(query, limit, cursor))
        scanned += len(events)
        entries.extend(entry_of(e) for e in events if e.check is not None and (is_change(e) or changed_state(e)))
        if not cursor:
            break
    return entries, cursor, scanned


def _with(query: TimelineQuery, limit: int, cursor: str) -> TimelineQuery:
    after = TimelineQuery.cursor(cursor) if cursor else query.after
    return TimelineQuery(query.namespace, query.since, query.until, query.entity, query.check, limit, after)


class FilterError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def query_of(params: dict[str, str], now: float) -> TimelineQuery:
    """The store query the filters ask for (raises FilterError naming the field at fault)."""
    bounds: dict[str, int | None] = {}
    for name in ("since", "until"):
        try:
            bounds[name] = parse_time(params[name], now) if params[name].strip() else None
        except ValueError as exc:
            raise FilterError(name, str(exc)) from None
    try:
        after = TimelineQuery.cursor(params["continue"]) if params["continue"] else None
    except ValueError as exc:
        raise FilterError("continue", f"{exc} (follow the page's own link)") from None
    namespace = params["namespace"].strip() or DEFAULT_NAMESPACE
    return TimelineQuery(namespace, bounds["since"], bounds["until"], params["entity"].strip(),
                         params["type"].strip(), PAGE, after)  # fmt: skip


def routes(ctx: DashboardContext) -> list[BaseRoute]:
    clock = ctx.wall_clock

    @takes_query(*PARAMETERS)
    @page(ctx.sessions, clock)
    async def timeline(request: Request, viewer: Viewer) -> Response:
        params = {name: request.query_params.get(name, "") for name in PARAMETERS}
        if "since" not in request.query_params:
            params["since"] = DEFAULT_SINCE
        values: dict[str, Any] = {"filters": params, "entries": [], "next_url": "", "scanned": 0, "error": ""}
        try:
            query = query_of(params, clock())
            entries, cursor, scanned = await read_page(ctx, query)
        except FilterError as exc:
            refused(ctx.metrics, "timeline", exc.field, exc.message, viewer.principal)
            return render(request, "timeline.html", viewer, 400, **{**values, "error": str(exc)})
        except StoreError as exc:
            return render(request, "timeline.html", viewer, 503, **{**values, "error": f"the store failed: {exc}"})
        if cursor:
            following = {name: value for name, value in params.items() if value and name != "continue"}
            following.setdefault("since", "")  # an empty since means "no bound", not the default window
            values["next_url"] = "/timeline?" + urlencode({**following, "continue": cursor})
        values.update(entries=entries, scanned=scanned)
        return render(request, "timeline.html", viewer, **values)

    return [Route("/timeline", timeline, methods=["GET"])]
