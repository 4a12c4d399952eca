"""Backends sharing a store: what one changes through its API (resources, silences, keys) is in
force on the others at their next look at the store's revisions."""

from __future__ import annotations

from pipeline.backend.follower import ChangeFollower
from pipeline.backend.resources import ResourceService
from pipeline.backend.silences import Silences
from pipeline.metrics import BackendMetrics
from pipeline.model import ObjectMeta
from pipeline.model.apikey import StoredKey
from pipeline.model.pipeline import Silenced
from pipeline.model.resources import Resources
from pipeline.store.base import KEYS, RESOURCES, SILENCES
from pipeline.store.service import StoreService
from tests.store_support import StoreFactory

HANDLER = {"type": "Handler", "api_version": "core/v2",
           "metadata": {"name": "pager", "namespace": "default"}, "spec": {"type": "pipe", "command": "page-me"}}  # fmt: skip


class Node:
    def __init__(self, make: StoreFactory) -> None:
        self.metrics = BackendMetrics.create()
        self.store = StoreService(make(), self.metrics.store)
        self.resources = ResourceService(Resources(), self.store, metrics=self.metrics)
        self.silences = Silences(self.store, self.metrics)
        self.keys: list[StoredKey] = []
        self.follower = ChangeFollower(self.store, {RESOURCES: self.resources.follow_store,
                                                    SILENCES: self.silences.follow_store, KEYS: self.read_keys},
                                       self.metrics)  # fmt: skip

    async def read_keys(self) -> None:
        self.keys = await self.store.list_api_keys()

    async def start(self) -> None:
        await self.store.open()
        await self.follower.start_from()
        await self.resources.load()
        await self.silences.load()
        await self.read_keys()


async def test_what_one_backend_changes_the_other_holds_at_its_next_look(shared_db: StoreFactory) -> None:
    a, b = Node(shared_db), Node(shared_db)
    await a.start()
    await b.start()
    assert await b.follower.look() == []  # nothing changed: nothing read
    await a.resources.put(HANDLER)
    await a.silences.put(Silenced(metadata=ObjectMeta(name="linux:*", namespace="default"), subscription="linux"))
    await a.store.put_api_key(StoredKey("k1", "ci", "admin", "digest-1", 1))
    assert b.resources.get("Handler", "default", "pager") is None
    assert sorted(await b.follower.look()) == [KEYS, RESOURCES, SILENCES]
    assert b.resources.get("Handler", "default", "pager").command == "page-me"
    assert b.resources.origin("Handler", "default", "pager") == "api"
    assert [s.metadata.name for s in b.silences.list("default")] == ["linux:*"]
    assert [k.name for k in b.keys] == ["ci"]
    await a.resources.delete("Handler", "default", "pager")
    await a.silences.delete("default", "linux:*")
    assert sorted(await b.follower.look()) == [RESOURCES, SILENCES]
    assert b.resources.get("Handler", "default", "pager") is None
    assert b.silences.list("default") == []
    assert b.metrics.changes_followed.labels(RESOURCES)._value.get() == 2
    for node in (a, b):
        await node.store.close()
