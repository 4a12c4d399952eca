"""Reloading the configuration directory (SIGHUP, ``POST /api/pipeline/v1/reload``, ``pipeline reload``).

The whole directory is loaded and validated first; if any file is broken, nothing changes: the
running configuration stays, every error is logged on its own line naming the file, document,
resource and field, and the reload is counted as failed. Otherwise the files' resources become
the base under the API's changes (see :mod:`pipeline.backend.resources`), applied as an API
change is: the pipeline reads the new set for the next event and connected agents get their
new checks without a restart.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import trio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline.backend.resources import ResourceService
from pipeline.backend.silences import Silences
from pipeline.config import load_directory
from pipeline.errors import ConfigError, ConfigErrors, StoreError
from pipeline.logs import get_logger
from pipeline.metrics import BackendMetrics

log = get_logger("backend.reload")

RELOAD = "/api/pipeline/v1/reload"


@dataclass(slots=True)
class ReloadReport:
    """``result``: ``applied`` or ``failed``; each change reads ``Kind namespace/name``."""

    result: str
    directory: str
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    #: file edits hidden by a change made through the API (the API's word is the last)
    overridden_by_api: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Reloader:
    def __init__(
        self, directory: Path | None, resources: ResourceService, silences: Silences, metrics: BackendMetrics
    ) -> None:
        self.directory = directory
        self.resources = resources
        self.silences = silences
        self.metrics = metrics
        self._lock = trio.Lock()  # SIGHUP and the API at once: one after the other

    async def reload(self) -> ReloadReport:
        async with self._lock:
            if self.directory is None:
                return self._failed("", [ConfigError("(none)", "the backend was started without --config")])
            directory = str(self.directory)
            log.info("reloading the configuration", directory=directory)
            try:
                base = await trio.to_thread.run_sync(load_directory, self.directory)
                changes, overridden = await self.resources.reload(base)
            except ConfigErrors as exc:
                return self._failed(directory, exc.errors)
            except Exception as exc:  # a bug must not turn an operator's SIGHUP into a crash
                log.exception("configuration reload failed unexpectedly", directory=directory)
                return self._failed(directory, [ConfigError(directory, f"reload failed: {exc!r}")])
            try:
                await self.silences.reload(base.silences)
            except StoreError as exc:  # the resources are applied; only the new silences are missing
                log.error("silences of the config files not created: the store failed", error=exc)
        self.metrics.config_reloads.labels("applied").inc()
        log.info("configuration reloaded", directory=directory, added=len(changes.added),
                 changed=len(changes.changed), removed=len(changes.removed),
                 overridden_by_api=len(overridden))  # fmt: skip
        return ReloadReport("applied", directory, changes.added, changes.changed, changes.removed, list(overridden))

    def _failed(self, directory: str, errors: list[ConfigError]) -> ReloadReport:
        self.metrics.config_reloads.labels("failed").inc()
        for error in errors:
            log.error("configuration error", file=error.file, line=error.line or "", document=error.document or "",
                      resource=error.resource or "", error=error.message)  # fmt: skip
        log.warning("configuration not reloaded: the running configuration stays", directory=directory,
                    errors=len(errors))  # fmt: skip
        return ReloadReport("failed", directory, errors=[str(e) for e in errors])


def reload_routes(reload: Callable[[], Awaitable[ReloadReport]]) -> list[Route]:
    """``POST /api/pipeline/v1/reload`` (admin): 200 with what changed, 422 with the errors."""

    async def reload_config(request: Request) -> Response:
        report = await reload()
        if report.result == "failed":
            body = {"message": f"configuration not reloaded: {len(report.errors)} error(s)", **report.to_dict()}
            return JSONResponse(body, status_code=422)
        return JSONResponse(report.to_dict())

    return [Route(RELOAD, reload_config, methods=["POST"])]
