"""Rendering a page, the session it needs, and the checks every action passes."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from pipeline.backend.dashboard.forms import form_fields
from pipeline.backend.dashboard.sessions import COOKIE, DashboardSessions, Viewer

TEMPLATES = Path(__file__).parent / "templates"
ENVIRONMENT = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,  # event output, labels and names are data: never HTML
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

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
                return HTMLResponse("log in first", status_code=401)
            if not viewer.may_act:
                return HTMLResponse(f"a {viewer.role} may only look", status_code=403)
            token = request.headers.get("x-csrf-token", "")
            if not token:
                token = (await form_fields(request)).get("csrf", "")
            if not viewer.csrf_matches(token):
                return HTMLResponse("the form is stale or forged (CSRF token): reload the page", status_code=403)
            return await view(request, viewer)

        return guarded

    return wrap
