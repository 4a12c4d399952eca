"""Parsing of flags: ``host:port`` (IPv6 in brackets: ``[::1]:8080``), lists, pairs, numbers."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from pipeline.core.numbers import parse_decimal, parse_int

#: A count a flag may give at most: within int64, as Go's flags take them.
MOST = 2**63 - 1
#: A check's status: Sensu's uint32.
STATUS_MOST = 2**32 - 1


def whole_number(bounds: tuple[int, int], expected: str) -> Callable[[str], int]:
    """A flag's converter to a whole number within ``bounds`` in ASCII digits (not Arabic-Indic
    ones, ``1_0`` or ``" 3"``, which ``int`` takes), refusing any other text as ``expected``."""

    def convert(text: str) -> int:
        value = parse_int(text, bounds)
        if value is None:
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}")
        return value

    return convert


positive_int = whole_number((1, MOST), "a positive whole number")
check_status = whole_number((0, STATUS_MOST), f"a status from 0 to {STATUS_MOST}")


def parse_address(text: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"`` -> ``("127.0.0.1", 8080)``; raises argparse.ArgumentTypeError."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isascii() or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def parse_peer_address(text: str) -> tuple[str, int]:
    """An address to connect to: :func:`parse_address`, with a port from 1 (port 0 is only a
    listener's "any free port"; no connection reaches it)."""
    host, port = parse_address(text)
    if port == 0:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT with a port from 1 to 65535, got {text!r}")
    return host, port


def parse_optional_address(text: str) -> tuple[str, int] | None:
    """Like :func:`parse_address`, but an empty string means "disabled"."""
    return parse_address(text) if text else None


def parse_list(text: str) -> list[str]:
    """``"a,b, c"`` -> ``["a", "b", "c"]`` (empty items dropped)."""
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_pairs(text: str) -> dict[str, str]:
    """``"k=v,k2=v2"`` -> a dict; raises argparse.ArgumentTypeError on an item without ``=``."""
    pairs = {}
    for item in parse_list(text):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {item!r}")
        pairs[key.strip()] = value.strip()
    return pairs


def parse_floats(text: str) -> list[float]:
    """``"90,99.9"`` -> ``[90.0, 99.9]``; raises argparse.ArgumentTypeError on a non-number (``nan``,
    ``inf``, ``1_0`` and other scripts' digits included: ``float`` takes them all)."""
    values = []
    for item in parse_list(text):
        value = parse_decimal(item)
        if value is None:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")
        values.append(value)
    return values


def positive_float(text: str) -> float:
    """A positive, finite number of seconds (``float`` alone would take ``nan`` and ``inf``)."""
    value = parse_decimal(text)
    if value is None or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value
