"""``/deadletters``: the events a handler failed to take after every attempt, with a button to
hand one to its handler again. A replay that works deletes the letter; one that fails keeps it
with the new error and one more attempt. After the replay the page is shown again (a 303, so a
reload does not replay twice) saying how it went."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from pipeline.backend.dashboard.context import DashboardContext
from pipeline.backend.dashboard.pages import action, page, render
from pipeline.backend.dashboard.sessions import Viewer
from pipeline.backend.dashboard.shown import refused, utc
from pipeline.core.numbers import parse_int
from pipeline.errors import StoreError
from pipeline.http_params import takes_query
from pipeline.model import DEFAULT_NAMESPACE
from pipeline.model.deadletter import DeadLetter

LEGACY_WORKFLOW = "legacy-pipeline-workflow-"
#: letters a page shows
PAGE = 100
#: the end of an error a letter shows (a traceback names the exception last)
ERROR_SHOWN = 2000


@dataclass(slots=True, frozen=True)
class Row:
    id: str
    created: str
    namespace: str
    handler: str
    workflow: str
    entity: str
    check: str
    status: int
    event_url: str
    error: str
    attempts: int


def row_of(letter: DeadLetter) -> Row:
    event = letter.event
    namespace = letter.namespace or event.namespace or DEFAULT_NAMESPACE
    entity, check = event.entity_name, event.check.metadata.name if event.check is not None else ""
    url = "/events/" + "/".join(quote(s, safe="") for s in (namespace, entity, check)) if entity and check else ""
    error = letter.error if len(letter.error) <= ERROR_SHOWN else "…" + letter.error[-ERROR_SHOWN:]
    status = event.check.status if event.check is not None else 0
    # a handler named by a check runs in a workflow of its own: its name says nothing more
    workflow = "" if letter.workflow == f"{LEGACY_WORKFLOW}{letter.handler}" else letter.workflow
    if letter.pipeline:
        workflow = f"pipeline {letter.pipeline}, workflow {workflow}"
    return Row(letter.id, utc(letter.created), namespace, letter.handler, workflow, entity, check, status, url,
               error, letter.attempts)  # fmt: skip


def routes(ctx: DashboardContext) -> list[BaseRoute]:
    clock = ctx.wall_clock

    @takes_query("page", "replayed", "ok")
    @page(ctx.sessions, clock)
    async def dead_letters(request: Request, viewer: Viewer) -> Response:
        params = request.query_params
        number = parse_int(params.get("page", "1"), (1, 1_000_000)) or 1
        try:
            letters = await ctx.store.list_dead_letters()  # oldest first
        except StoreError as exc:
            return render(request, "deadletters.html", viewer, 503, rows=[], total=0, page=1, pages=1,
                          notice=f"the store failed: {exc}", failed=True, replayed="")  # fmt: skip
        pages = max(1, -(-len(letters) // PAGE))
        number = min(number, pages)
        rows = [row_of(letter) for letter in letters[(number - 1) * PAGE : number * PAGE]]
        replayed, ok = params.get("replayed", ""), params.get("ok", "")
        notice, failed = "", False
        if replayed and ok == "1":
            notice = f"Dead letter {replayed} replayed: its handler took the event (the letter is gone)."
        elif replayed:
            still = next((r for r in rows if r.id == replayed), None)
            failed = True
            notice = f"Replay of dead letter {replayed} failed" + (f": {still.error}" if still else ".")
        return render(request, "deadletters.html", viewer, rows=rows, total=len(letters), page=number, pages=pages,
                      notice=notice, failed=failed, replayed=replayed)  # fmt: skip

    @takes_query()
    @action(ctx.sessions, clock)
    async def replay(request: Request, viewer: Viewer) -> Response:
        letter_id = request.path_params["id"]
        result = await ctx.replay_dead_letter(letter_id)
        if result is None:
            refused(ctx.metrics, "deadletter_replay", "id", f"no dead letter {letter_id!r}", viewer.principal)
            return render(request, "deadletters.html", viewer, 404, rows=[], total=0, page=1, pages=1,
                          notice=f"no dead letter {letter_id!r} (replayed or deleted already?)", failed=True,
                          replayed="")  # fmt: skip
        query = urlencode({"replayed": letter_id, "ok": "1" if result.ok else "0"})
        return RedirectResponse(f"/deadletters?{query}", status_code=303)

    return [Route("/deadletters", dead_letters, methods=["GET"]),
            Route("/actions/deadletters/{id}/replay", replay, methods=["POST"])]  # fmt: skip
