"""The agent's delivery: what no source should produce, an event over the maximum size, is set
aside at the spool and never sent; its submitter is not left waiting."""

from __future__ import annotations

from pathlib import Path

import trio

from pipeline.agent.delivery import Delivery
from pipeline.agent.metrics import AgentMetrics
from pipeline.agent.spool import Spool
from pipeline.model import Check, Entity, Event, ObjectMeta, new_event_id
from pipeline.wire.limits import MAX_EVENT_BYTES


def event(output: str) -> Event:
    return Event(
        entity=Entity(metadata=ObjectMeta(name="web1", namespace="default")),
        check=Check(metadata=ObjectMeta(name="big", namespace="default"), output=output),
        metadata=ObjectMeta(namespace="default"),
        id=new_event_id(),
    )


async def test_an_event_over_the_maximum_size_is_set_aside_at_the_spool_and_the_rest_spooled() -> None:
    spool = Spool(Path(":memory:"), max_bytes=64 * 1024 * 1024)
    spool.open()
    metrics = AgentMetrics.create()
    send, receive = trio.open_memory_channel[Event](10)
    delivery = Delivery(spool, receive, metrics)
    huge, small = event("x" * (MAX_EVENT_BYTES + 10)), event("ok")
    spooled = [delivery.spooled_event(e.id) for e in (huge, small)]
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(delivery.run_spooler)
            await send.send(huge)
            await send.send(small)
            for waiter in spooled:
                await waiter.wait()
            nursery.cancel_scope.cancel()
    assert [row.id for row in spool.after(0, 10)] == [small.id]
    (record,) = await delivery.list_set_aside(10)
    assert (record.id, record.reason, record.entity, record.check) == (huge.id, "too_large", "web1", "big")
    assert record.error == f"event of {record.size} bytes exceeds the maximum event size of {MAX_EVENT_BYTES} bytes"
    assert metrics.registry.get_sample_value("pipeline_agent_events_set_aside_total", {"reason": "too_large"}) == 1
