"""The JSON-lines handler: each event appended to a file as one line of Sensu v2 JSON.

In-process as ``type: plugin, plugin: jsonl`` (option ``path``), and as the pipe program
``handlers/jsonl --path PATH``. Missing parent directories are created. Each line is written
with a single ``write`` to a file opened with O_APPEND, so concurrent writers (several
backends, handler runs or pipe programs) never interleave or tear lines.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from typing import Any

import trio

from pipeline.model import Event
from pipeline.plugins import run_pipe_program


def append_line(path: str, line: bytes) -> None:
    """Append ``line`` with one write: O_APPEND makes each write land whole at the end of the file."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        written = os.write(fd, line)
    finally:
        os.close(fd)
    if written != len(line):
        raise OSError(f"{path}: short write ({written} of {len(line)} bytes), the disk may be full")


class JSONLinesHandler:
    """``handle`` appends the event's JSON and a newline to ``path``."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        unknown = set(options) - {"path"}
        if unknown:
            raise ValueError(f"unknown options {sorted(unknown)} (expected path)")
        path = options.get("path")
        if not isinstance(path, str) or not path:
            raise ValueError(f"option 'path': expected a file path, got {path!r}")
        self.path = path

    async def handle(self, event: Event) -> None:
        # JSON escapes every newline inside strings, so the event is one line.
        await trio.to_thread.run_sync(append_line, self.path, event.to_json() + b"\n")


def main(argv: Sequence[str] | None = None) -> int:
    """The pipe program: one event as JSON on stdin."""
    parser = argparse.ArgumentParser(prog="jsonl", description=__doc__)
    parser.add_argument("--path", required=True)
    args = parser.parse_args(argv)
    return run_pipe_program(parser, JSONLinesHandler, vars(args), failures=(OSError,))
