"""Proxy entities as the event processor registers them: once each (no store access for a known
one), never over an agent's entity, and ``last_seen`` moved only by what came from outside."""

from __future__ import annotations

from pathlib import Path

import trio

from pipeline.backend.eventd import EventProcessor, Outcome, Replays
from pipeline.metrics import BackendMetrics
from pipeline.model import Check, Entity, Event, ObjectMeta, new_event_id
from pipeline.model.outbox import HandlerJob
from pipeline.store.service import StoreService
from pipeline.store.sqlite import SQLiteStore

NOW = 1_800_000_000.0


def event(entity: str, check: str, entity_class: str = "proxy", *, proxy: str = "", status: int = 0) -> Event:
    return Event(entity=Entity(entity_class=entity_class, metadata=ObjectMeta(name=entity, namespace="default")),
                 check=Check(metadata=ObjectMeta(name=check, namespace="default"), status=status, interval=10,
                             executed=int(NOW), proxy_entity_name=proxy),
                 metadata=ObjectMeta(namespace="default"), id=new_event_id())  # fmt: skip


class Counting(StoreService):
    """The store service, counting the entity writes and reads the processor makes."""

    calls = 0

    async def add_entity(self, entity: Entity) -> bool:
        self.calls += 1
        return await super().add_entity(entity)

    async def get_entity(self, namespace: str, name: str) -> Entity | None:
        self.calls += 1
        return await super().get_entity(namespace, name)


async def process(eventd: EventProcessor, submissions: list[tuple[Event, Replays, bool]]) -> list[Outcome]:
    """Submit (offered, or as liveness submits what it made when not ``alive``) and wait until
    the running processor answered each."""
    outcomes: list[Outcome] = []
    done = trio.Event()

    def reply(_: str, outcome: Outcome) -> None:
        outcomes.append(outcome)
        if len(outcomes) == len(submissions):
            done.set()

    for sub_event, replays, alive in submissions:
        if alive:
            assert eventd.offer([sub_event], reply, replays=replays)
        else:
            await eventd.submit(sub_event, reply, alive=False)
    await done.wait()
    return outcomes


async def run(eventd: EventProcessor, submissions: list[tuple[Event, Replays, bool]]) -> list[Outcome]:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(eventd.run)
            outcomes = await process(eventd, submissions)
            nursery.cancel_scope.cancel()
    return outcomes


async def test_proxies_are_registered_once_and_never_over_an_agent(tmp_path: Path) -> None:
    metrics = BackendMetrics.create()
    store = Counting(SQLiteStore(tmp_path / "events.db"), metrics.store)
    await store.open()
    agent = Entity(entity_class="agent", subscriptions=["linux", "entity:web1"],
                   metadata=ObjectMeta(name="web1", namespace="default"))  # fmt: skip
    await store.put_entity(agent)
    handlers, _ = trio.open_memory_channel[HandlerJob](1000)
    eventd = EventProcessor(store, metrics, handlers, wall_clock=lambda: NOW)
    await eventd.load_state()
    store.calls = 0
    submissions = [(event("router1", f"c{i}"), Replays.NONE, True) for i in range(100)]
    submissions.append((event("web1", "from-api"), Replays.NONE, True))  # an API event naming the agent
    submissions.append((event("poller", "ping", "agent", proxy="ups1"), Replays.DROP, True))
    submissions.append((event("poller", "ping2", "agent", proxy="web1"), Replays.DROP, True))
    outcomes = await run(eventd, submissions)
    stored = {e.name: e for e in await store.list_entities()}
    web1_event = await store.get_event("default", "web1", "from-api")
    await store.close()
    assert set(outcomes) == {Outcome.STORED}
    assert store.calls == 2  # router1 and ups1, once each; the agent web1 was known
    assert sorted(stored) == ["router1", "ups1", "web1"]  # "poller" is an agent: it registers when it connects
    assert stored["web1"] == agent
    assert web1_event is not None
    assert web1_event.entity == agent
    assert stored["ups1"].entity_class == "proxy"
    assert stored["ups1"].subscriptions == ["entity:ups1"]
    assert metrics.registry.get_sample_value("pipeline_proxy_entities_registered_total") == 2


async def test_an_entity_stored_meanwhile_stands_and_last_seen_moves_only_with_outside_events(tmp_path: Path) -> None:
    metrics = BackendMetrics.create()
    store = StoreService(SQLiteStore(tmp_path / "events.db"), metrics.store)
    await store.open()
    handlers, _ = trio.open_memory_channel[HandlerJob](1000)
    clock = [NOW]
    eventd = EventProcessor(store, metrics, handlers, wall_clock=lambda: clock[0])
    await eventd.load_state()
    # an agent of that name registered after the processor loaded what it knows
    agent = Entity(entity_class="agent", metadata=ObjectMeta(name="db1", namespace="default"))
    await store.put_entity(agent)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(eventd.run)
            await process(eventd, [(event("db1", "disk"), Replays.NONE, True)])
            seen = eventd.entities.last_seen("default", "db1")
            clock[0] = NOW + 500
            await process(eventd, [(event("db1", "disk", status=2), Replays.NONE, False)])  # made here: a ttl
            nursery.cancel_scope.cancel()
    stored = await store.get_entity("default", "db1")
    # and after a restart, last_seen starts from the latest results
    restarted = EventProcessor(store, metrics, handlers, wall_clock=lambda: clock[0])
    await restarted.load_state()
    await store.close()
    assert stored == agent
    assert seen == NOW
    assert eventd.entities.last_seen("default", "db1") == NOW
    assert restarted.entities.last_seen("default", "db1") == NOW  # the latest result's execution


async def test_an_api_event_with_a_used_id_is_a_new_result_and_a_transport_replay_is_not(tmp_path: Path) -> None:
    metrics = BackendMetrics.create()
    store = StoreService(SQLiteStore(tmp_path / "events.db"), metrics.store)
    await store.open()
    handlers, _ = trio.open_memory_channel[HandlerJob](1000)
    eventd = EventProcessor(store, metrics, handlers, wall_clock=lambda: NOW)
    first = event("router1", "bgp", status=2)
    again = event("router1", "bgp")
    again.id = first.id
    replay = event("router1", "bgp")
    replay.id = first.id
    outcomes = await run(eventd, [(first, Replays.RENEW, True), (again, Replays.RENEW, True),
                                  (replay, Replays.DROP, True)])  # fmt: skip
    latest = await store.get_event("default", "router1", "bgp")
    await store.close()
    assert sorted(o.value for o in outcomes) == ["duplicate", "stored", "stored"]
    assert again.id != first.id
    assert latest is not None
    assert latest.check is not None
    assert [h.status for h in latest.check.history] == [2, 0]
    assert metrics.registry.get_sample_value("pipeline_api_events_renumbered_total") == 1


def test_a_known_proxy_is_found_by_the_key_of_the_entity_it_would_be_made_into() -> None:
    from pipeline.backend.entity_registry import _proxy_key, key_of, proxy_for

    elsewhere = event("db1", "disk")
    assert elsewhere.entity is not None
    elsewhere.entity.metadata.namespace = ""  # the event's namespace is the entity's then
    elsewhere.metadata.namespace = "ops"
    unnamed = event("db1", "disk")
    unnamed.metadata.namespace = ""
    cases = [event("db1", "disk"), event("agent1", "ping", proxy="switch1"), elsewhere, unnamed]
    for case in cases:
        made = proxy_for(case)
        assert made is not None
        assert _proxy_key(case) == key_of(made)
    assert _proxy_key(event("agent1", "disk", "agent")) is None
