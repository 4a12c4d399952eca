"""StatsD ingest rate: pipeline's agent against etsy StatsD, in one run, with one paced sender.

Both receivers run as their own processes on loopback: etsy StatsD (npm ``statsd``, installed
into ~/.cache/pipeline-tests on first use; flush interval one hour so its counters are not
reset during a step) and ``pipeline agent`` (StatsD only, no backend needed). For each rate
the same sender process sends counters for ``--seconds`` seconds, paced in 5 ms slices, with
1 or 10 metrics per datagram; the receiver's own count of metrics received (etsy: the
management port's ``counters``; pipeline: ``pipeline_statsd_lines_total`` on /metrics) gives
the loss. The search doubles the rate until the loss exceeds 0.1 %, then bisects; the two
receivers' searches take a step each in turn, so a passing load falls on both. Every loss
on pipeline's side is a kernel drop (``pipeline_statsd_kernel_drops``), printed too.

Usage: python -m bench.statsd_vs_etsy [--seconds 2] [--max-rate 3200000] [--per 1 10]
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Generator
from pathlib import Path

from bench.table import Row, record

ETSY_DIR = Path.home() / ".cache" / "pipeline-tests" / "etsy-statsd"
LOSS_LIMIT = 0.001

SENDER = r"""
import socket, sys, time
host, port, rate, seconds, per = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
payload = "\n".join(f"bench.metric{i}:1|c" for i in range(per)).encode()
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
datagrams = int(rate * seconds / per)
start = time.perf_counter()
sent = 0
while sent < datagrams:
    due = int((time.perf_counter() - start) * rate / per) + 1
    while sent < min(due, datagrams):
        sock.sendto(payload, (host, port))
        sent += 1
    time.sleep(0.005)
