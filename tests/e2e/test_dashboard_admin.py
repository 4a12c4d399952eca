"""The dashboard's admin pages against a real backend, fetched as a browser without JavaScript
would: silences (create through the form, applied, ended early), the timeline, the
configuration, and the dead letters with their replay."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from pipeline.backend.dashboard.sessions import COOKIE
from pipeline.backend.dashboard.views import timeline as timeline_view
from pipeline.backend.server import Backend
from pipeline.model.deadletter import DeadLetter
from tests.support import Served, loopback_backend, served, write_config

pytestmark = pytest.mark.e2e

TOKEN = "5e1f-ingest"
CONFIG = """
    type: CheckConfig
    api_version: core/v2
    metadata: {name: check-disk}
    spec:
      command: check-disk -w 80 -c 90
      interval: 60
      subscriptions: [linux]
      handlers: [pager]
    ---
    type: Handler
    api_version: core/v2
    metadata: {name: flaky}
    spec:
      type: pipe
      command: test -f FLAG && cat > /dev/null
      max_attempts: 1
    """


def backend(tmp_path: Path) -> Backend:
    config = write_config(tmp_path / "config", CONFIG.replace("FLAG", str(tmp_path / "handler-is-up")))
    return loopback_backend(tmp_path, config, config_dir=config, ingest_keys=[TOKEN])


@asynccontextmanager
async def dashboard(server: Backend, api: Served, role: str = "admin") -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A client logged in to the dashboard as ``role`` (a session opened as the login page
    would), and the session's CSRF token."""
    sid = server.dashboard.sessions.open(f"alice-{role}", role, time.time())
    viewer = server.dashboard.sessions.viewer(sid, time.time())
    assert viewer is not None
    async with httpx.AsyncClient(base_url=api.addresses.api_url, cookies={COOKIE: sid}) as client:
        yield client, viewer.csrf


def event(entity: str, check: str, status: int, **more: Any) -> dict[str, Any]:
    return {"entity": {"metadata": {"name": entity}, "subscriptions": ["linux", f"entity:{entity}"]},
            "check": {"metadata": {"name": check}, "status": status, "output": f"{check} says {status}",
                      "subscriptions": ["linux"], **more}}  # fmt: skip


async def post_event(api: Served, body: dict[str, Any]) -> None:
    assert (await api.client.post("/api/core/v2/namespaces/default/events", json=body)).status_code == 201


def rows(html: str, table: str) -> list[str]:
    """The body rows of the table of class ``table``, as text without tags."""
    found = re.search(rf'<table class="{table}">(.*?)</table>', html, re.S)
    if found is None:
        return []
    body = found.group(1).split("<tbody>")[1]
    return [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip() for row in body.split("</tr>")[:-1]]


async def test_a_silence_created_through_the_form_is_listed_applied_and_ended_early(tmp_path: Path) -> None:
    server = backend(tmp_path)
    async with served(server) as api, dashboard(server, api) as (browser, csrf):
        empty = await browser.get("/silences")
        assert empty.status_code == 200
        assert "No silence is in force." in empty.text
        assert f'name="csrf" value="{csrf}"' in empty.text

        # a mistake: the form comes back filled, the message naming the field
        wrong = await browser.post("/actions/silences", data={"csrf": csrf, "check": "check-disk",
                                                              "reason": "disk swap", "duration": "2 hours"})  # fmt: skip
        assert wrong.status_code == 400
        assert "duration: &#39;2 hours&#39; is not a duration" in wrong.text
        assert 'value="disk swap"' in wrong.text
        both = await browser.post("/actions/silences", data={"csrf": csrf, "check": "check-disk", "duration": "1h",
                                                             "end": "2099-01-01T00:00:00Z"})  # fmt: skip
        assert "end: give a duration or an end time, not both" in both.text
        nothing = await browser.post("/actions/silences", data={"csrf": csrf, "reason": "everything"})
        assert nothing.status_code == 400
        assert "subscription: a silence needs a subscription, a check, or both" in nothing.text

        created = await browser.post("/actions/silences", data={"csrf": csrf, "check": "check-disk",
                                                                "reason": "disk swap <tonight>", "duration": "2h"})  # fmt: skip
        assert created.status_code == 303
        assert created.headers["location"] == "/silences"
        listed = rows((await browser.get("/silences")).text, "silences")
        assert len(listed) == 1
        assert listed[0].startswith("default *:check-disk * check-disk alice-admin disk swap &lt;tonight&gt;")
        assert re.search(r"\(in (2 h|1 h 59 min)\) End now$", listed[0]), listed[0]

        # a failing event of that check is silenced
        await post_event(api, event("web1", "check-disk", 2))
        stored = (await api.client.get("/api/core/v2/namespaces/default/events/web1/check-disk")).json()
        assert stored["check"]["silenced"] == ["*:check-disk"]
        assert stored["check"]["is_silenced"] is True

        ended = await browser.post("/actions/silences/default/%2A%3Acheck-disk/end", data={"csrf": csrf})
        assert ended.status_code == 303
        assert "No silence is in force." in (await browser.get("/silences")).text
        assert (await api.client.get("/api/core/v2/namespaces/default/silenced")).json() == []
        again = await browser.post("/actions/silences/default/%2A%3Acheck-disk/end", data={"csrf": csrf})
        assert again.status_code == 404


