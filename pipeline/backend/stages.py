"""The adapters of the backend pipeline's stages, and the three lists the runner asks in order.

A workflow's filter, mutator and handler are each done by the first adapter of its list that
says it can (``can_filter(ref)``, ``can_mutate(ref)``, ``can_handle(handler)``), as Sensu Go's
pipeline picks its adapters; what no adapter can do is an error naming it, counted. The
protocols are in :mod:`pipeline.core.stages`; every adapter takes the event as
:class:`~pipeline.model.forms.EventForms` (model, Sensu JSON dict, JSON bytes: each computed
once per event and shared by every stage).

:data:`FILTER_ADAPTERS`
    Factories ``(resources, services) -> FilterAdapter``, called again whenever the resources
    change (so an adapter compiles its EventFilters once per change): the built-ins, then
    EventFilter resources, whose expressions are JavaScript
    (:class:`~pipeline.core.filtering.JavaScriptFilters`, lent ``services.libraries``).
:data:`MUTATOR_ADAPTERS`
    Factories ``(services) -> MutatorAdapter``, called once per runner: the built-ins
    (``json``, ``only_check_output``), ``javascript``, template and pipe Mutators. A resource
    adapter looks its Mutator up in ``services.resources()`` per event.
:data:`HANDLER_ADAPTERS`
    Factories ``(services) -> HandlerAdapter``, called once per runner: pipe, tcp and udp,
    in-process plugins. (``set`` handlers are expanded into their members before this stage.)

To add an adapter, write a class with the two methods of its protocol (``can_filter`` and
``filter``; ``can_mutate`` and ``mutate``; ``can_handle`` and ``handle``) and put its factory
in the list, before any adapter that would also say it can.

An adapter that must load or check something when the resources change (plugins are built
once) also has ``prepare(resources)`` (check a change before it applies: raise HandlerError
to refuse it) and ``refresh(resources)`` (apply it); the runner calls them where they exist.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import trio
from prometheus_client import CollectorRegistry

from pipeline import plugins
from pipeline.assets.cache import AssetCache, AssetMetrics, RuntimeAsset
from pipeline.assets.libraries import read_libraries
from pipeline.backend.secrets import command_environment
from pipeline.core.filtering import BuiltinFilters, JavaScriptFilters
from pipeline.core.js import JsMutator, Libraries, Library, compile_mutator
from pipeline.core.mutating import BuiltinMutators, TemplateMutators, mutator_of_kind
from pipeline.core.stages import (
    FilterAdapter,
    HandlerAdapter,
    HandlerRun,
    LoadedLibraries,
    MutatorAdapter,
    StageError,
    StageRef,
)
from pipeline.errors import AssetError, ScriptError, SecretUnavailable, ValidationError
from pipeline.model.forms import EventForms
from pipeline.model.pipeline import Mutator
from pipeline.model.resources import Handler, Resources
from pipeline.process import run_command

#: Characters of handler or mutator output kept for the log line and the dead letter.
LOGGED_OUTPUT = 500


def output_tail(output: str, size: int = LOGGED_OUTPUT) -> str:
    """The end of a failed command's output: where a traceback names the exception (its start
    is the least useful part); marked with ``…`` when cut."""
    text = output.strip()
    return text if len(text) <= size else "…" + text[-size:].lstrip()


#: Sensu Go's timeout of tcp and udp handlers without one.
SOCKET_TIMEOUT = 60
#: javascript mutators compiled and kept, at most (one per text of each mutator); assets' scripts read and kept
MAX_COMPILED_SCRIPTS = 1000
NO_LIBRARIES = LoadedLibraries()


@dataclass(slots=True)
class StageServices:
    """What the runner lends its adapters: the current resources, the environment of the
    processes they start, and the limit of processes running at once."""

    resources: Callable[[], Resources]
    env: Mapping[str, str]
    processes: trio.CapacityLimiter
    #: where the runtime assets of pipe handlers and mutators are installed (None: in a temporary directory)
    assets: AssetCache | None = None

    #: the JavaScript of each installed asset, read once (an installed asset never changes)
    scripts: dict[RuntimeAsset, Libraries] = field(default_factory=dict)

    def _cache(self) -> AssetCache:
        if self.assets is None:
            self.assets = AssetCache(None, lambda: {}, AssetMetrics.create(CollectorRegistry(), "pipeline_backend"))
        return self.assets

    async def environment(self, base: dict[str, str], runtime_assets: list[str], namespace: str) -> dict[str, str]:
        """``base`` with the assets' ``bin``, ``lib`` and ``include`` on the paths, installed first
        (StageError("asset") naming the asset when one cannot be had)."""
        if not runtime_assets:
            return base
        try:
            return await self._cache().environment(base, runtime_assets, lambda n: self.resources().asset(n, namespace))
        except AssetError as exc:  # the cache has counted and logged it
            raise StageError("asset", f"error getting assets: {exc}") from None

    async def libraries(self, runtime_assets: list[str], namespace: str) -> LoadedLibraries:
        """The JavaScript of the assets (``lib/**/*.js``), installed first; when one cannot be had,
        none, and the error (the asset cache counts and logs it)."""
        if not runtime_assets:
            return NO_LIBRARIES
        try:
            installed = await self._cache().installed(runtime_assets, lambda n: self.resources().asset(n, namespace))
            libraries: list[Library] = []
            for asset in installed:
                if asset not in self.scripts:
                    if len(self.scripts) >= MAX_COMPILED_SCRIPTS:
                        self.scripts.clear()
                    self.scripts[asset] = await trio.to_thread.run_sync(read_libraries, asset)
                libraries.extend(self.scripts[asset])
        except AssetError as exc:
            return LoadedLibraries(error=f"error getting assets: {exc}")
        return LoadedLibraries(tuple(libraries))


# -- mutators ------------------------------------------------------------------------------------


class JavaScriptMutators:
    """Mutator resources of ``type: javascript``, as in Sensu Go 6: ``eval`` runs in the embedded
    engine with the event as ``event`` and ``env_vars`` as globals, after the JavaScript of its
    ``runtime_assets``; it returns a string (the body) or changes ``event`` and returns nothing
    (the event's JSON). Run in a worker thread, under the mutator's ``timeout`` (1 s when 0) and
    a memory limit; compiled once per text. An asset that cannot be had fails the workflow
    (reason ``asset``) rather than run a script whose library is missing."""

    def __init__(self, services: StageServices) -> None:
        self.services = services
        self._compiled: dict[tuple[str, str, tuple[str, ...], int], JsMutator] = {}

    def _mutator(self, ref: StageRef) -> Mutator | None:
        return mutator_of_kind(self.services.resources(), ref, "javascript")

    def can_mutate(self, ref: StageRef) -> bool:
        return self._mutator(ref) is not None

    def _script(self, mutator: Mutator) -> JsMutator:
        key = (mutator.metadata.name, mutator.eval, tuple(mutator.env_vars), mutator.timeout)
        if key not in self._compiled:
            if len(self._compiled) >= MAX_COMPILED_SCRIPTS:  # edits pile up old texts: start afresh
                self._compiled.clear()
            self._compiled[key] = compile_mutator(mutator.eval, "spec.eval", env_vars=mutator.env_vars,
                                                  environ=self.services.env, timeout=mutator.timeout)  # fmt: skip
        return self._compiled[key]

    async def mutate(self, ref: StageRef, forms: EventForms) -> bytes:
        mutator = self._mutator(ref)
        if mutator is None:  # removed since can_mutate: as if it never existed
            raise StageError("missing", f"no Mutator {ref.name!r}")
        loaded = await self.services.libraries(mutator.runtime_assets, mutator.metadata.namespace)
        if loaded.error:
            raise StageError("asset", loaded.error)
        try:
            script = self._script(mutator)
            async with self.services.processes:  # a script holds a thread as a command holds a process
                return await trio.to_thread.run_sync(script.mutate, forms.json, loaded.libraries)
        except (ScriptError, ValidationError) as exc:
            raise StageError("script", str(exc)) from None


class PipeMutators:
    """Mutator resources of ``type: pipe`` (the default): a command given the event's JSON on
    stdin, whose output is the mutated event."""

    def __init__(self, services: StageServices) -> None:
        self.services = services

    def _mutator(self, ref: StageRef) -> Mutator | None:
        return mutator_of_kind(self.services.resources(), ref, "pipe")

    def can_mutate(self, ref: StageRef) -> bool:
        return self._mutator(ref) is not None

    async def mutate(self, ref: StageRef, forms: EventForms) -> bytes:
        mutator = self._mutator(ref)
        if mutator is None:  # removed since can_mutate: as if it never existed
            raise StageError("missing", f"no Mutator {ref.name!r}")
        try:
            env = command_environment(self.services.env, mutator.env_vars, mutator.secrets,
                                      self.services.resources(), mutator.metadata.namespace)  # fmt: skip
            env = await self.services.environment(env, mutator.runtime_assets, mutator.metadata.namespace)
            async with self.services.processes:
                result = await run_command(mutator.command, timeout=mutator.timeout, stdin=forms.json, env=env)
        except OSError as exc:
            raise StageError("spawn", f"{mutator.command!r} could not start: {exc}") from None
        except SecretUnavailable as exc:
            raise StageError("secret", str(exc)) from None
        if result.timed_out:
            raise StageError("timeout", f"timed out after {mutator.timeout} s")
        if result.status != 0:
            raise StageError("exit_status", f"exited {result.status}: {output_tail(result.output)}")
        return result.output.encode()


# -- handlers ------------------------------------------------------------------------------------


class PipeHandlers:
    """``type: pipe``: a command given the mutated event on stdin; exit 0 is success."""

    mutated = True

    def __init__(self, services: StageServices) -> None:
        self.services = services

    def can_handle(self, handler: Handler) -> bool:
        return handler.type == "pipe"

    async def handle(self, handler: Handler, forms: EventForms, payload: bytes) -> HandlerRun:
        try:  # timed from the process start, not the queue
            env = command_environment(self.services.env, handler.env_vars, handler.secrets,
                                      self.services.resources(), handler.metadata.namespace)  # fmt: skip
            env = await self.services.environment(env, handler.runtime_assets, handler.metadata.namespace)
            async with self.services.processes:
                result = await run_command(handler.command, timeout=handler.timeout, stdin=payload, env=env)
        except OSError as exc:
            raise StageError("spawn", f"{handler.command!r} could not start: {exc}") from None
        except SecretUnavailable as exc:
            raise StageError("secret", str(exc)) from None
        if result.timed_out:
            raise StageError("timeout", f"timed out after {handler.timeout} s")
        if result.status != 0:
            raise StageError("exit_status", f"exited {result.status}: {output_tail(result.output)}")
        return HandlerRun(0, result.output[:LOGGED_OUTPUT].strip())


async def _within(seconds: float, attempt: Callable[[], Awaitable[HandlerRun]]) -> HandlerRun:
    """``attempt()`` awaited, or StageError("timeout") after ``seconds`` (0: no limit)."""
    with trio.move_on_after(seconds or math.inf):
        return await attempt()
    raise StageError("timeout", f"timed out after {seconds} s")


class SocketHandlers:
    """``type: tcp`` and ``udp``: the mutated event written to a socket (Sensu Go's 60 s timeout
    when the handler sets none)."""

    mutated = True

    def __init__(self, services: StageServices) -> None:
        self.services = services

    def can_handle(self, handler: Handler) -> bool:
        return handler.type in ("tcp", "udp")

    async def handle(self, handler: Handler, forms: EventForms, payload: bytes) -> HandlerRun:
        send = self._tcp if handler.type == "tcp" else self._udp
        return await _within(handler.timeout or SOCKET_TIMEOUT, lambda: send(handler, payload))

    @staticmethod
    async def _tcp(handler: Handler, payload: bytes) -> HandlerRun:
        assert handler.socket is not None
        address = f"{handler.socket.host}:{handler.socket.port}"
        try:
            stream = await trio.open_tcp_stream(handler.socket.host, handler.socket.port)
            async with stream:
                await stream.send_all(payload)
        except (OSError, trio.BrokenResourceError) as exc:
            raise StageError("connection", f"tcp {address}: {exc}") from None
        return HandlerRun(0, f"wrote {len(payload)} bytes to tcp {address}")

    @staticmethod
    async def _udp(handler: Handler, payload: bytes) -> HandlerRun:
        assert handler.socket is not None
        address = f"{handler.socket.host}:{handler.socket.port}"
        try:
            infos = await trio.socket.getaddrinfo(handler.socket.host, handler.socket.port, type=trio.socket.SOCK_DGRAM)
            family, kind, proto, _, target = infos[0]
            with trio.socket.socket(family, kind, proto) as sock:
                sent = await sock.sendto(payload, target)
        except OSError as exc:
            raise StageError("connection", f"udp {address}: {exc}") from None
        if sent != len(payload):
            raise StageError("short_write", f"udp {address}: sent {sent} of {len(payload)} bytes")
        return HandlerRun(0, f"sent {len(payload)} bytes to udp {address}")


class PluginHandlers:
    """``type: plugin``: an in-process plugin (:mod:`pipeline.plugins`) given the event itself
    (no mutator runs). Each plugin is built once per (handler, plugin, options)."""

    mutated = False

    def __init__(self, services: StageServices) -> None:
        self.services = services
        self._plugins: dict[str, plugins.HandlerPlugin] = {}
        #: every plugin built, by (handler, plugin, options): checking a change and applying it build it once
        self._built: dict[tuple[str, str, str], plugins.HandlerPlugin] = {}

    def prepare(self, resources: Resources) -> dict[str, plugins.HandlerPlugin]:
        """The plugins of ``resources``, loaded (the ones already loaded are kept); raises HandlerError
        naming a plugin that cannot be loaded, so that a bad change is refused before it applies."""
        loaded = {}
        for handler in resources.handlers:
            if handler.type == "plugin":
                key = (handler.metadata.name, handler.plugin, json.dumps(handler.options, sort_keys=True))
                if key not in self._built:
                    self._built[key] = plugins.load(handler.plugin, handler.options)
                loaded[handler.metadata.name] = self._built[key]
        return loaded

    def refresh(self, resources: Resources) -> None:
        self._plugins = self.prepare(resources)
        in_use = {id(plugin) for plugin in self._plugins.values()}
        self._built = {key: plugin for key, plugin in self._built.items() if id(plugin) in in_use}

    def can_handle(self, handler: Handler) -> bool:
        return handler.type == "plugin"

    async def handle(self, handler: Handler, forms: EventForms, payload: bytes) -> HandlerRun:
        plugin = self._plugins[handler.metadata.name]
        return await _within(handler.timeout, lambda: self._run(plugin, forms))

    @staticmethod
    async def _run(plugin: plugins.HandlerPlugin, forms: EventForms) -> HandlerRun:
        try:
            await plugin.handle(forms.event)
        except Exception as exc:  # a plugin's failure is data: counted, logged, retried
            raise StageError("exception", f"{type(exc).__name__}: {exc}") from None
        return HandlerRun(0, "")


# -- the lists -----------------------------------------------------------------------------------

#: Filter adapters, asked in order; built again from the resources whenever they change.
FILTER_ADAPTERS: list[Callable[[Resources, StageServices], FilterAdapter]] = [
    lambda resources, services: BuiltinFilters(),
    lambda resources, services: JavaScriptFilters(resources.filters, services.libraries),
]
#: Mutator adapters, asked in order; built once per runner.
MUTATOR_ADAPTERS: list[Callable[[StageServices], MutatorAdapter]] = [
    lambda services: BuiltinMutators(),
    JavaScriptMutators,
    lambda services: TemplateMutators(services.resources),
    PipeMutators,
]
#: Handler adapters, asked in order; built once per runner.
HANDLER_ADAPTERS: list[Callable[[StageServices], HandlerAdapter]] = [PipeHandlers, SocketHandlers, PluginHandlers]
