"""Which silences apply to an event, as Sensu Go decides it. Pure: the time is a parameter.

A silence applies from ``begin`` until ``expire_at`` (0: no end). It matches a (subscription,
check) pair when its subscription is empty, ``*`` or that subscription, and its check is
empty, ``*`` or that check. An event is tested with ``entity:<its entity>`` always, then
with each of the entity's subscriptions if the check is about a proxy entity, else with each
of the check's subscriptions that the entity also has.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from pipeline.model import Event, entity_subscription
from pipeline.model.codec import INT64
from pipeline.model.pipeline import Silenced


def with_times(entry: Silenced, now: float) -> Silenced:
    """``entry`` with Sensu's defaults filled: ``begin`` now, ``expire_at`` from ``expire``."""
    begin = entry.begin or int(now)
    # min: begin + an expire near int64's top would not fit in int64 (and no longer load)
    expire_at = entry.expire_at or (min(begin + entry.expire, INT64[1]) if entry.expire > 0 else 0)
    return dataclasses.replace(entry, begin=begin, expire_at=expire_at)


def is_active(entry: Silenced, now: float) -> bool:
    return entry.begin <= now and (entry.expire_at == 0 or now < entry.expire_at)


def is_expired(entry: Silenced, now: float) -> bool:
    return entry.expire_at != 0 and now >= entry.expire_at


def _matches(entry: Silenced, subscription: str, check: str) -> bool:
    return entry.subscription in ("", "*", subscription) and entry.check in ("", "*", check)


def silencing_names(event: Event, entries: Iterable[Silenced], now: float) -> list[str]:
    """The names of the active silences that match ``event``, sorted."""
    check, entity = event.check, event.entity
    if check is None or entity is None:
        return []
    if check.proxy_entity_name:
        subscriptions = list(entity.subscriptions)
    else:
        subscriptions = [s for s in check.subscriptions if s in set(entity.subscriptions)]
    candidates = [entity_subscription(entity.name), *subscriptions]
    name = check.metadata.name
    matched = {
        entry.metadata.name
        for entry in entries
        if is_active(entry, now) and any(_matches(entry, sub, name) for sub in candidates)
    }
    return sorted(matched)


def ended_by_resolution(event: Event, entries: dict[str, Silenced]) -> list[str]:
    """The silences a resolution ends: those in ``check.silenced`` with ``expire_on_resolve``."""
    check = event.check
    if check is None or not event.is_resolution:
        return []
    return [name for name in check.silenced if name in entries and entries[name].expire_on_resolve]


def silence(event: Event, entries: dict[str, Silenced], now: float) -> list[str]:
    """Set ``check.silenced`` and ``is_silenced`` of ``event`` (its state already merged) from the
    silences of its namespace, and return the names of those its resolution ends, which leave
    ``check.silenced`` (so the resolution passes ``not_silenced``) while ``is_silenced`` stays
    true, as in Sensu Go. ``entries`` is not changed: the caller removes what ended."""
    check = event.check
    if check is None:
        return []
    if not entries:  # the namespace has no silence (most results): what the lines below give, at once
        check.silenced, check.is_silenced = [], False
        return []
    check.silenced = silencing_names(event, entries.values(), now)
    check.is_silenced = bool(check.silenced)
    ended = ended_by_resolution(event, entries)
    for name in ended:
        check.silenced.remove(name)
    return ended
