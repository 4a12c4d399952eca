"""``/``, the problems list, and its actions under ``/actions/...``: Silence, Resolve, Run now
and Delete, on one event (the row's button: ``one``) or on every box ticked (``event``).

Each action is a plain form POST answered with a redirect back (no JavaScript needed); htmx
posts the same form and gets a line for the page's notice area instead, and the list refetches
itself (the ``problems-changed`` trigger, and the live stream's notices)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from pipeline.backend.dashboard.context import DashboardContext
from pipeline.backend.dashboard.pages import action, form_of, local_path, page, render
from pipeline.backend.dashboard.problems import Key, ProblemQuery, page_of, problems_of
from pipeline.backend.dashboard.sessions import Viewer
from pipeline.backend.eventd import Outcome, Replays
from pipeline.backend.intake import STORE_REFUSED, PipelineFull, store_all
from pipeline.core.numbers import parse_int
from pipeline.errors import StoreError, ValidationError
from pipeline.http_params import takes_query
from pipeline.logs import get_logger
from pipeline.model import ObjectMeta
from pipeline.model.pipeline import Silenced, silence_name

log = get_logger("backend.dashboard")

#: The pages a query may ask for (any other text is the first page, as it always was).
PAGES = (1, 2**31 - 1)
#: Events one bulk action takes at most (a page's worth).
MAX_BULK = 500
Act = Callable[[DashboardContext, Viewer, Key], Awaitable[str | None]]


def query_of(request: Request) -> ProblemQuery:
    q = request.query_params
    page = q.get("page", "1")
    return ProblemQuery(status=q.get("status", ""), entity=q.get("entity", ""), check=q.get("check", ""),
                        label=q.get("label", ""), namespace=q.get("namespace", ""),
                        silenced=q.get("silenced", "") in ("1", "true", "yes", "on"),
                        group=q.get("group", "entity") or "entity",
                        page=parse_int(page, PAGES) or 1)  # fmt: skip


def routes(ctx: DashboardContext) -> list[BaseRoute]:
    @takes_query("status", "entity", "check", "label", "namespace", "silenced", "group", "page", "done")
    async def problems(request: Request, viewer: Viewer) -> Response:
        now = ctx.wall_clock()
        silences: dict[str, list[Silenced]] = defaultdict(list)
        for entry in ctx.silences.list(None):
            silences[entry.metadata.namespace or "default"].append(entry)
        query = query_of(request)
        found = problems_of(await ctx.store.list_events(query.namespace or None), silences, now)
        listing = page_of(found, query)
        template = "_problems.html" if request.headers.get("hx-target") == "problems" else "problems.html"
        return render(request, template, viewer, listing=listing, query=query, now=now,
                      done=request.query_params.get("done", ""))  # fmt: skip

    def acting(name: str, act: Act) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request, viewer: Viewer) -> Response:
            form = await form_of(request)
            keys = chosen(form)
            if keys is None:
                return answer(request, form, f"{name}: choose at most {MAX_BULK} events", 400)
            if not keys:
                return answer(request, form, f"{name}: no event chosen (tick a box)", 400)
            failures = []
            for key in keys:
                try:
                    problem = await act(ctx, viewer, key)
                except (StoreError, ValidationError) as exc:
                    problem = str(exc)
                if problem:
                    failures.append(f"{'/'.join(key[1:])}: {problem}")
            log.info("dashboard action", did=name, principal=viewer.principal, events=len(keys),
                     failed=len(failures))  # fmt: skip
            done = f"{name}: {len(keys) - len(failures)} of {len(keys)} done"
            return answer(request, form, "; ".join([done, *failures]), 200 if not failures else 409)

        endpoint.__name__ = f"action_{name.lower().replace(' ', '_')}"
        return action(ctx.sessions, ctx.wall_clock)(endpoint)

    return [
        Route("/", page(ctx.sessions, ctx.wall_clock)(problems), methods=["GET"]),
        Route("/actions/silence", acting("Silence", silence), methods=["POST"]),
        Route("/actions/resolve", acting("Resolve", resolve), methods=["POST"]),
        Route("/actions/run", acting("Run now", run_now), methods=["POST"]),
        Route("/actions/delete", acting("Delete", delete), methods=["POST"]),
    ]


def chosen(form: FormData) -> list[Key] | None:
    """The events a form names: the row's ``one``, else every ticked ``event`` (None: too many)."""
    values = [str(form["one"])] if form.get("one") else [str(v) for v in form.getlist("event")]
    if len(values) > MAX_BULK:
        return None
    keys = []
    for value in dict.fromkeys(values):
        namespace, entity, check = [*value.split("/", 2), "", ""][:3]
        if namespace and entity and check:
            keys.append((namespace, entity, check))
    return keys


def answer(request: Request, form: FormData, message: str, status: int) -> Response:
    """For htmx, the message (the list refetches itself); without JavaScript, back to the page."""
    if request.headers.get("hx-request"):
        response = HTMLResponse(f'<p class="notice">{_escape(message)}</p>', status_code=200)
        response.headers["HX-Trigger"] = "problems-changed"
        return response
    target = local_path(str(form.get("next", "/")))
    separator = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{separator}done={quote(message)}", status_code=303)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


async def silence(ctx: DashboardContext, viewer: Viewer, key: Key) -> str | None:
    """A silence of the check on the entity's own subscription (``entity:<name>``), with no end."""
    namespace, entity, check = key
    subscription = f"entity:{entity}"
    entry = Silenced(metadata=ObjectMeta(name=silence_name(subscription, check), namespace=namespace), expire=-1,
                     creator=viewer.principal, check=check, subscription=subscription,
                     reason=f"silenced from the dashboard by {viewer.principal}")  # fmt: skip
    entry.validate()
    await ctx.silences.put(entry)
    return None


async def resolve(ctx: DashboardContext, viewer: Viewer, key: Key) -> str | None:
    """A new OK result of the event, as ``sensuctl event resolve`` stores one."""
    event = await ctx.store.get_event(*key)
    if event is None or event.check is None:
        return "no such event"
    now = int(ctx.wall_clock())
    event.check.status = 0
    event.check.output = f"Resolved manually by {viewer.principal} on the dashboard"
    event.check.executed = now
    event.check.issued = now
    event.timestamp = now
    try:
        (outcome,) = await store_all(ctx.offer, [event], replays=Replays.RENEW)
    except PipelineFull:
        return "the pipeline is full; try again shortly"
    if outcome is Outcome.REFUSED:
        return STORE_REFUSED
    return "the event store failed; try again" if outcome is Outcome.FAILED else None


async def run_now(ctx: DashboardContext, viewer: Viewer, key: Key) -> str | None:
    namespace, entity, check = key
    asked = await ctx.execute_check(namespace, check, [f"entity:{entity}"])
    if asked is None:
        return f"no check {check!r} is configured to run"
    return None if asked else f"no agent of entity:{entity} is connected to run it"


async def delete(ctx: DashboardContext, viewer: Viewer, key: Key) -> str | None:
    return None if await ctx.delete_event(*key) else "no such event"
