"""Shared by the check plugins here: Nagios threshold ranges, perfdata, exit codes.

Range syntax from the Nagios plugin development guidelines: ``10`` (alert outside 0..10),
``10:`` (below 10), ``~:10`` (above 10), ``10:20`` (outside 10..20), ``@10:20`` (inside).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

VERSION = "pipeline-plugins 0.1.0"
#: Help text of options that exist for tests (a fake /proc file), hidden from --help.
HIDDEN = argparse.SUPPRESS

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATE_NAMES = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}


class ThresholdError(ValueError):
    """A threshold that does not follow the Nagios range syntax."""


@dataclass(frozen=True, slots=True)
class Range:
    """A Nagios threshold range: alert when the value is outside ``start..end`` (inclusive),
    or inside it when the range was written with a leading ``@``."""

    start: float
    end: float
    inside: bool  # "@": alert when the value is inside the range
    text: str  # as written (stripped), for the perfdata warn/crit fields

    @classmethod
    def parse(cls, text: str) -> Range:
        """Parse ``10``, ``10:``, ``~:10``, ``10:20`` or ``@10:20``; raise ThresholdError otherwise."""
        spec = text.strip()
        inside = spec.startswith("@")
        body = spec.removeprefix("@")
        if not body:
            raise ThresholdError(f"empty threshold {text!r}")
        low, sep, high = body.partition(":")
        if not sep:
            low, high = "0", low  # a bare number N means 0:N
        try:
            start = -math.inf if low == "~" else float(low or 0)
            end = math.inf if high == "" else float(high)
        except ValueError:
            raise ThresholdError(f"not a Nagios range: {text!r}") from None
        if math.isnan(start) or math.isnan(end):
            raise ThresholdError(f"not a Nagios range: {text!r}")
        if start > end:
            raise ThresholdError(f"range start is above its end: {text!r}")
        return cls(start, end, inside, spec)

    def alerts(self, value: float) -> bool:
        """Whether ``value`` raises this threshold's alert."""
        within = self.start <= value <= self.end
        return within if self.inside else not within


def read_meminfo(path: str = "/proc/meminfo") -> dict[str, int]:
    """``/proc/meminfo`` in bytes."""
    values: dict[str, int] = {}
    with open(path) as f:
        for line in f:
            key, _, rest = line.partition(":")
            fields = rest.split()
            if fields:
                values[key] = int(fields[0]) * 1024  # the kernel reports kB
    return values


def status_for(value: float, warning: Range | None, critical: Range | None) -> int:
    """CRITICAL if ``critical`` alerts, else WARNING if ``warning`` does, else OK (None never alerts)."""
    if critical is not None and critical.alerts(value):
        return CRITICAL
    if warning is not None and warning.alerts(value):
        return WARNING
    return OK


def perfdata(
    label: str,
    value: float,
    uom: str = "",
    warning: Range | None = None,
    critical: Range | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
) -> str:
    """One ``'label'=value[UOM];warn;crit;min;max`` item."""
    name = f"'{label}'" if any(c in label for c in " '=") else label
    fields = [
        f"{_number(value)}{uom}",
        warning.text if warning else "",
        critical.text if critical else "",
        "" if minimum is None else _number(minimum),
        "" if maximum is None else _number(maximum),
    ]
    return f"{name}=" + ";".join(fields).rstrip(";")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}".rstrip("0")


def finish(service: str, status: int, message: str, perf: Sequence[str] = ()) -> NoReturn:
    """Print the one-line result and exit with ``status``."""
    line = f"{service} {STATE_NAMES[status]} - {message}"
    if perf:
        line += " | " + " ".join(perf)
    print(line)
    sys.exit(status)


def usage_error(service: str, message: str) -> NoReturn:
    """Print ``SERVICE UNKNOWN - message`` and exit UNKNOWN: the plugin could not measure."""
    print(f"{service} UNKNOWN - {message}")
    sys.exit(UNKNOWN)


class PluginParser(argparse.ArgumentParser):
    """Options as the Monitoring Plugins guidelines want them: ``-h``/``--help`` and
    ``-V``/``--version`` print and exit UNKNOWN (3), as the C plugins do; bad usage prints
    ``SERVICE UNKNOWN - ...`` and the usage line, and exits UNKNOWN."""

    def __init__(self, service: str, prog: str, description: str | None) -> None:
        super().__init__(prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
        self.service = service
        self.add_argument("-V", "--version", action="version", version=f"{prog} ({VERSION})")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            sys.stdout.write(message)
        sys.exit(UNKNOWN)

    def error(self, message: str) -> NoReturn:
        print(f"{self.service} UNKNOWN - {message}")
        print(self.format_usage().strip())
        sys.exit(UNKNOWN)

    def ranges(self, args: argparse.Namespace, *names: str) -> list[Range | None]:
        """The named options parsed as Nagios ranges (None when not given)."""
        try:
            return [Range.parse(getattr(args, n)) if getattr(args, n) is not None else None for n in names]
        except ThresholdError as exc:
            self.error(str(exc))
