"""Resources changed at run time through the API: validated against the whole set, kept in
the store, and applied at once (the pipeline reads the new set for the next event; connected
agents get their new checks).

The running set is the config directory's resources (the base) with the API's changes on top,
the API's word being the last. A reload of the directory replaces the base and keeps the API's
changes: a resource removed from the files is gone unless the API created or changed it, and a
file's edit of a resource the API changed stays hidden behind the API's version (reported as
``overridden_by_api``). That is exactly what a restart would run."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import trio

from pipeline.config.diff import ResourceDiff, diff, label
from pipeline.config.loader import resource_from_document
from pipeline.config.overlay import Change, key_of, overlay
from pipeline.errors import ConfigError, ConfigErrors, StoreError, ValidationError
from pipeline.logs import get_logger
from pipeline.model import DEFAULT_NAMESPACE
from pipeline.model.resources import Resources
from pipeline.store.service import StoreService

log = get_logger("backend.resources")

#: API path segment -> resource kind (silences have their own API).
API_KINDS = {"checks": "CheckConfig", "hooks": "HookConfig", "handlers": "Handler", "filters": "EventFilter",
             "mutators": "Mutator", "pipelines": "Pipeline"}  # fmt: skip
_LISTS = {"CheckConfig": "checks", "HookConfig": "hooks", "Handler": "handlers", "EventFilter": "filters",
          "Mutator": "mutators", "Pipeline": "pipelines"}  # fmt: skip


class ResourceService:
    def __init__(
        self,
        base: Resources,
        store: StoreService,
        *,
        check: Callable[[Resources], None] = lambda resources: None,
        changed: Callable[[Resources], Awaitable[None]] | None = None,
        skipped: Callable[[str], None] = lambda kind: None,
    ) -> None:
        self.base = base
        self.store = store
        self.current = base
        self._changes: dict[tuple[str, str, str], Any] = {}
        self._check = check
        self._changed = changed
        #: one change at a time: an API change and a reload both build on the current base
        self._lock = trio.Lock()
        self._skipped = skipped

    async def load(self) -> None:
        """Apply the changes made through the API before this start."""
        for kind, namespace, name, document in await self.store.list_resources():
            try:
                resource = None if document is None else resource_from_document(json.loads(document))
            except (ValidationError, ValueError, RecursionError) as exc:
                # Stored by an older version (before ranges, say): one bad resource must not stop the backend.
                self._skipped(kind)
                log.error("stored resource no longer loads; skipped", kind=kind, namespace=namespace, resource=name,
                          field=getattr(exc, "path", ""), error=getattr(exc, "message", str(exc)))  # fmt: skip
                continue
            self._changes[(kind, namespace, name)] = resource
        self.current = overlay(self.base, self._changed_list())
        log.info("resources loaded", changed_through_api=len(self._changes))

    def _changed_list(self, extra: Change | None = None) -> list[Change]:
        changes = [(*key, resource) for key, resource in self._changes.items()]
        return [*changes, extra] if extra is not None else changes

    def list(self, kind: str, namespace: str | None) -> list[Any]:
        """The resources of ``kind`` in ``namespace`` (None: in every namespace)."""
        items: list[Any] = getattr(self.current, _LISTS[kind])
        return [r for r in items if namespace is None or (r.metadata.namespace or DEFAULT_NAMESPACE) == namespace]

    def get(self, kind: str, namespace: str, name: str) -> Any:
        return next((r for r in self.list(kind, namespace) if r.metadata.name == name), None)

    async def put(self, document: dict[str, Any]) -> Any:
        """Create or replace a resource (raises ValidationError naming the field or the reference)."""
        resource = resource_from_document(document)
        key = key_of(resource)
        await self._apply(key, resource, json.dumps(document).encode())
        log.info("resource saved", kind=key[0], namespace=key[1], name=key[2])
        return resource

    async def delete(self, kind: str, namespace: str, name: str) -> bool:
        if self.get(kind, namespace, name) is None:
            return False
        await self._apply((kind, namespace, name), None, None)
        log.info("resource deleted", kind=kind, namespace=namespace, name=name)
        return True

    async def reload(self, base: Resources) -> tuple[ResourceDiff, Sequence[str]]:
        """Run ``base`` (the directory's resources, loaded and valid on their own) under the API's
        changes: what changed, and the file edits the API's changes hide. Raises ConfigErrors when
        the API's resources no longer fit the new files (a handler they name was removed, say)."""
        async with self._lock:
            candidate = overlay(base, self._changed_list())
            problems = [ConfigError("(resources changed through the API)", f"{p.path}: {p.message}",
                                    resource=f"{p.kind} {p.name!r}") for p in candidate.reference_errors()]  # fmt: skip
            if problems:
                raise ConfigErrors(problems)
            try:
                self._check(candidate)
            except ValidationError as exc:
                raise ConfigErrors([ConfigError("(handlers)", str(exc))]) from None
            changes = diff(self.current, candidate)
            hidden = diff(self.base, base)
            api_keys = {label(key) for key in self._changes}
            overridden = [name for name in [*hidden.added, *hidden.changed, *hidden.removed] if name in api_keys]
            self.base, self.current = base, candidate
            if self._changed is not None and not changes.empty:
                await self._changed(candidate)
            return changes, overridden

    async def _apply(self, key: tuple[str, str, str], resource: Any, document: bytes | None) -> None:
        async with self._lock:
            await self._apply_unlocked(key, resource, document)

    async def _apply_unlocked(self, key: tuple[str, str, str], resource: Any, document: bytes | None) -> None:
        candidate = overlay(self.base, self._changed_list((*key, resource)))
        problems = candidate.reference_errors()
        if problems:
            first = problems[0]
            raise ValidationError(first.path, f"{first.kind} {first.name!r}: {first.message}")
        self._check(candidate)  # e.g. a plugin that cannot be loaded
        try:
            await self.store.put_resource(*key, document)
        except StoreError:
            log.error("resource change not stored", kind=key[0], name=key[2])
            raise
        self._changes[key] = resource
        self.current = candidate
        if self._changed is not None:
            await self._changed(candidate)
