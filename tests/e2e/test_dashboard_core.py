"""The dashboard in a real browser (Debian's chromium through Playwright) against a real backend
on loopback: log in with an API key or a user, watch a failing check appear live without a
reload, silence it and see it leave the problems list, resolve one, act on ticked rows at once,
the same without JavaScript; a viewer key sees no buttons and is refused if it posts anyway; a
forged CSRF token is refused; 1,000 problems are paged. Each view's screenshot is saved (see
:mod:`tests.browser_support`)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from tests.browser_support import in_browser, log_in, need_browser, new_page, screenshots, settled, wait_live
from tests.support import loopback_backend, served, write_config

pytestmark = pytest.mark.e2e
__all__ = ["screenshots"]  # the fixture

NS = "/api/core/v2/namespaces/default"
VIEWER_KEY = "viewer-5e3f-key"
CONFIG = """
    type: CheckConfig
    api_version: core/v2
    metadata: {name: disk}
    spec: {command: "true", interval: 60, subscriptions: [linux]}
    """


@pytest.fixture(autouse=True)
def _browser_installed() -> None:
    need_browser()


def event(entity: str, check: str, status: int, output: str = "", **labels: str) -> dict[str, Any]:
    return {"entity": {"metadata": {"name": entity}},
            "check": {"metadata": {"name": check, "labels": labels}, "status": status, "output": output}}  # fmt: skip


def post(client: httpx.Client, body: dict[str, Any]) -> None:
    response = client.post(f"{NS}/events", json=body)
    assert response.status_code == 201, response.text


def backend_for(tmp_path: Path, **settings: Any) -> Any:
    return loopback_backend(tmp_path, write_config(tmp_path / "config", CONFIG), **settings)


async def test_an_operator_watches_a_failure_arrive_silences_resolves_and_deletes_in_bulk(
    tmp_path: Path, screenshots: Path
) -> None:
    async with served(backend_for(tmp_path), seconds=120) as s:
        url, key = s.addresses.api_url, s.api_key

        def scenario(browser: Any) -> None:

            with httpx.Client(base_url=url, headers={"Authorization": f"Key {key}"}) as api:
                act(browser, api)

        def act(browser: Any, api: httpx.Client) -> None:
            from playwright.sync_api import expect

            page = new_page(browser, url)
            page.goto("/")
            expect(page).to_have_url(re.compile(r"/login\?next=%2F$"))
            page.screenshot(path=screenshots / "login.png", full_page=True)
            log_in(page, key=key)
            expect(page.locator(".empty")).to_contain_text("Nothing is broken")
            wait_live(page)
            page.evaluate("window.__notReloaded = true")

            post(api, event("web1", "deploy", 1, "v2 rolled out", **{"pipeline.io/event-kind": "change"}))
            post(api, event("web1", "disk", 2, "DISK CRITICAL - / at 97% <script>alert(1)</script>"))
            row = page.locator('tr[data-event="default/web1/disk"]')
            expect(row).to_be_visible()  # live: the stream said checks changed, the list refetched itself
            expect(row).to_contain_text("critical for")
            expect(row).to_contain_text("<script>alert(1)</script>")  # shown as text, never run
            expect(page.locator('tr[data-event="default/web1/deploy"]')).to_have_count(0)  # a change, not a problem
            expect(page.locator(".counts")).to_contain_text("1 critical")
            assert page.evaluate("window.__notReloaded") is True
            page.screenshot(path=screenshots / "problems.png", full_page=True)

            settled(page)
            row.get_by_role("button", name="Silence").click()
            expect(row).to_have_count(0)
            expect(page.locator("#flash")).to_contain_text("Silence: 1 of 1 done")
            expect(page.locator(".counts")).to_contain_text("1 silenced")
            silences = api.get(f"{NS}/silenced").json()
            assert [(x["subscription"], x["check"]) for x in silences] == [("entity:web1", "disk")]

            post(api, event("web2", "cpu", 1, "CPU WARNING - load 7.2"))
            resolved = page.locator('tr[data-event="default/web2/cpu"]')
            expect(resolved).to_be_visible()
            settled(page)
            resolved.get_by_role("button", name="Resolve").click()
            expect(resolved).to_have_count(0)
            check = api.get(f"{NS}/events/web2/cpu").json()["check"]
            assert check["status"] == 0
            assert "Resolved manually" in check["output"]
            assert [h["status"] for h in check["history"]] == [1, 0]

            for name in ("web3", "web4", "web5"):
                post(api, event(name, "http", 2, "HTTP CRITICAL - 503"))
            expect(page.locator('tr[data-event="default/web5/http"]')).to_be_visible()
            settled(page)
            for name in ("web3", "web4"):
                box = page.get_by_label(f"select {name}/http")
                box.check()
            page.screenshot(path=screenshots / "problems-ticked.png", full_page=True)
            page.locator("#bulk").get_by_role("button", name="Delete").click()
            expect(page.locator("#flash")).to_contain_text("Delete: 2 of 2 done")
            expect(page.locator('tr[data-event="default/web3/http"]')).to_have_count(0)
            expect(page.locator('tr[data-event="default/web4/http"]')).to_have_count(0)
            expect(page.locator('tr[data-event="default/web5/http"]')).to_be_visible()
            assert api.get(f"{NS}/events/web3/http").status_code == 404
            assert page.evaluate("window.__notReloaded") is True

            page.goto("/?silenced=1&group=none")
            expect(page.locator('tr[data-event="default/web1/disk"]')).to_contain_text("silenced")
            page.screenshot(path=screenshots / "problems-silenced-shown.png", full_page=True)

        await in_browser(scenario)


async def test_without_javascript_every_action_is_a_form_post_and_a_redirect(tmp_path: Path, screenshots: Path) -> None:
    async with served(backend_for(tmp_path), seconds=120) as s:
        url, key = s.addresses.api_url, s.api_key
        await s.client.post(f"{NS}/events", json=event("db1", "replication", 2, "lag 300 s"))
        await s.client.post(f"{NS}/events", json=event("db2", "replication", 1, "lag 40 s"))

        def scenario(browser: Any) -> None:
            from playwright.sync_api import expect

            page = new_page(browser, url, javascript=False)
            log_in(page, key=key)
            first = page.locator('tr[data-event="default/db1/replication"]')
            expect(first).to_be_visible()
            first.get_by_role("button", name="Silence").click()
            expect(page).to_have_url(re.compile(r"done=Silence"))
            expect(page.locator("#flash")).to_contain_text("Silence: 1 of 1 done")
            expect(first).to_have_count(0)
            page.get_by_label("select db2/replication").check()
            page.locator("#bulk").get_by_role("button", name="Resolve").click()
            expect(page.locator("#flash")).to_contain_text("Resolve: 1 of 1 done")
            expect(page.locator(".empty")).to_contain_text("Nothing is broken (1 silenced)")
            page.screenshot(path=screenshots / "problems-no-javascript.png", full_page=True)

        await in_browser(scenario)


async def test_a_viewer_sees_no_buttons_and_its_posts_are_refused(tmp_path: Path, screenshots: Path) -> None:
    async with served(backend_for(tmp_path, viewer_keys=[VIEWER_KEY]), seconds=120) as s:
        url = s.addresses.api_url
        await s.client.post(f"{NS}/events", json=event("web1", "disk", 2, "DISK CRITICAL"))
        refused = await s.client.post(f"{NS}/events", json=event("web1", "disk", 0),
                                      headers={"Authorization": f"Key {VIEWER_KEY}"})  # fmt: skip
        assert refused.status_code == 403
        assert "viewer" in refused.json()["message"]
        listed = await s.client.get(f"{NS}/events", headers={"Authorization": f"Key {VIEWER_KEY}"})
        assert listed.status_code == 200
        made = await s.client.post("/api/pipeline/v1/keys", json={"role": "viewer", "name": "wallboard"})
        assert made.status_code == 201
        wallboard = {"Authorization": f"Key {made.json()['key']}"}
        assert (await s.client.get(f"{NS}/events/web1/disk", headers=wallboard)).status_code == 200
        assert (await s.client.delete(f"{NS}/events/web1/disk", headers=wallboard)).status_code == 403

        def scenario(browser: Any) -> None:
            from playwright.sync_api import expect

            page = new_page(browser, url)
            log_in(page, key=VIEWER_KEY)
            row = page.locator('tr[data-event="default/web1/disk"]')
            expect(row).to_be_visible()
            expect(page.locator(".who")).to_contain_text("(viewer)")
            for label in ("Silence", "Resolve", "Run now", "Delete"):
                expect(page.get_by_role("button", name=label)).to_have_count(0)
            expect(page.get_by_role("checkbox", name=re.compile("select"))).to_have_count(0)
            page.screenshot(path=screenshots / "problems-viewer.png", full_page=True)
            csrf = page.locator('input[name="csrf"]').first.get_attribute("value")
            answer = page.request.post("/actions/delete", form={"csrf": csrf, "one": "default/web1/disk"})
            assert answer.status == 403
            page.reload()
            expect(row).to_be_visible()

        await in_browser(scenario)
        still = await s.client.get(f"{NS}/events/web1/disk")
        assert still.status_code == 200
        metrics = (await s.client.get("/metrics")).text
        assert 'pipeline_api_unauthorized_total{reason="dashboard_forbidden"} 1.0' in metrics
        assert 'pipeline_api_unauthorized_total{reason="forbidden"} 2.0' in metrics


async def test_a_forged_csrf_token_is_refused_and_a_user_logs_in_and_out(tmp_path: Path) -> None:
    backend = backend_for(tmp_path)
    backend.keys.users["ops"] = ("s3cret-pass", "admin")  # as --api-user ops:s3cret-pass, beside the admin key
    async with served(backend, seconds=120) as s:
        url = s.addresses.api_url
        await s.client.post(f"{NS}/events", json=event("web1", "disk", 2, "DISK CRITICAL"))

        def scenario(browser: Any) -> None:
            from playwright.sync_api import expect

            page = new_page(browser, url)
            page.goto("/login")
            page.get_by_label("Username").fill("ops")
            page.get_by_label("Password").fill("wrong")
            page.get_by_role("button", name="Log in").click()
            expect(page.locator(".error")).to_contain_text("unknown user or wrong password")
            log_in(page, user="ops", password="s3cret-pass", path="/?group=none")
            expect(page).to_have_url(re.compile(r"/\?group=none$"))
            cookie = next(c for c in page.context.cookies() if c["name"] == "pipeline_session")
            assert cookie["httpOnly"]
            assert cookie["sameSite"] == "Strict"
            for forged in ({"csrf": "forged", "one": "default/web1/disk"}, {"one": "default/web1/disk"}):
                answer = page.request.post("/actions/delete", form=forged)
                assert answer.status == 403, forged
            answer = page.request.post("/actions/delete", form={"one": "default/web1/disk"},
                                       headers={"X-CSRF-Token": "forged"})  # fmt: skip
            assert answer.status == 403
            expect(page.locator('tr[data-event="default/web1/disk"]')).to_be_visible()
            page.get_by_role("button", name="Log out").click()
            expect(page).to_have_url(re.compile(r"/login$"))
            page.goto("/")
            expect(page).to_have_url(re.compile(r"/login\?next="))
            # a next that leaves the site is not followed
            page.goto("/login?next=//evil.example/")
            page.get_by_label("Username").fill("ops")
            page.get_by_label("Password").fill("s3cret-pass")
            page.get_by_role("button", name="Log in").click()
            expect(page).to_have_url(url + "/")

        await in_browser(scenario)
        assert (await s.client.get(f"{NS}/events/web1/disk")).status_code == 200


async def test_a_thousand_problems_are_paged(tmp_path: Path, screenshots: Path) -> None:
    async with served(backend_for(tmp_path), seconds=180) as s:
        url, key = s.addresses.api_url, s.api_key

        async def send(first: int) -> None:
            for n in range(first, 1000, 10):
                body = event(f"host{n:04d}", "disk", 1 + n % 3, f"disk {n}", region=("eu", "us")[n % 2])
                assert (await s.client.post(f"{NS}/events", json=body)).status_code == 201

        async with trio.open_nursery() as nursery:
            for first in range(10):
                nursery.start_soon(send, first)

        def scenario(browser: Any) -> None:
            from playwright.sync_api import expect

            page = new_page(browser, url)
            log_in(page, key=key)
            started = time.monotonic()
            page.goto("/?group=none")
            expect(page.locator(".pager")).to_contain_text("page 1 of 10 (1000 problems)")
            assert time.monotonic() - started < 5, "the first page of 1,000 problems took too long"
            expect(page.locator("tr.problem")).to_have_count(100)
            expect(page.locator(".counts")).to_contain_text("333 critical")
            page.screenshot(path=screenshots / "problems-1000.png")
            page.get_by_role("link", name="older →").click()
            expect(page.locator(".pager")).to_contain_text("page 2 of 10")
            expect(page.locator("tr.problem")).to_have_count(100)
            page.goto("/?group=label:region&status=critical&label=region=eu")
            expect(page.locator("tr.group")).to_have_count(1)
            expect(page.locator("tr.group")).to_contain_text("eu")
            page.screenshot(path=screenshots / "problems-grouped-by-label.png")

        await in_browser(scenario)
