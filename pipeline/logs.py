"""One structured line per notable action: ``ts level component action key=value ...``.

Values are rendered logfmt-style (quoted when they contain spaces or quotes, control characters
escaped), so a line can be grepped by eye and parsed by machine, and stays one line.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


_CONTROLS = {"\n": "\\n", "\r": "\\r", "\t": "\\t", " ": " "}
_ESCAPES = {"\\": "\\\\", '"': '\\"', **_CONTROLS}


def _unprintable(char: str) -> str:
    """A character a peer sent that must not reach a log or a terminal raw (a control character,
    a line or paragraph separator, a format character such as a right-to-left override): its
    escape; other characters as they are."""
    escaped = _CONTROLS.get(char)
    if escaped is not None:
        return escaped
    if char.isprintable():
        return char
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _escape(char: str) -> str:
    return _ESCAPES.get(char) or _unprintable(char)


def printable(text: str) -> str:
    """``text`` with what is not printable escaped (``\\x1b``, ``\\r``, ``\\u2028``): for a value
    from a peer shown on the operator's terminal, where an escape sequence would act."""
    return text if text.isprintable() else "".join(map(_unprintable, text))


def _render(value: Any) -> str:
    """A value as logfmt: as it is when printable without spaces, quotes or ``=``; else quoted,
    with everything that could end the line (``\\r``, ``\\x85``, ``\\u2028``) or drive a
    terminal (``\\x1b``) escaped: values come from peers, and a line must stay one line."""
    text = str(value)
    if text and text.isprintable() and not any(c in text for c in ' "='):
        return text
    return '"' + "".join(map(_escape, text)) + '"'


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = {k: v for k, v in record.__dict__.items() if k not in _RESERVED}
        parts = [
            self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            record.levelname.lower(),
            record.name,
            _render(record.getMessage()),
        ]
        parts.extend(f"{key}={_render(value)}" for key, value in fields.items())
        line = " ".join(parts)
        if record.exc_info:
            line += " error=" + _render(self.formatException(record.exc_info))
        return line


class Logger:
    """``log.info("event stored", entity="web1", check="disk")``: one line, fields as key=value."""

    def __init__(self, name: str) -> None:
        self._logger = logging.getLogger(name)

    def _log(self, level: int, action: str, fields: dict[str, Any], *, traceback: bool = False) -> None:
        if self._logger.isEnabledFor(level):
            safe = {(k if k not in _RESERVED else f"{k}_"): v for k, v in fields.items()}
            self._logger.log(level, action, extra=safe, exc_info=traceback)

    def debug(self, action: str, **fields: Any) -> None:
        self._log(logging.DEBUG, action, fields)

    def info(self, action: str, **fields: Any) -> None:
        self._log(logging.INFO, action, fields)

    def warning(self, action: str, **fields: Any) -> None:
        self._log(logging.WARNING, action, fields)

    def error(self, action: str, **fields: Any) -> None:
        self._log(logging.ERROR, action, fields)

    def exception(self, action: str, **fields: Any) -> None:
        """An error with the traceback of the exception being handled (a bug, not a bad input)."""
        self._log(logging.ERROR, action, fields, traceback=True)


def get_logger(name: str) -> Logger:
    return Logger(f"pipeline.{name}")


def configure(level: str = "info") -> None:
    """Send pipeline's log lines to stderr at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger("pipeline")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
