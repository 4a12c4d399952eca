"""Rendering a page, the session it needs, and the checks every action passes."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import jinja2
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from pipeline.backend.dashboard.problems import ago, status_name
from pipeline.backend.dashboard.sessions import COOKIE, DashboardSessions, Viewer
from pipeline.logs import get_logger

log = get_logger("backend.dashboard")

TEMPLATES = Path(__file__).parent / "templates"
ENVIRONMENT = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,  # event output, labels and names are data: never HTML
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENVIRONMENT.filters["ago"] = ago
ENVIRONMENT.filters["status_name"] = status_name
ENVIRONMENT.globals["query_with"] = lambda request, **changes: query_with(request, **changes)


def query_with(request: Request, **changes: Any) -> str:
    """This page's query with ``changes`` (None or "" removes a parameter), as ``?...``."""
    params = {k: v for k, v in request.query_params.items() if k not in changes}
    params.update({k: str(v) for k, v in changes.items() if v not in (None, "")})
    return "?" + urlencode(params) if params else "?"


async def form_of(request: Request) -> FormData:
    """The fields of a form POST (``application/x-www-form-urlencoded``, what browsers and htmx
    send; the body is within the server's size limit). Starlette's ``request.form()`` needs
    python-multipart, which nothing else here needs."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return FormData()
    body = (await request.body()).decode("utf-8", "replace")
    fields: list[tuple[str, str | UploadFile]] = []
    try:
        fields.extend(parse_qsl(body, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS))
    except ValueError:  # more fields than that
        raise HTTPException(413, f"a form of more than {MAX_FORM_FIELDS} fields") from None
    return FormData(fields)


def local_path(target: str, fallback: str = "/") -> str:
    """``target`` when it is a path on this site (``/x``, not ``//host`` or ``http://``), else ``fallback``."""
    path = target.split("?")[0]
    if not target.startswith("/") or target.startswith("//") or "\\" in target or ":" in path:
        return fallback
    return fallback if any(ord(c) < 0x21 for c in target) else target


#: Fields of a form at most (a bulk action's ticked boxes among them).
MAX_FORM_FIELDS = 2000
Page = Callable[[Request, Viewer], Awaitable[Response]]


def render(request: Request, template: str, viewer: Viewer | None, status: int = 200, **values: Any) -> HTMLResponse:
    """``template`` with ``values``, the viewer (for the buttons and the CSRF token) and the
    request (for the current path and query)."""
    body = ENVIRONMENT.get_template(template).render(request=request, viewer=viewer, **values)
    return HTMLResponse(body, status_code=status)


def viewer_of(request: Request, sessions: DashboardSessions, now: float) -> Viewer | None:
    return sessions.viewer(request.cookies.get(COOKIE, ""), now)


def page(
    sessions: DashboardSessions, clock: Callable[[], float]
) -> Callable[[Page], Callable[[Request], Awaitable[Response]]]:
    """A view that needs a login: without one, a redirect to ``/login?next=<this page>``."""

    def wrap(view: Page) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(view)
        async def guarded(request: Request) -> Response:
            viewer = viewer_of(request, sessions, clock())
            if viewer is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
            return await view(request, viewer)

        return guarded

    return wrap


def action(
    sessions: DashboardSessions, clock: Callable[[], float]
) -> Callable[[Page], Callable[[Request], Awaitable[Response]]]:
    """A POST that changes something: a session (else 401), the admin role (else 403) and the
    session's CSRF token in the form's ``csrf`` field or the ``X-CSRF-Token`` header (else 403)."""

    def wrap(view: Page) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(view)
        async def guarded(request: Request) -> Response:
            viewer = viewer_of(request, sessions, clock())
            if viewer is None:
                sessions.refuse("dashboard_unauthenticated")
                log.info("dashboard action refused: no session", path=request.url.path)
                return HTMLResponse("log in first", status_code=401)
            if not viewer.may_act:
                sessions.refuse("dashboard_forbidden")
                log.info("dashboard action refused: role", path=request.url.path, principal=viewer.principal,
                         role=viewer.role)  # fmt: skip
                return HTMLResponse(f"a {viewer.role} may only look", status_code=403)
            token = request.headers.get("x-csrf-token", "")
            if not token:
                form = await form_of(request)
                token = str(form.get("csrf", ""))
            if not viewer.csrf_matches(token):
                sessions.refuse("dashboard_csrf")
                log.warning("dashboard action refused: CSRF token", path=request.url.path, principal=viewer.principal)
                return HTMLResponse("the form is stale or forged (CSRF token): reload the page", status_code=403)
            return await view(request, viewer)

        return guarded

    return wrap