async def test_a_forged_or_missing_csrf_token_and_a_viewer_are_refused(tmp_path: Path) -> None:
    server = backend(tmp_path)
    async with served(server) as api, dashboard(server, api) as (browser, csrf):
        form = {"check": "check-disk", "reason": "forged", "duration": "1h"}
        forged = await browser.post("/actions/silences", data={**form, "csrf": "not-the-token"})
        missing = await browser.post("/actions/silences", data=form)
        header = await browser.post("/actions/silences", data=form, headers={"X-CSRF-Token": csrf})
        async with dashboard(server, api, role="viewer") as (viewer, viewer_csrf):
            page = await viewer.get("/silences")
            refused = await viewer.post("/actions/silences", data={**form, "check": "other", "csrf": viewer_csrf})
        anonymous = await api.client.get("/silences", headers={"Authorization": ""}, follow_redirects=False)
        listed = (await api.client.get("/api/core/v2/namespaces/default/silenced")).json()
    assert forged.status_code == missing.status_code == 403
    assert header.status_code == 303  # htmx sends the token as a header
    assert [s["metadata"]["name"] for s in listed] == ["*:check-disk"]
    assert page.status_code == 200
    assert "*:check-disk" in page.text
    assert "End now" not in page.text
    assert "Create a silence" not in page.text
    assert refused.status_code == 403
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login?next=%2Fsilences"


