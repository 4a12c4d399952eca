"""The dashboard's views, one module per page family; each is ``routes(ctx) -> list[Route]``."""

from __future__ import annotations

from collections.abc import Callable

from starlette.routing import BaseRoute

from pipeline.backend.dashboard.context import DashboardContext
from pipeline.backend.dashboard.views.config import routes as config_routes
from pipeline.backend.dashboard.views.deadletters import routes as deadletters_routes
from pipeline.backend.dashboard.views.silences import routes as silences_routes
from pipeline.backend.dashboard.views.timeline import routes as timeline_routes

View = Callable[[DashboardContext], list[BaseRoute]]

#: Every view, in the order their routes are matched (one line per module).
VIEWS: list[View] = [
    silences_routes,
    timeline_routes,
    config_routes,
    deadletters_routes,
]
