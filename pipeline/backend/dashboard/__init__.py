"""The operators' web dashboard, served by the backend on its API port.

Server-rendered Jinja2 pages with htmx and its SSE extension, shipped inside the package
(``static/``: no build step, no CDN, works on an air-gapped network). Every view is a plain GET
that works without JavaScript; one server-sent-events stream (``/stream``) tells open pages what
changed so that they refresh the part that did. Login is by API key or user and password, into
a session cookie (HttpOnly, SameSite=Strict); every action carries a CSRF token; a viewer sees no
buttons and is refused if it tries.

Layout:

- :mod:`.context`: :class:`~.context.DashboardContext`, what the pages read and do (the store,
  the resources, the backend's actions), built once by the backend;
- :mod:`.pages`: rendering, the session a page needs, the CSRF check of an action;
- :mod:`.views`: one module per page family, each ``routes(ctx) -> list[Route]``;
- ``templates/`` (``base.html`` and one template per page) and ``static/``.
"""

from __future__ import annotations

import re

from starlette.routing import BaseRoute

from pipeline.backend.dashboard.context import DashboardContext
from pipeline.backend.dashboard.views import VIEWS

__all__ = ["DASHBOARD_PATHS", "DashboardContext", "dashboard_routes"]

#: The dashboard's paths: the API's key gate lets them through, and each page checks the
#: session cookie itself (a login form for a browser, not a 401).
DASHBOARD_PATHS = re.compile(
    r"\A/(|login|logout|stream|static/[^/]+|events/[^/]+/[^/]+/[^/]+|entities(/[^/]+/[^/]+)?"
    r"|silences|timeline|config|deadletters|actions/[^?#]+)\Z"
)


def dashboard_routes(ctx: DashboardContext) -> list[BaseRoute]:
    """Every route of the dashboard (mounted by the backend before the API's catch-alls)."""
    return [route for view in VIEWS for route in view(ctx)]
