"""Which silences apply to an event: Sensu Go's matching, times and expire_on_resolve."""

from __future__ import annotations

from pipeline.core.silencing import ended_by_resolution, is_active, silencing_names, with_times
from pipeline.model import Check, CheckHistory, Entity, Event, ObjectMeta
from pipeline.model.pipeline import Silenced, silence_name

NOW = 1_800_000_000


def silence(subscription: str = "", check: str = "", **kwargs: object) -> Silenced:
    entry = Silenced(subscription=subscription, check=check, **kwargs)  # type: ignore[arg-type]
    entry.metadata = ObjectMeta(name=silence_name(subscription, check), namespace="default")
    return with_times(entry, NOW - 10)


def event(check: str = "disk", check_subs: tuple[str, ...] = ("linux",), entity_subs: tuple[str, ...] = ("linux",),
          proxy: str = "", statuses: tuple[int, ...] = (2,)) -> Event:  # fmt: skip
    return Event(
        entity=Entity(metadata=ObjectMeta(name="web1", namespace="default"), subscriptions=[*entity_subs, "entity:web1"]),
        check=Check(metadata=ObjectMeta(name=check, namespace="default"), subscriptions=list(check_subs),
                    proxy_entity_name=proxy, status=statuses[-1], history=[CheckHistory(s, 0) for s in statuses]),
    )  # fmt: skip


def test_matching_by_subscription_check_or_both() -> None:
    entries = [silence("linux"), silence(check="disk"), silence("linux", "disk"), silence("windows"),
               silence(check="load"), silence("entity:web1"), silence("entity:db1")]  # fmt: skip
    assert silencing_names(event(), entries, NOW) == ["*:disk", "entity:web1:*", "linux:*", "linux:disk"]


def test_a_check_subscription_the_entity_lacks_does_not_count() -> None:
    e = event(check_subs=("linux", "db"), entity_subs=("linux",))
    assert silencing_names(e, [silence("db")], NOW) == []
    proxy = event(check_subs=("db",), entity_subs=("db",), proxy="switch1")
    assert silencing_names(proxy, [silence("db")], NOW) == ["db:*"]  # a proxy's own subscriptions


def test_a_silence_applies_from_begin_until_it_expires() -> None:
    later = silence("linux", begin=NOW + 60)
    assert not is_active(later, NOW)
    timed = silence("linux", expire=30)  # begun 10 s ago
    assert timed.expire_at == NOW + 20
    assert silencing_names(event(), [timed], NOW) == ["linux:*"]
    assert silencing_names(event(), [timed], NOW + 20) == []
    forever = silence("linux", expire=-1)
    assert forever.expire_at == 0
    assert silencing_names(event(), [forever], NOW + 10**9) == ["linux:*"]


def test_a_resolution_ends_the_silences_that_expire_on_resolve() -> None:
    entries = {e.metadata.name: e for e in (silence("linux", expire_on_resolve=True), silence(check="disk"))}
    resolution = event(statuses=(2, 0))
    assert resolution.check is not None
    resolution.check.silenced = ["*:disk", "linux:*"]
    assert ended_by_resolution(resolution, entries) == ["linux:*"]
    still_failing = event(statuses=(2, 2))
    assert still_failing.check is not None
    still_failing.check.silenced = ["linux:*"]
    assert ended_by_resolution(still_failing, entries) == []