async def test_the_timeline_shows_a_pushed_deploy_and_a_state_change_but_not_a_repeated_ok(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = backend(tmp_path)
    async with served(server) as api, dashboard(server, api) as (browser, _):
        deploy = {"message": "shop 1.4.2 deployed", "type": "deployment", "host": "web1"}
        assert (await api.client.post(f"/{TOKEN}/event", json=deploy)).status_code == 201
        for status in (0, 0, 2):
            await post_event(api, event("web1", "check-http", status))
        await post_event(api, event("web2", "check-http", 0))
        page = await browser.get("/timeline")
        deployments = await browser.get("/timeline", params={"type": "deployment", "since": "1h"})
        web2 = await browser.get("/timeline", params={"entity": "web2"})
        bad = await browser.get("/timeline", params={"since": "yesterday"})
        misspelt = await browser.get("/timeline", params={"entitty": "web1"})
        # paging: one entry a page, on the store's cursor
        monkeypatch.setattr(timeline_view, "PAGE", 1)
        monkeypatch.setattr(timeline_view, "MIN_BATCH", 1)
        first = await browser.get("/timeline", params={"entity": "web1"})
        following = re.search(r'<a href="([^"]+)" rel="next">', first.text)
        assert following is not None
        second = await browser.get(following.group(1).replace("&amp;", "&"))
    assert page.status_code == 200
    shown = rows(page.text, "timeline")
    assert len(shown) == 2, shown
    assert "change web1 deployment OK shop 1.4.2 deployed" in shown[0]
    assert "state web1 check-http OK → CRITICAL check-http says 2" in shown[1]
    assert 'href="/events/default/web1/check-http"' in page.text
    assert 'href="/entities/default/web1"' in page.text
    assert 'href="/events/default/web1/deployment"' in page.text
    assert [r.split(" ")[3:5] for r in rows(deployments.text, "timeline")] == [["change", "web1"]]
    assert rows(web2.text, "timeline") == []  # its first result was OK: nothing changed
    assert bad.status_code == 400
    assert "since: &#39;yesterday&#39; is not a time" in bad.text
    assert misspelt.status_code == 400
    assert [r.split(" ")[5] for r in rows(first.text, "timeline")] == ["deployment"]
    assert [r.split(" ")[5] for r in rows(second.text, "timeline")] == ["check-http"]


async def test_the_configuration_says_where_each_resource_comes_from_and_flags_a_dangling_handler(
    tmp_path: Path,
) -> None:
    server = backend(tmp_path)
    async with served(server) as api, dashboard(server, api) as (browser, _):
        handler = {"type": "Handler", "api_version": "core/v2", "metadata": {"name": "slack", "namespace": "default"},
                   "spec": {"type": "pipe", "command": "notify-slack"}}  # fmt: skip
        put = await api.client.put("/api/core/v2/namespaces/default/handlers/slack", json=handler["spec"] | {
            "metadata": handler["metadata"]})  # fmt: skip
        assert put.status_code in (200, 201), put.text
        page = await browser.get("/config")
    assert page.status_code == 200
    checks = rows(page.text.split('<section id="CheckConfig">')[1], "config")
    assert len(checks) == 1
    assert "check-disk -w 80 -c 90" in checks[0]
    assert "dangling: spec.handlers[0]: no Handler &#39;pager&#39;" in checks[0]
    assert f"file {tmp_path / 'config' / 'resources.yml'}:2" in checks[0]
    handlers = rows(page.text.split('<section id="Handler">')[1], "config")
    assert [h.split(" ")[:2] for h in handlers] == [["default", "flaky"], ["default", "slack"]]
    assert handlers[1].endswith("API")
    assert "1 dangling reference:" in page.text


async def test_a_dead_letter_is_listed_and_replayed(tmp_path: Path) -> None:
    server = backend(tmp_path)
    kept = trio.Event()
    keep = server.handlers._dead_letters
    assert keep is not None

    async def kept_then_told(letter: DeadLetter) -> None:
        await keep(letter)
        kept.set()

    server.handlers._dead_letters = kept_then_told
    async with served(server) as api, dashboard(server, api) as (browser, csrf):
        await post_event(api, event("db1", "backup", 2, handlers=["flaky"]))
        await kept.wait()
        page = await browser.get("/deadletters")
        listed = rows(page.text, "deadletters")
        letter = re.search(r'action="/actions/deadletters/([^/"]+)/replay"', page.text)
        assert letter is not None
        async with dashboard(server, api, role="viewer") as (viewer, viewer_csrf):
            looked = await viewer.get("/deadletters")
            tried = await viewer.post(f"/actions/deadletters/{letter.group(1)}/replay", data={"csrf": viewer_csrf})
        failed = await browser.post(f"/actions/deadletters/{letter.group(1)}/replay", data={"csrf": csrf},
                                    follow_redirects=True)  # fmt: skip
        (tmp_path / "handler-is-up").touch()
        replayed = await browser.post(f"/actions/deadletters/{letter.group(1)}/replay", data={"csrf": csrf})
        after = await browser.get(replayed.headers["location"])
        event_page = await browser.get("/events/default/db1/backup")
        unknown = await browser.post("/actions/deadletters/no-such-letter/replay", data={"csrf": csrf})
    assert len(listed) == 1
    assert " UTC flaky default/db1/backup exited 1" in listed[0]
    assert re.search(r"exit(ed)? (status |code )?1", listed[0], re.I), listed[0]
    assert listed[0].endswith("1 Replay")
    assert 'href="/events/default/db1/backup"' in page.text
    assert rows(looked.text, "deadletters") == [listed[0].removesuffix(" Replay")]  # a viewer sees no button
    assert tried.status_code == 403
    assert failed.status_code == 200
    assert f"Replay of dead letter {letter.group(1)} failed" in failed.text
    assert rows(failed.text, "deadletters")[0].endswith("2 Replay")  # one more attempt
    assert replayed.status_code == 303
    assert f"Dead letter {letter.group(1)} replayed" in after.text
    assert "No dead letter." in after.text
    # the event page tells the whole story: the first run, the failed replay, the one that worked
    workflows = re.findall(r"<h3>legacy-pipeline-workflow-flaky(.*?)</h3>", event_page.text, re.S)
    assert len(workflows) == 3, workflows
    assert "replay of" not in workflows[0]
    assert f"(replay of dead letter {letter.group(1)})" in workflows[1]
    assert "dead letter</span>" in workflows[1]
    assert f"(replay of dead letter {letter.group(1)})" in workflows[2]
    assert "handled</span>" in workflows[2]
    assert unknown.status_code == 404
