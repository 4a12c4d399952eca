"""The embedded JavaScript engine: QuickJS (the ``quickjs`` package), one sandbox per thread.

A sandbox is a QuickJS context with nothing in it but the ECMAScript built-ins and
:mod:`pipeline.core.js.prelude`: no ``require``, no modules, a console that writes nothing, no file, network or
process objects. Every call runs under a time limit and the context under a memory limit; a
script that passes either is stopped by QuickJS itself (its interrupt handler, its allocator) and
reported as :class:`~pipeline.errors.ScriptTimeout` or :class:`~pipeline.errors.ScriptOutOfMemory`.

QuickJS contexts must not be shared between threads (the binding's own notes: a runtime used from
two threads crashes even when the uses do not overlap), so each thread gets its own, made on its
first use; a thread that evaluated nothing costs nothing. A context that ran out of memory is
thrown away and the next call on that thread gets a new one.

JavaScript libraries (the ``.js`` files of an EventFilter's or a mutator's ``runtime_assets``)
are run once in a context of their own, after the prelude, as Sensu Go keeps one VM per set of
assets: each thread keeps a few such contexts, one per set of libraries, the least recently used
dropped first. A library that throws makes every script run with it fail with Sensu Go's
``error evaluating <file>: <error>``.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import quickjs

from pipeline.core.js.prelude import PRELUDE
from pipeline.errors import ScriptError, ScriptOutOfMemory, ScriptTimeout

#: what a filter expression may take (Sensu Go has no limit; a runaway would hang its pipeline)
DEFAULT_TIME_LIMIT = 0.1
#: the context's heap, including the prelude and the parsed event (~100 KiB of it used idle)
DEFAULT_MEMORY_LIMIT = 32 << 20
# native stack for JavaScript recursion, well under a worker thread's 8 MiB
_STACK_LIMIT = 1 << 20
#: contexts with libraries kept per thread (each holds its libraries' heap)
MAX_LIBRARY_CONTEXTS = 16


@dataclass(slots=True, frozen=True)
class Limits:
    """Per evaluation: ``time`` in seconds, ``memory`` in bytes of the context's heap."""

    time: float = DEFAULT_TIME_LIMIT
    memory: int = DEFAULT_MEMORY_LIMIT


@dataclass(slots=True, frozen=True)
class Library:
    """A JavaScript file run in the context before any script: ``name`` says where it came from
    (``<asset>/lib/<file>``), for errors."""

    name: str
    source: str


Libraries = tuple[Library, ...]


class _Sandbox:
    __slots__ = ("context", "filter", "limits", "mutate", "predicate", "syntax")

    def __init__(self, limits: Limits, libraries: Libraries = ()) -> None:
        self.context = quickjs.Context()
        self.context.set_max_stack_size(_STACK_LIMIT)
        if libraries:  # a library may define its own fatigue_check (Sensu's asset does)
            self.context.eval("this.__pipeline_libraries__ = true;")
        self.context.eval(PRELUDE)
        self.syntax = self.context.get("__pipeline_syntax__")
        self.filter = self.context.get("__pipeline_filter__")
        self.mutate = self.context.get("__pipeline_mutate__")
        self.predicate = self.context.get("__pipeline_predicate__")
        self.limits = Limits(-1.0, -1)
        self.apply(limits)

    def apply(self, limits: Limits) -> None:
        if limits.time != self.limits.time:
            self.context.set_time_limit(limits.time)
        if limits.memory != self.limits.memory:
            self.context.set_memory_limit(limits.memory)
        self.limits = limits


_local = threading.local()


def _contexts() -> OrderedDict[Libraries, _Sandbox | str]:
    """This thread's contexts by their libraries (a set whose library threw: its error)."""
    contexts: OrderedDict[Libraries, _Sandbox | str] | None = getattr(_local, "contexts", None)
    if contexts is None:
        contexts = _local.contexts = OrderedDict()
    return contexts


