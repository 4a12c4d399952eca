"""What the dashboard's pages read and do: the backend's parts and actions, given once."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.backend.dashboard.changes import Changes
from pipeline.backend.dashboard.sessions import DashboardSessions
from pipeline.backend.keys import ApiKeys
from pipeline.backend.recent_metrics import RecentMetrics
from pipeline.backend.silences import Silences
from pipeline.backend.throttle import AuthGuard
from pipeline.backend.traces import PipelineTraces
from pipeline.metrics import BackendMetrics
from pipeline.model import Check
from pipeline.model.resources import Resources
from pipeline.store.base import CheckKey
from pipeline.store.service import StoreService


@dataclass(slots=True)
class DashboardContext:
    store: StoreService
    resources: Callable[[], Resources]
    keys: ApiKeys
    metrics: BackendMetrics
    silences: Silences
    #: stores a new result (a resolve is one), as the events API does: ``eventd.offer``
    offer: Callable[..., bool]
    #: ``(namespace, entity, check) -> deleted``
    delete_event: Callable[[str, str, str], Awaitable[bool]]
    #: ``(namespace, check, subscriptions or None) -> agents asked, or None when no such check``
    execute_check: Callable[[str, str, list[str] | None], Awaitable[int | None]]
    #: ``letter id -> ReplayResult or None``
    replay_dead_letter: Callable[[str], Awaitable[Any]]
    wall_clock: Callable[[], float] = time.time
    sessions: DashboardSessions = field(default_factory=DashboardSessions)
    #: ``(kind, namespace, name, "file" or "api")`` of every running resource (ResourceService.origins)
    origins: Callable[[], list[tuple[str, str, str, str]]] = list
    #: the configuration directory the backend read (None: started without one), to say which
    #: file each of the files' resources is in
    config_dir: Path | None = None
    #: what the handlers did with the last events (the event page's "what the pipeline did")
    traces: PipelineTraces | None = None
    #: the recent points of each metric series (the entity page's latest values and sparklines)
    recent_metrics: RecentMetrics | None = None
    #: ``(namespace, entity) -> when the backend last took an event from or about it``
    last_seen: Callable[[str, str], float | None] = lambda namespace, name: None
    #: every check's latest result, as the event processor holds it (keepalive states)
    latest_checks: Callable[[], Mapping[CheckKey, Check]] = dict
    #: what changed, for ``/stream`` (the backend's, told by eventd and the silences)
    changes: Changes | None = None
    #: the API's throttle of failed logins, shared by ``/login``
    guard: AuthGuard | None = None

    def __post_init__(self) -> None:
        if self.changes is None:
            self.changes = Changes(self.metrics.dashboard_stream_dropped)
        if self.guard is None:
            self.guard = AuthGuard(self.metrics)
        if self.sessions.refused is None:
            self.sessions.refused = lambda reason: self.metrics.api_unauthorized.labels(reason).inc()

    @property
    def live(self) -> Changes:
        assert self.changes is not None  # set in __post_init__
        return self.changes

    @property
    def auth_guard(self) -> AuthGuard:
        assert self.guard is not None  # set in __post_init__
        return self.guard
