"""How long an operator command takes, start to exit, against a running backend.

Starts ``pipeline backend`` (port 0, a temporary data and state directory), posts 100 events,
then runs each command ``--runs`` times as a new process, as an operator's shell does, and
prints the median, the fastest and the slowest wall time. ``python -c pass`` is the floor: what
starting the interpreter costs. The commands run in a scratch directory: ``python -m`` puts
the current directory first on the path, which would shadow ``--tree``. With ``--tree DIR`` the commands run from another checkout
(``PYTHONPATH=DIR``), to compare with an earlier version.

Usage: python -m bench.cli_startup [--runs N] [--tree DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.table import Row, record

COMMANDS = [
    ["--help"],
    ["event", "list"],
    ["event", "list", "--format", "json"],
    ["silence", "list"],
    ["get", "checks"],
    ["up", "--help"],
]


def timed(command: list[str], env: dict[str, str], runs: int, cwd: str) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        if subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd).returncode:
            return []  # a command this checkout does not have
        times.append(time.perf_counter() - start)
    return sorted(times)


def post_events(url: str, key: str, count: int) -> None:
    for i in range(count):
        event = {"entity": {"metadata": {"name": f"web{i}"}, "entity_class": "proxy"},
                 "check": {"metadata": {"name": "disk"}, "status": i % 3, "output": f"DISK {i} " + "x" * 80}}  # fmt: skip
        request = urllib.request.Request(f"{url}/api/core/v2/namespaces/default/events", json.dumps(event).encode(),
                                         {"Authorization": f"Key {key}", "Content-Type": "application/json"})  # fmt: skip
        urllib.request.urlopen(request).close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs of each command (20)")
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parents[1], help="the checkout to time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "PYTHONPATH": str(args.tree), "PIPELINE_STATE_DIR": f"{scratch}/state"}
        Path(f"{scratch}/config").mkdir()
        backend = subprocess.Popen([sys.executable, "-m", "pipeline.cli.main", "backend", "--config", f"{scratch}/config",
                                    "--data", f"{scratch}/data", "--api-addr", "127.0.0.1:0", "--transport-addr",
                                    "127.0.0.1:0"], env=env, cwd=scratch, stderr=subprocess.PIPE, text=True)  # fmt: skip
        try:
            assert backend.stderr is not None
            url = next(line for line in backend.stderr if "backend ready" in line).split("api=")[1].split()[0]
            key = Path(f"{scratch}/data/admin.key").read_text().strip()
            post_events(url, key, 100)
            floor = timed([sys.executable, "-c", "pass"], env, args.runs, scratch)
            print(f"{'python -c pass':32} median {statistics.median(floor) * 1000:4.0f} ms")
            for command in COMMANDS:
                flags = [] if "--help" in command else ["--api-url", url, "--api-key", key]
                times = timed([sys.executable, "-m", "pipeline.cli.main", *command, *flags], env, args.runs, scratch)
                if not times:
                    print(f"{'pipeline ' + ' '.join(command):32} (not in this checkout)")
                    continue
                record(Row("cli_startup", "pipeline " + " ".join(command), statistics.median(times) * 1000, "ms",
                           "python -c pass", statistics.median(floor) * 1000))  # fmt: skip
                print(f"{'pipeline ' + ' '.join(command):32} median {statistics.median(times) * 1000:4.0f} ms"
                      f"  fastest {times[0] * 1000:4.0f}  slowest {times[-1] * 1000:4.0f}")  # fmt: skip
        finally:
            backend.terminate()
            backend.wait()


if __name__ == "__main__":
    main()
