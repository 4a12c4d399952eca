"""The dashboard's views, one module per page family; each is ``routes(ctx) -> list[Route]``."""

from __future__ import annotations

from collections.abc import Callable

from starlette.routing import BaseRoute

from pipeline.backend.dashboard.context import DashboardContext
from pipeline.backend.dashboard.views import config, core, deadletters, entities, events, problems, silences, timeline

View = Callable[[DashboardContext], list[BaseRoute]]

#: Every view, in the order their routes are matched (one line per module).
VIEWS: list[View] = [
    core.routes,
    problems.routes,
    silences.routes,
    timeline.routes,
    config.routes,
    deadletters.routes,
    events.routes,
    entities.routes,
]
