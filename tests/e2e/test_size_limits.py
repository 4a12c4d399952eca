"""Large events cannot stall delivery: a real agent and a real backend on loopback.

While the backend is away, the agent takes twenty 900 KB results, refuses one over the maximum
event size, finds in its spool an oversized event and an invalid one (left by an older
version), and flushes a StatsD window too large for one event and over its key cap. When the
backend comes, a small result posted last arrives: nothing before it blocked it.
"""

from __future__ import annotations

import socket
import sqlite3
import uuid
from contextlib import closing
from pathlib import Path

import httpx
import msgpack
import pytest
import trio

from pipeline.agent.agent import Agent
from pipeline.agent.settings import AgentConfig
from pipeline.agent.statsd import StatsdConfig
from pipeline.model import Event
from pipeline.wire.limits import MAX_EVENT_BYTES
from tests.support import EventPipe, capture_handler, loopback_backend, write_config

pytestmark = pytest.mark.e2e

STATSD_KEYS = 40_000
OLD_HUGE, OLD_INVALID, SMALL = (str(uuid.uuid4()) for _ in range(3))
#: the spool file as versions before the spool log left it
OLDER_SPOOL_SCHEMA = """
CREATE TABLE spool (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, size INTEGER NOT NULL,
                    event BLOB NOT NULL);
CREATE INDEX spool_by_id ON spool (id);
CREATE TABLE set_aside (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, at REAL NOT NULL,
                        reason TEXT NOT NULL, error TEXT NOT NULL, entity TEXT NOT NULL, check_name TEXT NOT NULL,
                        size INTEGER NOT NULL, event BLOB NOT NULL);
"""


class WatchingAgent(Agent):
    """The real agent, telling the test when every StatsD key sent has been flushed."""

    def __init__(self, config: AgentConfig) -> None:
        super().__init__(config)
        self.flushed = trio.Event()
        self.points = 0

    async def submit(self, event: Event) -> None:
        await super().submit(event)
        if event.metrics is not None and event.check is None:
            self.points += len(event.metrics.points)
            if self.points >= STATSD_KEYS:  # half the keys (.rate and .count each): UDP may lose a few
                self.flushed.set()


def free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def spool_left_by_an_older_version(data_dir: Path) -> None:
    """An event over the maximum size and one the backend refuses, already spooled, in the
    SQLite table older versions spooled to (the agent moves them into its log at start)."""
    huge = {"id": OLD_HUGE, "entity": {"metadata": {"name": "web1"}},
            "check": {"metadata": {"name": "old"}, "output": "o" * (2 * MAX_EVENT_BYTES)}}  # fmt: skip
    invalid = {"id": OLD_INVALID, "entity": {"metadata": {"name": "web1"}},
               "check": {"metadata": {"name": "old"}, "status": "not a number"}}  # fmt: skip
    data_dir.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(data_dir / "spool.db")) as old, old:
        old.executescript(OLDER_SPOOL_SCHEMA)
        old.executemany("INSERT INTO spool (id, size, event) VALUES (?, ?, ?)",
                        [(e["id"], len(b), b) for e in (huge, invalid) if (b := msgpack.packb(e, use_bin_type=True))])  # fmt: skip


def send_statsd(address: tuple[str, int]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for start in range(0, STATSD_KEYS, 50):
            lines = "\n".join(f"load.key{i}:1|c" for i in range(start, start + 50))
            sock.sendto(lines.encode(), address)


async def test_large_results_and_flushes_never_block_the_small_ones_behind_them(tmp_path: Path) -> None:
    pipe = EventPipe(tmp_path / "events.fifo")
    port = free_tcp_port()
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", capture_handler(pipe.path)))
    backend.config.transport_addr = ("127.0.0.1", port)
    spool_left_by_an_older_version(tmp_path / "agent")
    agent = WatchingAgent(AgentConfig(
        name="web1", backend_addrs=[("127.0.0.1", port)], api_addr=("127.0.0.1", 0), data_dir=tmp_path / "agent",
        statsd=StatsdConfig(addr=("127.0.0.1", 0), flush_interval=1.0, delete_idle=True),
    ))  # fmt: skip
    big_ids = [str(uuid.uuid4()) for _ in range(20)]
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery, httpx.AsyncClient(timeout=30) as client:
            addresses = await nursery.start(agent.run)
            assert addresses.api is not None
            assert addresses.statsd is not None
            url = f"http://{addresses.api[0]}:{addresses.api[1]}/events"
            for event_id in big_ids:  # spooled while the backend is away: they would share frames
                big = {"id": event_id, "check": {"metadata": {"name": "big"}, "output": "b" * 900_000}}
                assert (await client.post(url, json=big)).status_code == 202
            over = {"check": {"metadata": {"name": "over"}, "output": "o" * (MAX_EVENT_BYTES - 100)}}
            refused = await client.post(url, json=over)
            await trio.to_thread.run_sync(send_statsd, addresses.statsd)
            await agent.flushed.wait()
            acked = agent.delivery.acknowledged_event(SMALL)
            small = {"id": SMALL, "check": {"metadata": {"name": "small"}, "output": "ok",
                                                    "handlers": ["capture"]}}  # fmt: skip
            assert (await client.post(url, json=small)).status_code == 202
            await nursery.start(backend.run)
            arrived = await pipe.next_matching(lambda e: e["check"]["metadata"]["name"] == "small")
            await acked.wait()
            set_aside = (await client.get(f"{url}/set-aside")).json()
            stored = await backend.store.known_ids(big_ids)
            nursery.cancel_scope.cancel()
    await pipe.aclose()
    sample = agent.metrics.registry.get_sample_value

    assert arrived["id"] == SMALL
    assert stored == set(big_ids)  # the large results were delivered too, in frames that fit
    assert refused.status_code == 413
    assert refused.json()["message"].endswith(f"exceeds the maximum event size of {MAX_EVENT_BYTES} bytes")
    assert sample("pipeline_agent_events_too_large_total", {"source": "api", "action": "refused"}) == 1
    by_id = {item["id"]: item for item in set_aside}
    assert by_id.keys() == {OLD_HUGE, OLD_INVALID}
    assert by_id[OLD_HUGE]["reason"] == "too_large"
    assert (by_id[OLD_HUGE]["entity"], by_id[OLD_HUGE]["check"]) == ("web1", "old")
    assert by_id[OLD_HUGE]["size"] > 2 * MAX_EVENT_BYTES
    assert by_id[OLD_INVALID]["reason"] == "rejected"
    assert "check.status" in by_id[OLD_INVALID]["error"]
    assert sample("pipeline_agent_events_set_aside_total", {"reason": "too_large"}) == 1
    assert sample("pipeline_agent_events_set_aside_total", {"reason": "rejected"}) == 1
    flushes, flush_events = sample("pipeline_statsd_flushes_total"), sample("pipeline_statsd_flush_events_total")
    assert flushes is not None
    assert flush_events is not None
    assert flush_events > flushes  # the window's points went out as several events
