"""Events per second accepted over HTTP: the Sensu events API from one keep-alive client, and
StackState intakes in batches.

The backend runs as its own process (``pipeline backend``, SQLite in a temporary directory);
this process is the client, with one keep-alive ``httpx.Client``. *Ceiling*: GET /health from the same client, the cost of the HTTP stack alone. *Events API*: N check
events (100 checks) POSTed one after the other to ``/api/core/v2/namespaces/default/events``;
each answer (201) comes once the event is stored. *StackState*: N change events in intakes
of B events each to ``/stsAgent/intake``.

Usage: python -m bench.api_events [--events N] [--batch B]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

KEY = "bench-admin-key"


def start_backend(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    (tmp / "config").mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli.main", "backend", "--config", str(tmp / "config"), "--data",
         str(tmp / "data"), "--api-addr", "127.0.0.1:0", "--transport-addr", "127.0.0.1:0", "--admin-key", KEY],
        stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    for line in process.stderr:
        if match := re.search(rb'"backend ready" api=(\S+)', line):
            return process, match.group(1).decode()
    raise RuntimeError("the backend did not start")


def health_baseline(url: str, count: int) -> float:
    """Requests/s of GET /health on the same stack: the HTTP ceiling for one serial client."""
    with httpx.Client(base_url=url) as client:
        started = time.perf_counter()
        for _ in range(count):
            client.get("/health")
        return count / (time.perf_counter() - started)


def events_api(url: str, count: int) -> float:
    with httpx.Client(base_url=url, headers={"Authorization": f"Key {KEY}"}) as client:
        started = time.perf_counter()
        for i in range(count):
            body = {"entity": {"metadata": {"name": f"host{i % 10}"}},
                    "check": {"metadata": {"name": f"check{i % 100}"}, "status": i % 3, "output": f"result {i}",
                              "interval": 60}}  # fmt: skip
            response = client.post("/api/core/v2/namespaces/default/events", json=body)
            assert response.status_code == 201, response.text
        return count / (time.perf_counter() - started)


def stackstate(url: str, count: int, batch: int) -> float:
    with httpx.Client(base_url=url) as client:
        started = time.perf_counter()
        for start in range(0, count, batch):
            events = [{"msg_title": "Deploy", "msg_text": f"deploy {i}", "timestamp": 1_800_000_000 + i}
                      for i in range(start, min(start + batch, count))]  # fmt: skip
            intake = {
                "collection_timestamp": 1_800_000_000,
                "internalHostname": "db1",
                "events": {"deployment": events},
            }
            response = client.post(f"/stsAgent/intake?api_key={KEY}", json=intake)
            assert response.status_code == 200, response.text
        return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        process, url = start_backend(Path(tmp))
        try:
            ceiling = health_baseline(url, args.events)
            single = events_api(url, args.events)
            batched = stackstate(url, args.events, args.batch)
        finally:
            process.terminate()
            process.wait()
    print(f"GET /health, one keep-alive client: {ceiling:,.0f} requests/s (the HTTP stack's ceiling)")
    print(f"events API, one keep-alive client: {single:,.0f} events/s ({args.events:,} events, each stored before 201)")
    print(f"ratio events/health: {single / ceiling:.2f}")
    print(f"StackState intake, {args.batch} events a body: {batched:,.0f} events/s")


if __name__ == "__main__":
    main()
