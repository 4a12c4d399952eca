"""The dashboard's problems list (pure) and its live-change broadcast: what is a problem, since
when, silenced ones hidden, filters, grouping, paging; a slow browser loses its oldest notices,
counted, and never holds the publisher."""

from __future__ import annotations

import pytest
import trio
from prometheus_client import CollectorRegistry, Counter

from pipeline.backend.dashboard.changes import Changes, TooManyStreams
from pipeline.backend.dashboard.pages import local_path
from pipeline.backend.dashboard.problems import ProblemQuery, ago, incident_start, page_of, problems_of
from pipeline.model import Check, CheckHistory, Entity, Event, ObjectMeta
from pipeline.model.pipeline import Silenced

NOW = 1_700_000_000


def event(entity: str, check: str, status: int, executed: int = NOW, **labels: str) -> Event:
    return Event(entity=Entity(metadata=ObjectMeta(name=entity, namespace="default")),
                 check=Check(metadata=ObjectMeta(name=check, namespace="default", labels=labels), status=status,
                             executed=executed))  # fmt: skip


def history(*results: tuple[int, int]) -> Check:
    return Check(status=results[-1][0], executed=results[-1][1],
                 history=[CheckHistory(status=s, executed=t) for s, t in results])  # fmt: skip


@pytest.mark.parametrize(
    ("check", "started"),
    [
        (history((0, 100), (2, 160), (2, 220)), 160),  # the first failure after the last OK
        (history((2, 100), (0, 160), (1, 220)), 220),
        (history((0, 100)), 100),  # OK: its own time
        (Check(status=2, executed=500, last_ok=300, history=[CheckHistory(2, 400), CheckHistory(2, 500)]), 300),
        (Check(status=2, executed=500, history=[CheckHistory(2, 400), CheckHistory(2, 500)]), 400),  # never OK
    ],
)
def test_an_incident_starts_at_the_first_failure_after_the_last_ok(check: Check, started: int) -> None:
    assert incident_start(check) == started


@pytest.mark.parametrize(
    ("seconds", "said"), [(0, "0 s"), (59, "59 s"), (61, "1 min"), (7300, "2 h"), (3 * 86400, "3 d")]
)
def test_durations_read_as_people_say_them(seconds: float, said: str) -> None:
    assert ago(seconds) == said


def test_problems_are_failing_checks_without_changes_newest_first_and_silenced_hidden() -> None:
    events = [
        event("web1", "disk", 2, NOW - 600),
        event("web1", "ok", 0),
        event("web1", "deploy", 1, **{"pipeline.io/event-kind": "change"}),
        event("web2", "cpu", 1, NOW - 60),
        event("db1", "repl", 3, NOW - 30, region="eu"),
    ]
    silence = Silenced(metadata=ObjectMeta(name="entity:web2:cpu", namespace="default"),
                       subscription="entity:web2", check="cpu", expire=-1)  # fmt: skip
    found = problems_of(events, {"default": [silence]}, NOW)
    assert [p.path for p in found] == ["default/db1/repl", "default/web2/cpu", "default/web1/disk"]
    listing = page_of(found, ProblemQuery())
    assert [[p.key[1] for p in rows] for _, rows in listing.groups] == [["db1"], ["web1"]]
    assert listing.counts == {"critical": 1, "warning": 0, "unknown": 1}
    assert listing.silenced == 1
    shown = page_of(found, ProblemQuery(silenced=True, group="none"))
    assert [p.key[1] for p in shown.groups[0][1]] == ["db1", "web2", "web1"]
    assert page_of(found, ProblemQuery(status="critical")).total == 1
    assert page_of(found, ProblemQuery(label="region=eu")).total == 1
    assert page_of(found, ProblemQuery(label="region=us")).total == 0
    assert page_of(found, ProblemQuery(entity="web1", check="disk")).total == 1
    assert page_of(found, ProblemQuery(namespace="other")).total == 0
    by_label = page_of(found, ProblemQuery(group="label:region"))
    assert [name for name, _ in by_label.groups] == ["eu", "(no region)"]


def test_problems_are_paged() -> None:
    found = problems_of([event(f"h{n}", "disk", 2, NOW - n) for n in range(250)], {}, NOW)
    last = page_of(found, ProblemQuery(page=3, group="none"), page_size=100)
    assert (last.page, last.pages, last.total, len(last.groups[0][1])) == (3, 3, 250, 50)
    assert page_of(found, ProblemQuery(page=99), page_size=100).page == 3  # past the end: the last page


@pytest.mark.parametrize(
    ("target", "followed"),
    [("/", "/"), ("/?group=none", "/?group=none"), ("/events/a/b/c", "/events/a/b/c"), ("//evil.example/", "/"),
     ("http://evil.example/", "/"), ("/\\evil.example", "/"), ("javascript:alert(1)", "/"), ("/a\nb", "/")],
)  # fmt: skip
def test_login_follows_next_only_to_a_local_path(target: str, followed: str) -> None:
    assert local_path(target) == followed


def dropped() -> Counter:
    return Counter("dropped", "", ["reason"], registry=CollectorRegistry())


async def test_a_slow_browser_loses_its_oldest_notices_counted_and_never_holds_the_publisher() -> None:
    counter = dropped()
    changes = Changes(counter, depth=3)
    with changes.subscribe() as slow, changes.subscribe() as quick:
        changes.publish("checks")
        assert await quick.take(1) == ["checks"]
        for kind in ("silences", "checks", "checks", "silences"):
            changes.publish(kind)  # never waits, however full a queue is
        # slow was sent 5 into room for 3, quick 4: the oldest go
        assert counter.labels("slow_browser")._value.get() == 2 + 1
        assert await slow.take(1) == ["checks", "silences"]  # each kind once, in order
        with trio.move_on_after(0.01):
            await slow.take(10)
            raise AssertionError("nothing was published")
    assert len(changes) == 0


def test_streams_beyond_the_cap_are_refused_and_counted() -> None:
    counter = dropped()
    changes = Changes(counter, max_streams=1)
    with changes.subscribe(), pytest.raises(TooManyStreams), changes.subscribe():
        pass
    assert counter.labels("too_many_streams")._value.get() == 1
