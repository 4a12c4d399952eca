"""``/config``: the running checks, hooks, handlers, filters, mutators and pipelines, read-only,
each with where it comes from (a file of the config directory, with its line, or the API,
whose change wins over a file's) and the names it gives that point at nothing flagged.

Which file holds a resource is read from the config directory when the page is asked for (the
files are small, and the backend keeps no such map); a file edited since the last reload may
name a line that moved.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pipeline.backend.dashboard.context import DashboardContext
from pipeline.backend.dashboard.pages import page, render
from pipeline.backend.dashboard.sessions import Viewer
from pipeline.config.documents import read_files
from pipeline.http_params import takes_query
from pipeline.model import DEFAULT_NAMESPACE
from pipeline.model.references import dangling_references
from pipeline.model.resources import Resources

Key = tuple[str, str, str]
#: (kind, list on Resources, the section's title), in the page's order
SECTIONS = (("CheckConfig", "checks", "Checks"), ("HookConfig", "hooks", "Hooks"),
            ("Handler", "handlers", "Handlers"), ("EventFilter", "filters", "Filters"),
            ("Mutator", "mutators", "Mutators"), ("Pipeline", "pipelines", "Pipelines"))  # fmt: skip


@dataclass(slots=True)
class Item:
    """One resource as the page shows it."""

    namespace: str
    name: str
    origin: str
    details: list[tuple[str, str]]
    dangling: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Section:
    kind: str
    title: str
    items: list[Item]


def file_locations(directory: Path) -> dict[Key, str]:
    """``(kind, namespace, name) -> "file:line"`` of every resource document in ``directory``."""
    found: dict[Key, str] = {}
    for documents, _ in read_files(directory):
        for document in documents:
            data = document.data
            metadata = data.get("metadata") if isinstance(data, dict) else None
            if not isinstance(metadata, dict) or not isinstance(data.get("type"), str):
                continue
            name, namespace = metadata.get("name"), metadata.get("namespace") or DEFAULT_NAMESPACE
            if isinstance(name, str) and isinstance(namespace, str):
                found.setdefault((data["type"], namespace, name), f"{document.file}:{document.line}")
    return found


def origin_of(key: Key, origins: dict[Key, str], files: dict[Key, str]) -> str:
    where = files.get(key, "")
    if origins.get(key) == "api":
        return f"API (over {where})" if where else "API"
    return f"file {where}" if where else "file"


def details_of(kind: str, resource: Any) -> list[tuple[str, str]]:
    """The few fields that say what a resource does (no env_vars nor options: they hold secrets)."""
    return [(label, value) for label, value in _details(kind, resource) if value]


def _details(kind: str, r: Any) -> Iterator[tuple[str, str]]:
    if kind == "CheckConfig":
        yield "command", r.command
        yield "schedule", f"cron {r.cron}" if r.cron else f"every {r.interval} s" if r.interval else ""
        yield "subscriptions", ", ".join(r.subscriptions)
        yield "handlers", ", ".join(r.handlers)
        yield "pipelines", ", ".join(p.name for p in r.pipelines)
        yield "hooks", ", ".join(f"{status}: {', '.join(hooks)}" for e in r.check_hooks for status, hooks in e.items())
    elif kind == "HookConfig":
        yield "command", r.command
        yield "timeout", f"{r.timeout} s"
    elif kind == "Handler":
        yield "type", r.type or "pipe"
        yield "command", r.command
        yield "plugin", r.plugin
        yield "socket", f"{r.socket.host}:{r.socket.port}" if r.socket else ""
        yield "handlers", ", ".join(r.handlers)
        yield "filters", ", ".join(r.filters)
        yield "mutator", r.mutator
        yield "attempts", str(r.max_attempts)
    elif kind == "EventFilter":
        yield "action", r.action
        yield "expressions", " and ".join(r.expressions)
    elif kind == "Mutator":
        yield "type", r.type or "pipe"
        yield "command", r.command or r.eval or r.template
    elif kind == "Pipeline":
        yield "workflows", "; ".join(_workflow(w) for w in r.workflows)


def _workflow(workflow: Any) -> str:
    steps = [*(f.name for f in workflow.filters), *([workflow.mutator.name] if workflow.mutator else []),
             *([workflow.handler.name] if workflow.handler else [])]  # fmt: skip
    return f"{workflow.name}: {' → '.join(steps)}"


def sections(resources: Resources, origins: dict[Key, str], files: dict[Key, str]) -> tuple[list[Section], int]:
    """The page's sections, and how many dangling references there are in all."""
    problems: dict[Key, list[str]] = {}
    found = dangling_references(resources)
    for problem in found:
        problems.setdefault((problem.kind, problem.namespace, problem.name), []).append(
            f"{problem.path}: {problem.message}"
        )
    result = []
    for kind, attribute, title in SECTIONS:
        items = []
        for resource in getattr(resources, attribute):
            key = (kind, resource.metadata.namespace or DEFAULT_NAMESPACE, resource.metadata.name)
            items.append(Item(key[1], key[2], origin_of(key, origins, files), details_of(kind, resource),
                              problems.get(key, [])))  # fmt: skip
        result.append(Section(kind, title, sorted(items, key=lambda i: (i.namespace, i.name))))
    return result, len(found)


def routes(ctx: DashboardContext) -> list[BaseRoute]:
    @takes_query()
    @page(ctx.sessions, ctx.wall_clock)
    async def config(request: Request, viewer: Viewer) -> Response:
        origins = {(kind, namespace, name): source for kind, namespace, name, source in ctx.origins()}
        directory = ctx.config_dir
        files = {} if directory is None else await trio.to_thread.run_sync(file_locations, directory)
        found, dangling = sections(ctx.resources(), origins, files)
        return render(request, "config.html", viewer, sections=found, dangling=dangling,
                      directory=str(directory) if directory else "")  # fmt: skip

    return [Route("/config", config, methods=["GET"])]
