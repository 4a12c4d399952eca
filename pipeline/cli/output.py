"""What the operator commands print: tables sized to the terminal, status colours on a terminal
only, ``--format json|yaml`` for scripts, local times with their zone.

A table is as wide as its cells on a pipe (``| grep``, ``| less -S`` see whole lines); on a
terminal narrower than the table the widest column is cut with an ellipsis, again and again,
until the table fits. Colours are sent only when stdout is a terminal and ``NO_COLOR`` is
unset (https://no-color.org), so nothing a script reads carries escape sequences.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.logs import printable

FORMATS = ("table", "json", "yaml")
#: A column is never cut narrower than this (its header stays readable).
MIN_COLUMN = 8
GAP = "  "
ELLIPSIS = "…"
#: Check status -> ANSI colour: OK green, warning yellow, critical red, anything else magenta.
STATUS_COLOURS = {"0": "32", "1": "33", "2": "31"}
OTHER_STATUS_COLOUR = "35"


def add_format_flag(parser: argparse.ArgumentParser, default: str = "table") -> None:
    parser.add_argument(
        "--format", choices=FORMATS, default=default, help=f"table for people, json or yaml for scripts ({default})"
    )


def colour_wanted() -> bool:
    """Colours only on a terminal, and never when ``NO_COLOR`` is set to anything."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def terminal_width() -> int | None:
    """The terminal's columns (``COLUMNS`` wins, as everywhere); None, no limit, when stdout is
    not a terminal: a pipe or a file gets whole lines."""
    return shutil.get_terminal_size().columns if sys.stdout.isatty() else None


def local_time(epoch: float) -> str:
    """Seconds since the epoch as the operator's local time with its zone, as every table shows it;
    a time the C library cannot convert (a silence's ``expire_at`` may be any int64) as its number."""
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(epoch))
    except (OverflowError, OSError, ValueError):
        return f"{int(epoch)} (epoch seconds)"


def silence_ends(entry: Mapping[str, Any]) -> str:
    """When a silence ends, as ``silence list`` and ``get silenced`` show it."""
    text = "resolution" if entry.get("expire_on_resolve") else ""
    if entry.get("expire_at"):
        text = ", ".join(filter(None, [local_time(entry["expire_at"]), text]))
    return text or "never"


def first_line(text: str) -> str:
    """The first non-blank line of ``text``, whole: the table cuts it to the terminal if need be."""
    stripped = text.strip()
    return stripped.splitlines()[0] if stripped else ""


def fit(widths: list[int], headers: Sequence[str], width: int | None) -> list[int]:
    """Column widths that fit ``width``: the widest column is cut first, never below its header
    or MIN_COLUMN; a table that cannot fit so keeps those minimums (the terminal wraps it)."""
    if width is None:
        return widths
    fitted = list(widths)
    floors = [max(MIN_COLUMN, len(h)) for h in headers]
    while (excess := sum(fitted) + len(GAP) * (len(fitted) - 1) - width) > 0:
        cuttable = [i for i, w in enumerate(fitted) if w > floors[i]]
        if not cuttable:
            break
        widest = max(cuttable, key=fitted.__getitem__)
        others = max((fitted[i] for i in cuttable if i != widest), default=0)
        # down to the next widest column at most, so that two wide columns share the cut
        fitted[widest] = min(max(floors[widest], fitted[widest] - excess, others), fitted[widest] - 1)
    return fitted


def cut(cell: str, width: int) -> str:
    return cell if len(cell) <= width else cell[: width - 1] + ELLIPSIS


def render_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    width: int | None = None,
    colour: bool = False,
    status_column: str = "status",
) -> str:
    """A plain-text table; cells escaped (they come from peers: an escape sequence stays inert)."""
    cells = [[printable(cell) for cell in row] for row in rows]
    natural = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    widths = fit(natural, headers, width)
    status = headers.index(status_column) if colour and status_column in headers else -1
    lines = [GAP.join(cut(h.upper(), w).ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append(GAP.join("-" * w for w in widths))
    for row in cells:
        texts = [cut(c, w).ljust(w) for c, w in zip(row, widths, strict=True)]
        if status >= 0:
            code = STATUS_COLOURS.get(row[status].strip(), OTHER_STATUS_COLOUR)
            texts[status] = f"\x1b[{code}m{texts[status]}\x1b[0m"
        lines.append(GAP.join(texts).rstrip())
    return "\n".join(lines)


def dumps(data: Any, fmt: str) -> str:
    """``data`` as JSON (indented) or YAML (block style, keys in their order)."""
    if fmt == "yaml":
        import yaml  # only the commands asked for YAML pay for it

        return str(yaml.safe_dump(data, sort_keys=False, allow_unicode=False)).rstrip("\n")
    return json.dumps(data, indent=2)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    print(render_table(headers, rows, width=terminal_width(), colour=colour_wanted()))


def show(items: list[Any], args: argparse.Namespace, empty: str, headers: list[str], rows: list[list[str]]) -> int:
    """A list as JSON or YAML (``--format``), a line saying it is empty, or a table."""
    fmt = getattr(args, "format", "table")
    if fmt != "table":
        print(dumps(items, fmt))
    elif not items:
        print(empty)
    else:
        print_table(headers, rows)
    return 0


def flatten(value: Any, prefix: str = "") -> list[list[str]]:
    """A nested object as ``field  value`` rows (``check.metadata.name  disk``), lists joined by commas."""
    if isinstance(value, dict):
        rows: list[list[str]] = []
        for key, item in value.items():
            rows.extend(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return rows
    if isinstance(value, list) and all(not isinstance(item, dict | list) for item in value):
        return [[prefix, ",".join(str(item) for item in value)]] if value else []
    if isinstance(value, list):
        return [row for i, item in enumerate(value) for row in flatten(item, f"{prefix}[{i}]")]
    if value is None or value == "":
        return []
    return [[prefix, first_line(str(value))]]


def show_one(item: Any, args: argparse.Namespace) -> int:
    """One object as JSON (the default of ``info``), YAML, or a table of its fields."""
    fmt = getattr(args, "format", "json")
    if fmt == "table":
        print_table(["field", "value"], flatten(item))
    else:
        print(dumps(item, fmt))
    return 0


class Bar:
    """A progress bar (rich) on ``stream`` when it is a terminal; else nothing. ``line()`` prints
    a line above the bar (or plainly, without one), so per-item lines and the bar do not fight."""

    def __init__(self, total: int, description: str, stream: Any = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.total, self.description = total, description
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> Bar:
        if self.total > 1 and self.stream.isatty() and not os.environ.get("PIPELINE_NO_PROGRESS"):
            from rich.console import Console  # only a terminal pays for rich
            from rich.progress import Progress

            console = Console(file=self.stream, no_color=bool(os.environ.get("NO_COLOR")))
            self._progress = Progress(console=console, transient=True)
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=self.total)
        return self

    def advance(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)

    def line(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self.stream)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
