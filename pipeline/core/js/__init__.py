"""Sensu Go's JavaScript in pipeline: filter expressions and ``javascript`` mutators, run by an
embedded engine (QuickJS) in a sandbox with no I/O, no modules, and a time and memory limit per
evaluation. Pure: the time is a parameter, and nothing here logs or counts (the caller does, from
the errors returned or raised).

- :func:`compile_filter` / :class:`JsFilter` / :class:`JsVerdict`: EventFilter expressions;
- :func:`filter_input` / :func:`synthesize`: the event as Sensu Go shows it to filters;
- :func:`compile_mutator` / :class:`JsMutator`: ``type: javascript`` mutators;
- :class:`Limits`: the time and memory limits; :class:`Library`: a runtime asset's JavaScript;
- :func:`pipeline.core.js.lint.lint_filter`: expressions that fail on every sample event or can
  never be true, for ``pipeline validate``.
"""

from pipeline.core.js.engine import DEFAULT_MEMORY_LIMIT, DEFAULT_TIME_LIMIT, Libraries, Library, Limits
from pipeline.core.js.filters import JsFilter, JsVerdict, compile_filter
from pipeline.core.js.mutators import JsMutator, compile_mutator, parse_env
from pipeline.core.js.synth import FilterInput, filter_input, synthesize

__all__ = [
    "DEFAULT_MEMORY_LIMIT",
    "DEFAULT_TIME_LIMIT",
    "FilterInput",
    "JsFilter",
    "JsMutator",
    "JsVerdict",
    "Libraries",
    "Library",
    "Limits",
    "compile_filter",
    "compile_mutator",
    "filter_input",
    "parse_env",
    "synthesize",
]
