"""One row per figure a benchmark prints, gathered by ``python -m bench`` into one table.

A benchmark still prints its own lines; it also calls :func:`record` for each headline
figure. Alone, that does nothing; under ``python -m bench`` (which sets
:data:`TABLE_ENV` to a file) each call appends the row as one JSON line.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

#: The file rows are appended to, set by ``python -m bench`` for the benchmarks it runs.
TABLE_ENV = "PIPELINE_BENCH_TABLE"


@dataclass(slots=True, frozen=True)
class Row:
    bench: str  # the module, e.g. "api_events"
    figure: str  # what was measured, e.g. "events API, 1 client"
    value: float
    unit: str  # "results/s", "µs CPU/result", ...
    peer: str = ""  # what it is compared with, measured in the same run ("Icinga 2", "etsy StatsD", ...)
    peer_value: float | None = None
    goal: str = ""  # the goal as the issue states it, e.g. ">= 1.0x", "<= 400"
    met: bool | None = None  # whether this run met it (None: no goal)

    @property
    def ratio(self) -> float | None:
        if self.peer_value is None or self.peer_value == 0:
            return None
        return self.value / self.peer_value


def record(row: Row) -> None:
    path = os.environ.get(TABLE_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(asdict(row)) + "\n")


def read_rows(path: str) -> list[Row]:
    with open(path, encoding="utf-8") as rows:
        return [Row(**json.loads(line)) for line in rows if line.strip()]
