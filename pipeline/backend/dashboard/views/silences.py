"""``/silences``: the silences in force, a form to create one, and a button to end one early.

A silence is named as Sensu names it, ``<subscription>:<check>`` with ``*`` for a missing part.
Its length is a duration (``2h``) or an end time (ISO-8601 with a zone, or epoch seconds);
neither means until it is ended (or, with expire_on_resolve, until the check resolves). A form
at fault is shown again, filled as it was sent, with the message beside the field at fault.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from pipeline.backend.dashboard.context import DashboardContext
from pipeline.backend.dashboard.pages import action, form_of, page, render
from pipeline.backend.dashboard.sessions import Viewer
from pipeline.backend.dashboard.shown import refused, span, utc
from pipeline.core.timespec import parse_duration, parse_time
from pipeline.errors import StoreError, ValidationError
from pipeline.http_params import takes_query
from pipeline.model import DEFAULT_NAMESPACE, ObjectMeta
from pipeline.model.pipeline import Silenced, silence_name

FIELDS = ("namespace", "subscription", "check", "reason", "duration", "end", "expire_on_resolve")
#: a reason longer than this is refused (it is shown on every page that lists the silence)
MAX_REASON = 1000


class FormError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(slots=True)
class Row:
    """One silence as the list shows it."""

    namespace: str
    name: str
    subscription: str
    check: str
    creator: str
    reason: str
    begin: str
    expires: str
    on_resolve: bool
    waiting: bool = False


def row_of(entry: Silenced, now: float) -> Row:
    if entry.expire_at:
        expires = f"{utc(entry.expire_at)} (in {span(entry.expire_at - now)})"
    else:
        expires = "when ended" if not entry.expire_on_resolve else "when the check resolves"
    return Row(entry.metadata.namespace or DEFAULT_NAMESPACE, entry.metadata.name, entry.subscription or "*",
               entry.check or "*", entry.creator, entry.reason, utc(entry.begin), expires, entry.expire_on_resolve,
               waiting=entry.begin > now)  # fmt: skip


def silence_from(form: dict[str, str], ctx: DashboardContext, creator: str, now: float) -> Silenced:
    """The silence a create form asks for (raises FormError naming the field at fault)."""
    namespace = form.get("namespace", "").strip() or DEFAULT_NAMESPACE
    if not ctx.resources().namespace_exists(namespace):
        raise FormError("namespace", f"no namespace {namespace!r}")
    subscription, check = form.get("subscription", "").strip(), form.get("check", "").strip()
    reason = form.get("reason", "").strip()
    if len(reason) > MAX_REASON:
        raise FormError("reason", f"{len(reason)} characters: at most {MAX_REASON}")
    entry = Silenced(ObjectMeta(name=silence_name(subscription, check), namespace=namespace), creator=creator,
                     check=check, reason=reason, subscription=subscription,
                     expire_on_resolve=form.get("expire_on_resolve", "") not in ("", "off", "false"),
                     expire=_length(form, now))  # fmt: skip
    try:
        entry.validate()
    except ValidationError as exc:
        raise FormError(exc.path if exc.path in ("subscription", "check") else "subscription", exc.message) from None
    if any(e.metadata.name == entry.metadata.name for e in ctx.silences.list(namespace)):
        raise FormError("subscription", f"silence {entry.metadata.name!r} exists in {namespace}: end it first")
    return entry


def _length(form: dict[str, str], now: float) -> int:
    """Seconds from now until the silence ends; -1 for no end (Sensu's ``expire``)."""
    duration, end = form.get("duration", "").strip(), form.get("end", "").strip()
    if duration and end:
        raise FormError("end", "give a duration or an end time, not both")
    if duration:
        try:
            seconds = parse_duration(duration)
        except ValueError as exc:
            raise FormError("duration", str(exc)) from None
        if seconds <= 0:
            raise FormError("duration", "must be longer than 0 s")
        return seconds
    if end:
        try:
            at = parse_time(end, now)
        except ValueError as exc:
            raise FormError("end", str(exc)) from None
        if at <= now:
            raise FormError("end", f"{utc(at)} is past: give a time to come (for a length, use the duration)")
        return at - int(now)
    return -1


def routes(ctx: DashboardContext) -> list[BaseRoute]:
    clock = ctx.wall_clock

    def listing(request: Request, viewer: Viewer | None, status: int = 200, **values: Any) -> Response:
        now = clock()
        rows = [row_of(entry, now) for entry in ctx.silences.list(None)]
        values.setdefault("form", {name: "" for name in FIELDS})
        values.setdefault("errors", {})
        values.setdefault("notice", "")
        return render(request, "silences.html", viewer, status, rows=rows, **values)

    @takes_query()
    @page(ctx.sessions, clock)
    async def silences(request: Request, viewer: Viewer) -> Response:
        return listing(request, viewer)

    @takes_query()
    @action(ctx.sessions, clock)
    async def create(request: Request, viewer: Viewer) -> Response:
        form = {name: str(value) for name, value in (await form_of(request)).items() if name in FIELDS}
        try:
            entry = silence_from(form, ctx, viewer.principal, clock())
            await ctx.silences.put(entry)
        except FormError as exc:
            refused(ctx.metrics, "silence", exc.field, exc.message, viewer.principal)
            form = {name: form.get(name, "") for name in FIELDS}
            return listing(request, viewer, 400, form=form, errors={exc.field: exc.message})
        except StoreError as exc:
            return listing(request, viewer, 503, notice=f"the silence was not saved: {exc}")
        return RedirectResponse("/silences", status_code=303)

    @takes_query()
    @action(ctx.sessions, clock)
    async def end(request: Request, viewer: Viewer) -> Response:
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        try:
            ended = await ctx.silences.delete(namespace, name)
        except StoreError as exc:
            return listing(request, viewer, 503, notice=f"the silence was not ended: {exc}")
        if not ended:
            refused(ctx.metrics, "silence_end", "name", f"no silence {name!r} in {namespace}", viewer.principal)
            return listing(request, viewer, 404, notice=f"no silence {name!r} in {namespace} (ended already?)")
        return RedirectResponse("/silences", status_code=303)

    return [Route("/silences", silences, methods=["GET"]),
            Route("/actions/silences", create, methods=["POST"]),
            Route("/actions/silences/{namespace}/{name}/end", end, methods=["POST"])]  # fmt: skip