def _sandbox(source: str, limits: Limits, libraries: Libraries) -> _Sandbox:
    contexts = _contexts()
    sandbox = contexts.get(libraries)
    if sandbox is None:
        sandbox = _new_sandbox(limits, libraries)
        contexts[libraries] = sandbox
        if len(contexts) > MAX_LIBRARY_CONTEXTS + 1:  # the one without libraries, and the others
            oldest = next(key for key in contexts if key)
            del contexts[oldest]
    contexts.move_to_end(libraries)
    if isinstance(sandbox, str):
        raise ScriptError(source, sandbox)
    sandbox.apply(limits)
    return sandbox


def _new_sandbox(limits: Limits, libraries: Libraries) -> _Sandbox | str:
    """A context with the prelude and ``libraries`` run, or Sensu Go's error for a library that
    threw (kept, so a broken library is not run again for every script)."""
    sandbox = _Sandbox(limits, libraries)
    for library in libraries:
        try:
            sandbox.context.eval(library.source)
        except quickjs.JSException as exc:
            return f"error evaluating {library.name}: {_first_line(exc)}"
    return sandbox


def _first_line(exc: quickjs.JSException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _call(source: str, limits: Limits, entry: str, *args: Any, libraries: Libraries = ()) -> Any:
    sandbox = _sandbox(source, limits, libraries)
    try:
        return getattr(sandbox, entry)(*args)
    except quickjs.JSException as exc:
        raise _script_error(sandbox, source, limits, exc, libraries) from None


def _script_error(
    sandbox: _Sandbox, source: str, limits: Limits, exc: quickjs.JSException, libraries: Libraries
) -> ScriptError:
    message = _first_line(exc)
    if message == "InternalError: interrupted":
        return ScriptTimeout(source, limits.time)
    if message == "InternalError: out of memory" or _nearly_full(sandbox, limits):
        # what the script left behind (a global array) would fill the heap again: start afresh
        _contexts().pop(libraries, None)
        return ScriptOutOfMemory(source, limits.memory)
    return ScriptError(source, message)


def _nearly_full(sandbox: _Sandbox, limits: Limits) -> bool:
    """Whether the heap is still mostly used after a collection: QuickJS at its limit cannot
    always even make the error's message (the binding then reports "null")."""
    try:
        sandbox.context.gc()
        used: int = sandbox.context.memory()["malloc_size"]
    except (quickjs.JSException, MemoryError, KeyError):
        return True
    return used > limits.memory * 3 // 4


def syntax_error(source: str) -> str:
    """The JavaScript SyntaxError of ``source`` as a program, or "" when it parses. Nothing of
    ``source`` runs."""
    result: str = _call(source, Limits(), "syntax", source)
    return result


def run_filter(source: str, event_json: str, now: float, limits: Limits, libraries: Libraries = ()) -> bool:
    """``source``'s completion value as a boolean (JavaScript truthiness), with ``event`` the parsed
    ``event_json``, after ``libraries``. Raises ScriptError (or a subclass) when it throws or is
    stopped, or a library threw."""
    return bool(_call(source, limits, "filter", source, event_json, float(now), libraries=libraries))


def run_predicate(source: str, name: str, json_text: str, limits: Limits) -> bool:
    """``source``'s completion value as a boolean, with the global ``name`` the parsed ``json_text``
    (``entity`` for proxy requests and asset filters). Raises ScriptError when it throws or is stopped."""
    return bool(_call(source, limits, "predicate", source, name, json_text))


def run_mutator(
    source: str, wrapped: str, event_json: str, env: dict[str, str], limits: Limits, libraries: Libraries = ()
) -> str:
    """The mutator protocol's answer: ``ok:`` and the output, or ``bad:`` and the result's class."""
    result: str = _call(source, limits, "mutate", wrapped, event_json, json.dumps(env), libraries=libraries)
    return result
