"""Resources changed at run time through the API: validated against the whole set, kept in
the store, and applied at once (the pipeline reads the new set for the next event; connected
agents get their new checks).

The running set is the config directory's resources (the base) with the API's changes on top,
the API's word being the last. A reload of the directory replaces the base and keeps the API's
changes: a resource removed from the files is gone unless the API created or changed it, and a
file's edit of a resource the API changed stays hidden behind the API's version (reported as
``overridden_by_api``). That is exactly what a restart would run.

A name that points at nothing (a check naming a handler not created yet) is accepted, as in
Sensu Go: one warning line each at load and reload, and a gauge by kind. Deleting what
something still names is refused (:class:`ResourceInUse`, naming who names it).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import trio

from pipeline.config.diff import ResourceDiff, diff, label
from pipeline.config.loader import resource_from_document
from pipeline.config.overlay import Change, all_resources, key_of, overlay
from pipeline.errors import (
    ConfigError,
    ConfigErrors,
    DocumentsRefused,
    ResourceInUse,
    StoreError,
    ValidationError,
)
from pipeline.logs import get_logger
from pipeline.metrics import BackendMetrics
from pipeline.model import DEFAULT_NAMESPACE
from pipeline.model.references import WORDS, dangling_references, referrers
from pipeline.model.resources import Resources
from pipeline.store.service import StoreService

log = get_logger("backend.resources")

#: API path segment -> resource kind (silences have their own API).
API_KINDS = {"checks": "CheckConfig", "hooks": "HookConfig", "handlers": "Handler", "filters": "EventFilter",
             "mutators": "Mutator", "pipelines": "Pipeline", "assets": "Asset"}  # fmt: skip
_LISTS = {"CheckConfig": "checks", "HookConfig": "hooks", "Handler": "handlers", "EventFilter": "filters",
          "Mutator": "mutators", "Pipeline": "pipelines", "Namespace": "namespaces", "Asset": "assets"}  # fmt: skip
#: the kinds the gauge of dangling references always shows (0 when none)
NAMING_KINDS = ("CheckConfig", "Handler", "Pipeline")

Key = tuple[str, str, str]
#: (``list`` is also a method of ResourceService: these aliases keep annotations inside it plain)
Changes = list[Change]
Keys = list[Key]
Documents = list[Any]
Origins = list[tuple[str, str, str, str]]


class ResourceService:
    def __init__(
        self,
        base: Resources,
        store: StoreService,
        *,
        check: Callable[[Resources], None] = lambda resources: None,
        changed: Callable[[Resources], Awaitable[None]] | None = None,
        skipped: Callable[[str], None] = lambda kind: None,
        metrics: BackendMetrics | None = None,
    ) -> None:
        self.base = base
        self.store = store
        self.current = base
        self._changes: dict[Key, Any] = {}
        self._check = check
        self._changed = changed
        #: one change at a time: an API change and a reload both build on the current base
        self._lock = trio.Lock()
        self._skipped = skipped
        self._metrics = metrics

    async def load(self) -> None:
        """Apply the changes made through the API before this start; register the files' entities."""
        self._changes = await self._stored_changes()
        self.current = overlay(self.base, self._changed_list())
        log.info("resources loaded", changed_through_api=len(self._changes))
        self._report_dangling(self.current)
        await self._register_entities(self.base)

    async def _stored_changes(self) -> dict[Key, Any]:
        changes: dict[Key, Any] = {}
        for kind, namespace, name, document in await self.store.list_resources():
            try:
                resource = None if document is None else resource_from_document(json.loads(document))
            except (ValidationError, ValueError, RecursionError) as exc:
                # Stored by an older version (before ranges, say): one bad resource must not stop the backend.
                self._skipped(kind)
                log.error("stored resource no longer loads; skipped", kind=kind, namespace=namespace, resource=name,
                          field=getattr(exc, "path", ""), error=getattr(exc, "message", str(exc)))  # fmt: skip
                continue
            changes[(kind, namespace, name)] = resource
        return changes

    async def follow_store(self) -> bool:
        """Another backend sharing the store changed resources through its API: run the store's
        changes here too. False (logged, the running set kept) when they do not fit this backend
        (a plugin handler it lacks, say)."""
        async with self._lock:
            stored = await self._stored_changes()
            if stored == self._changes:
                return True
            candidate = overlay(self.base, [(*key, resource) for key, resource in stored.items()])
            try:
                self._check(candidate)
            except ValidationError as exc:
                log.error("resources changed by another backend do not run here; kept the running ones",
                          field=exc.path, error=exc.message)  # fmt: skip
                return False
            changed = [key for key in {*stored, *self._changes} if stored.get(key) != self._changes.get(key)]
            self._changes, self.current = stored, candidate
            self._report_dangling(candidate, only=set(changed))
            log.info("resources changed by another backend", changes=len(changed))
            if self._changed is not None:
                await self._changed(candidate)
        return True

    def _changed_list(self, extra: Sequence[Change] = ()) -> list[Change]:
        return [*((*key, resource) for key, resource in self._changes.items()), *extra]

    def list(self, kind: str, namespace: str | None) -> list[Any]:
        """The resources of ``kind`` in ``namespace`` (None: in every namespace)."""
        items: list[Any] = getattr(self.current, _LISTS[kind])
        if kind == "Namespace":
            return list(items)
        return [r for r in items if namespace is None or (r.metadata.namespace or DEFAULT_NAMESPACE) == namespace]

    def get(self, kind: str, namespace: str, name: str) -> Any:
        return next((r for r in self.list(kind, namespace) if r.metadata.name == name), None)

    def origin(self, kind: str, namespace: str, name: str) -> str:
        """``api`` when the API created or changed the resource, else ``file``."""
        return "api" if (kind, namespace, name) in self._changes else "file"

    async def put(self, document: dict[str, Any]) -> Any:
        """Create or replace a resource (raises ValidationError naming the field). Names it
        gives that point at nothing are accepted and logged."""
        resource = resource_from_document(document)
        key = key_of(resource)
        async with self._lock:
            await self._apply([(*key, resource)], [json.dumps(document).encode()])
        log.info("resource saved", kind=key[0], namespace=key[1], name=key[2])
        return resource

    async def apply(self, documents: Documents) -> Keys:
        """Create or replace every resource of ``documents`` in one store transaction, or none:
        each is validated on its own, then together with the running set, before anything is
        written. Raises DocumentsRefused naming each refused document by its index."""
        resources: Documents = []
        refused: list[tuple[int, ValidationError]] = []
        for index, document in enumerate(documents):
            try:
                resources.append(resource_from_document(document))
            except ValidationError as exc:
                refused.append((index, exc))
        seen: dict[Key, int] = {}
        for index, resource in enumerate(resources):
            if key_of(resource) in seen:
                refused.append((index, ValidationError("metadata.name", f"also document {seen[key_of(resource)] + 1}")))
            seen.setdefault(key_of(resource), index)
        if refused:
            raise DocumentsRefused(refused)
        changes = [(*key_of(r), r) for r in resources]
        async with self._lock:
            try:
                await self._apply(changes, [json.dumps(d).encode() for d in documents])
            except ValidationError as exc:
                raise DocumentsRefused([_located(exc, changes)]) from None
        log.info("resources applied", count=len(changes))
        return [key_of(r) for r in resources]

    async def delete(self, kind: str, namespace: str, name: str) -> bool:
        """Delete a resource; raises ResourceInUse when another resource still names it."""
        async with self._lock:
            if self.get(kind, namespace, name) is None:
                return False
            named_by = referrers(self.current, kind, namespace, name)
            if named_by:
                raise ResourceInUse(kind, name, named_by, word=WORDS.get(kind, kind))
            await self._apply([(kind, namespace, name, None)], [None])
        log.info("resource deleted", kind=kind, namespace=namespace, name=name)
        return True

    def origins(self) -> Origins:
        """(kind, namespace, name, ``file`` or ``api``) of every running resource (silences have
        their own service: not here)."""
        keys = [key_of(r) for r in all_resources(self.current)]
        return [(*key, self.origin(*key)) for key in keys if key[0] != "Silenced"]

    async def revert(self, kind: str, namespace: str, name: str) -> bool:
        """Drop the API's change of a resource: the config files' version runs again (or none,
        if the files have none: refused like a delete while something names it). False when the
        API has not changed it."""
        key = (kind, namespace, name)
        async with self._lock:
            if key not in self._changes:
                return False
            remaining = [change for change in self._changed_list() if change[:3] != key]
            candidate = overlay(self.base, remaining)
            named_by = referrers(self.current, kind, namespace, name)
            if named_by and self._find(candidate, key) is None:
                raise ResourceInUse(kind, name, named_by, word=WORDS.get(kind, kind))
            problems = candidate.reference_errors()
            if problems:
                raise ValidationError(
                    problems[0].path, f"{problems[0].kind} {problems[0].name!r}: {problems[0].message}"
                )
            self._check(candidate)
            await self.store.forget_resource(*key)
            del self._changes[key]
            self.current = candidate
            self._report_dangling(candidate, only=set())
            if self._changed is not None:
                await self._changed(candidate)
        log.info("resource reverted to the config files' version", kind=kind, namespace=namespace, name=name)
        return True

    @staticmethod
    def _find(resources: Resources, key: Key) -> Any:
        return next((r for r in all_resources(resources) if key_of(r) == key), None)

    async def reload(self, base: Resources) -> tuple[ResourceDiff, Sequence[str]]:
        """Run ``base`` (the directory's resources, loaded and valid on their own) under the API's
        changes: what changed, and the file edits the API's changes hide. Raises ConfigErrors when
        the API's resources no longer fit the new files (a handler set they form loops, say)."""
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
            self._report_dangling(candidate)
            await self._register_entities(base)
            if self._changed is not None and not changes.empty:
                await self._changed(candidate)
            return changes, overridden

    async def _apply(self, changes: Changes, documents: Sequence[bytes | None]) -> None:
        """Check ``changes`` against the running set, store them in one transaction, run them."""
        candidate = overlay(self.base, self._changed_list(changes))
        changed = {change[:3] for change in changes}
        # a problem of a changed resource first: it is the one to name (a loop shows in every member)
        problems = sorted(candidate.reference_errors(), key=lambda p: (p.kind, p.namespace, p.name) not in changed)
        if problems:
            first = problems[0]
            raise ValidationError(first.path, f"{first.kind} {first.name!r}: {first.message}")
        self._check(candidate)  # e.g. a plugin that cannot be loaded
        rows = [
            (kind, namespace, name, document)
            for (kind, namespace, name, _), document in zip(changes, documents, strict=True)
        ]
        try:
            await self.store.put_resources(rows)
        except StoreError:
            log.error("resource changes not stored", changes=len(rows), first=f"{rows[0][0]} {rows[0][2]}")
            raise
        for kind, namespace, name, resource in changes:
            self._changes[(kind, namespace, name)] = resource
        self._report_dangling(candidate, only={(k, ns, n) for k, ns, n, _ in changes})
        self.current = candidate
        if self._changed is not None:
            await self._changed(candidate)

    def _report_dangling(self, resources: Resources, only: set[Key] | None = None) -> None:
        """One warning line per dangling reference (of the ``only`` resources, after an API
        change), and the gauge by kind over the whole running set."""
        dangling = dangling_references(resources)
        for problem in dangling:
            if only is None or (problem.kind, problem.namespace, problem.name) in only:
                log.warning("reference to nothing", kind=problem.kind, namespace=problem.namespace,
                            resource=problem.name, field=problem.path, problem=problem.message)  # fmt: skip
        if self._metrics is not None:
            counts = Counter(problem.kind for problem in dangling)
            for kind in {*NAMING_KINDS, *counts}:
                self._metrics.resources_dangling.labels(kind).set(counts.get(kind, 0))

    async def _register_entities(self, base: Resources) -> None:
        """The config files' entities, created or replaced in the store, as ``create -f`` would."""
        for entity in base.entities:
            await self.store.put_entity(entity)
            log.info("entity of the config files registered", entity=entity.name, namespace=entity.metadata.namespace)


def _located(error: ValidationError, changes: Changes) -> tuple[int, ValidationError]:
    """The index of the change an error names (``Handler 'a': ...``, then said without the name,
    which the document's place says), or -1 with the error as it is when it names none."""
    for index, (kind, _, name, _) in enumerate(changes):
        prefix = f"{kind} {name!r}: "
        if error.message.startswith(prefix):
            return index, ValidationError(error.path, error.message.removeprefix(prefix))
    return -1, error