print(sent * per, time.perf_counter() - start)
"""
#: A step the sender could not send at this share of its rate measures the sender, not the
#: receiver: the search goes no higher (the figure is then the sender's limit, a lower bound).
PACE_KEPT = 0.9


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(predicate, seconds: float = 20) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("receiver did not come up")
        time.sleep(0.05)


class Etsy:
    #: a step of the search failed because the sender could not keep its pace
    sender_bound = False

    def __init__(self, tmp: Path) -> None:
        script = ETSY_DIR / "node_modules" / "statsd" / "stats.js"
        if not script.exists():
            npm = shutil.which("npm") or sys.exit("npm is needed to install etsy StatsD")
            subprocess.run(
                [npm, "install", "--prefix", str(ETSY_DIR), "--no-audit", "--no-fund", "statsd@0.9.0"], check=True
            )
        self.port, self.mgmt = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
        config = tmp / "etsy.js"
        config.write_text(f'{{ port: {self.port}, address: "127.0.0.1", mgmt_port: {self.mgmt}, mgmt_address: "127.0.0.1",'
                          f' flushInterval: 3600000, backends: [] }}')  # fmt: skip
        self.process = subprocess.Popen(["node", str(script), str(config)], stdout=subprocess.DEVNULL)
        wait_for(self._up)

    def _up(self) -> bool:
        try:
            self.received()
            return True
        except OSError:
            return False

    def received(self) -> int:
        with socket.create_connection(("127.0.0.1", self.mgmt), timeout=5) as conn:
            conn.sendall(b"counters\n")
            data = b""
            while b"END" not in data:
                data += conn.recv(65536)
        return int(re.search(rb"'statsd.metrics_received': (\d+)", data).group(1))  # type: ignore[union-attr]

    def drops(self) -> str:
        return "-"


class Pipeline:
    #: a step of the search failed because the sender could not keep its pace
    sender_bound = False

    def __init__(self, tmp: Path) -> None:
        self.port, api = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
        self.metrics_url = f"http://127.0.0.1:{api}/metrics"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli.main", "agent", "--backend-addr", f"127.0.0.1:{free_port(socket.SOCK_STREAM)}",
             "--api-addr", f"127.0.0.1:{api}", "--statsd-addr", f"127.0.0.1:{self.port}", "--statsd-flush-interval", "3600",
             "--log-level", "error", "--data", str(tmp / "agent")],  # not ./data: no checks cached by another run
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self._up)

    def _metric(self, name: str) -> float:
        text = urllib.request.urlopen(self.metrics_url, timeout=5).read().decode()
        match = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0

    def _up(self) -> bool:
        try:
            self._metric("pipeline_statsd_lines_total")
            return True
        except OSError:
            return False

    def received(self) -> int:
        return int(self._metric("pipeline_statsd_lines_total"))

    def drops(self) -> str:
        return str(int(self._metric("pipeline_statsd_kernel_drops_total")))


def step(receiver: Etsy | Pipeline, rate: float, seconds: float, per: int) -> float:
    """The loss ratio at ``rate`` metrics per second; 1.0 (a failed step) when the sender could
    not keep that pace, so that the search never counts a rate nobody sent."""
    before = receiver.received()
    result = subprocess.run([sys.executable, "-c", SENDER, "127.0.0.1", str(receiver.port), str(rate), str(seconds), str(per)],
                            capture_output=True, text=True, check=True)  # fmt: skip
    sent_text, elapsed_text = result.stdout.split()
    sent, elapsed = int(sent_text), float(elapsed_text)
    time.sleep(0.5)  # let the receiver finish what the kernel already holds
    received = receiver.received() - before
    if sent / elapsed < PACE_KEPT * rate:
        print(f"    the sender kept {sent / elapsed:,.0f} of {rate:,.0f} metrics/s: the search stops below", flush=True)
        receiver.sender_bound = True
        return 1.0
    return max(0.0, 1 - received / sent)


def search(max_rate: float) -> Generator[float, float, float]:
    """The rates to try, each sent its loss back; returns the highest rate within the limit."""
    good, rate = 0.0, 5000.0
    while rate <= max_rate and (yield rate) <= LOSS_LIMIT:
        good, rate = rate, rate * 2
    bad = min(rate, max_rate * 2)
    for _ in range(4):
        middle = (good + bad) / 2
        if (yield middle) <= LOSS_LIMIT:
            good = middle
        else:
            bad = middle
    return good


def highest_rates(receivers: list[Etsy | Pipeline], seconds: float, per: int, max_rate: float) -> list[float]:
    """Each receiver's highest rate, their searches taken a step each in turn, so that a load
    on the shared machine that comes and goes falls on both alike."""
    searches = [search(max_rate) for _ in receivers]
    rates = [next(s) for s in searches]
    results: list[float | None] = [None] * len(receivers)
    while any(result is None for result in results):
        for i, receiver in enumerate(receivers):
            if results[i] is None:
                try:
                    rates[i] = searches[i].send(step(receiver, rates[i], seconds, per))
                except StopIteration as done:
                    results[i] = done.value
    return [float(result or 0.0) for result in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0)
    # high enough that the receivers' limits (or the sender's) stop the search, not this
    parser.add_argument("--max-rate", type=float, default=3_200_000)
    parser.add_argument("--per", type=int, nargs="+", default=[1, 10], help="metrics per datagram (default: 1 10)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        etsy, ours = Etsy(Path(tmp)), Pipeline(Path(tmp))
        try:
            for per in args.per:
                etsy.sender_bound = ours.sender_bound = False
                etsy_rate, our_rate = highest_rates([etsy, ours], args.seconds, per, args.max_rate)
                # the sender's limit stopped the search: pipeline takes at least this much
                bound = " (at least: the sender's limit)" if ours.sender_bound else ""
                print(f"{per:>2} metric(s)/datagram: etsy {etsy_rate:>9,.0f}/s  pipeline {our_rate:>9,.0f}/s  "
                      f"ratio {our_rate / etsy_rate:.2f}  (pipeline kernel drops so far: {ours.drops()})")  # fmt: skip
                goal = 2.0 if per == 1 else 1.5
                record(Row("statsd_vs_etsy", f"{per} metric(s) per datagram{bound}", our_rate, "metrics/s", "etsy StatsD",
                           etsy_rate, f">= {goal}x", our_rate >= goal * etsy_rate))  # fmt: skip
        finally:
            for process in (etsy.process, ours.process):
                process.terminate()
                process.wait()


if __name__ == "__main__":
    main()
