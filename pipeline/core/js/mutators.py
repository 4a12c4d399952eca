"""Sensu Go 6's ``javascript`` mutators: ``eval`` run against the event, its result the mutated
event. Sensu Go's semantics (sensu-go ``backend/pipeline/mutator/javascript.go``,
``MutatorExecutionEnvironment.Eval``), matched here:

- ``eval`` is the body of a function: Sensu runs ``(function () { <eval> }())``, so ``return``
  works and a script that returns nothing is fine;
- the script sees ``event``, the event itself (its JSON shape, ``event.check.metadata.labels``),
  where the metadata fields can also be read and written on the object as in Sensu Go
  (``event.check.labels["x"] = y``), and each of the mutator's ``env_vars`` as a global
  (``NAME=value``; a bare ``NAME`` takes the value of that variable in the backend's environment,
  which the caller passes in);
- a result of ``undefined`` or ``null`` makes the mutated event, as JSON, the output; a string is
  the output as it is (its bytes, UTF-8); anything else is an error,
  ``bad mutator result: got "Object", want string or undefined``;
- Sensu Go stops the script at the mutator's ``timeout`` (seconds, none when 0) with
  ``mutator timeout reached, execution halted``; here there is always a limit: the ``timeout``,
  or the sandbox's default when it is 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.core.js import engine
from pipeline.errors import ScriptError, ScriptTimeout, ValidationError
from pipeline.model import Event

#: a mutator without its own timeout (Sensu Go runs those without any limit)
DEFAULT_MUTATOR_TIME_LIMIT = 1.0


def parse_env(env_vars: list[str], environ: Mapping[str, str]) -> dict[str, str]:
    """Sensu Go's ``parseEnv``: ``NAME=value``, or ``NAME`` alone for ``environ[NAME]`` ("" unset)."""
    result = {}
    for entry in env_vars:
        name, sep, value = entry.partition("=")
        if not sep or not name:
            result[entry] = environ.get(entry, "")
        else:
            result[name] = value
    return result


@dataclass(slots=True, frozen=True)
class JsMutator:
    """A javascript mutator's ``eval``, syntax-checked; run it with :meth:`mutate`."""

    source: str
    env: Mapping[str, str]
    limits: engine.Limits

    def mutate(self, event: Event | Mapping[str, Any] | bytes | str, libraries: engine.Libraries = ()) -> bytes:
        """The mutated event (or the string the script returned), as bytes, ``libraries`` (of the
        mutator's runtime assets) run first. Raises ScriptError (ScriptTimeout when stopped at the
        time limit) naming the source and the error."""
        if isinstance(event, Event):
            text = event.to_json().decode()
        elif isinstance(event, bytes):
            text = event.decode()
        elif isinstance(event, str):
            text = event
        else:
            text = Event.from_dict(dict(event), ignored=[]).to_json().decode()
        try:
            answer = engine.run_mutator(self.source, _wrap(self.source), text, dict(self.env), self.limits, libraries)
        except ScriptTimeout as exc:
            raise ScriptTimeout(self.source, exc.limit, "mutator timeout reached, execution halted") from None
        status, _, output = answer.partition(":")
        if status != "ok":
            raise ScriptError(self.source, f'bad mutator result: got "{output}", want string or undefined')
        return output.encode()


def _wrap(source: str) -> str:
    # Sensu Go's own wrapper, character for character (javascript.go)
    return f"(function () {{ {source} }}())"


def compile_mutator(
    source: str,
    path: str,
    *,
    env_vars: list[str] | None = None,
    environ: Mapping[str, str] | None = None,
    timeout: int = 0,
    memory_limit: int = engine.DEFAULT_MEMORY_LIMIT,
) -> JsMutator:
    """A javascript mutator's ``eval`` (at ``path``, e.g. ``spec.eval``), checked to parse as the
    body of Sensu Go's function wrapper; a syntax error is a ValidationError at ``path``."""
    error = engine.syntax_error(_wrap(source))
    if error:
        raise ValidationError(path, f"invalid JavaScript: {error}")
    limits = engine.Limits(float(timeout) if timeout > 0 else DEFAULT_MUTATOR_TIME_LIMIT, memory_limit)
    return JsMutator(source, parse_env(env_vars or [], environ or {}), limits)
