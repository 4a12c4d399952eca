"""Every benchmark, briefly, and one table of their figures and ratios: ``python -m bench``.

Each benchmark runs as its own process with small sizes (a few minutes in all on two cores)
and its figures are gathered from the rows it records (:mod:`bench.table`). The brief sizes
show where the project stands; the figures in BENCHMARKS.md come from each benchmark run at
its full size, as its own section says. A benchmark whose peer is not installed (Icinga 2,
etsy StatsD, PostgreSQL) says so and records no row for it; one that fails is listed as failed
with its last lines, and the others still run.

Usage: python -m bench [--only NAME ...] [--list]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.table import TABLE_ENV, Row, read_rows

#: (module under bench/, its arguments for a brief run, seconds it may take at most)
BRIEF: list[tuple[str, list[str], float]] = [
    # Issue 19's own workload, 10,000 results (4,000 made a four-client window of half a second), in
    # five slices a round, the backend and Icinga 2 side by side taking turns (see bench.api_events)
    ("api_events", ["--events", "10000", "--only-events", "--rounds", "3", "--slices", "5"], 300),
    # 10,000 as the events API: at 4,000 the socket's window was under a second (one slow moment its figure)
    ("agent_api", ["--results", "10000"], 300),
    ("transport", ["--events", "10000"], 300),
    # In five slices a round, the sides taking turns: a load that moves within seconds weighs on
    # both alike (see BENCHMARKS.md, handlers: unsliced rounds of one tree read 0.77-0.91).
    ("handlers", ["--events", "1000", "--slices", "5", "--plugin-events", "10000", "--workflow-events", "2000"], 300),
    ("agent_checks", ["--seconds", "4"], 120),
    ("statsd_vs_etsy", ["--seconds", "1"], 300),
    ("spool", ["--events", "10000"], 120),
    ("store_postgres", ["--events", "4000", "--single", "400"], 300),
    ("containment", ["--runs", "200"], 120),
    ("js_filters", ["--seconds", "0.5"], 120),
    ("cli_startup", ["--runs", "5"], 120),
]


def run(module: str, args: list[str], timeout: float, table: Path) -> str | None:
    """Run one benchmark; None when it finished, else why not (with its last lines)."""
    env = {**os.environ, TABLE_ENV: str(table)}
    try:
        done = subprocess.run([sys.executable, "-m", f"bench.{module}", *args], env=env, capture_output=True,
                              text=True, timeout=timeout)  # fmt: skip
    except subprocess.TimeoutExpired:
        return f"did not finish within {timeout:.0f} s"
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-5:])
        return f"exited {done.returncode}:\n{tail}"
    return None


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def render(rows: list[Row]) -> str:
    lines = ["| bench | figure | value | peer (same run) | ratio | goal | met |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        peer = f"{row.peer} {_number(row.peer_value)}" if row.peer and row.peer_value is not None else row.peer
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else ""
        met = "" if row.met is None else ("yes" if row.met else "**no**")
        lines.append(f"| {row.bench} | {row.figure} | {_number(row.value)} {row.unit} | {peer} | {ratio} | "
                     f"{row.goal} | {met} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and their brief arguments")
    args = parser.parse_args()
    chosen = [b for b in BRIEF if not args.only or b[0] in args.only]
    if args.list:
        for module, brief, _ in BRIEF:
            print(f"python -m bench.{module} {' '.join(brief)}")
        return
    unknown = set(args.only or []) - {b[0] for b in BRIEF}
    if unknown:
        parser.error(f"no such benchmark: {', '.join(sorted(unknown))} (see --list)")
    failures: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        table = Path(tmp) / "rows.jsonl"
        table.touch()
        started = time.monotonic()
        for n, (module, brief, timeout) in enumerate(chosen, 1):
            print(f"[{n}/{len(chosen)}] bench.{module} {' '.join(brief)} ...", file=sys.stderr, flush=True)
            began = time.monotonic()
            why = run(module, brief, timeout, table)
            print(f"      {'failed' if why else 'done'} in {time.monotonic() - began:.0f} s", file=sys.stderr)
            if why:
                failures.append((module, why))
        rows = read_rows(str(table))
    load = os.getloadavg()
    print(f"# pipeline benchmarks, brief run: {len(chosen)} benchmarks in {time.monotonic() - started:.0f} s, "
          f"load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, {os.cpu_count()} cores\n")  # fmt: skip
    print(render(rows))
    for module, why in failures:
        print(f"\nbench.{module} {why}")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
