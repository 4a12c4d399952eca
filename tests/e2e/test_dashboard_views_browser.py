"""The dashboard's other views in a real browser (Debian's chromium through Playwright): an
operator opens a failing check's event page and sees the deploy pushed just before it, then the
entity, silences, timeline, configuration and dead-letter pages; each view's screenshot is saved."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.browser_support import in_browser, log_in, need_browser, new_page, screenshots
from tests.support import loopback_backend, served, write_config

pytestmark = pytest.mark.e2e
__all__ = ["screenshots"]  # the fixture

NS = "/api/core/v2/namespaces/default"
CONFIG = """
    type: CheckConfig
    api_version: core/v2
    metadata: {name: disk}
    spec: {command: "true", interval: 60, subscriptions: [linux]}
    """


@pytest.fixture(autouse=True)
def _browser_installed() -> None:
    need_browser()


async def test_the_event_page_shows_the_deploy_before_the_incident_and_every_view_renders(
    tmp_path: Path, screenshots: Path
) -> None:
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", CONFIG), ingest_keys=["ingest-key"])
    async with served(backend, seconds=120) as s:
        url, key = s.addresses.api_url, s.api_key
        deploy = await s.client.post("/ingest-key/event", content=b'{"message": "shop 2.0 deployed", '
                                     b'"type": "deployment", "host": "web1"}')  # fmt: skip
        assert deploy.status_code in (200, 201), deploy.text
        failing = {"entity": {"metadata": {"name": "web1"}},
                   "check": {"metadata": {"name": "disk"}, "status": 2, "output": "DISK CRITICAL <b>97%</b>"}}  # fmt: skip
        stored = await s.client.post(f"{NS}/events", json=failing)
        assert stored.status_code == 201, stored.text

        def scenario(browser: Any) -> None:
            from playwright.sync_api import expect

            page = new_page(browser, url)
            log_in(page, key=key, path="/events/default/web1/disk")
            expect(page).to_have_url(re.compile(r"/events/default/web1/disk$"))
            expect(page.locator("main")).to_contain_text("DISK CRITICAL <b>97%</b>")  # shown, never HTML
            expect(page.locator("main")).to_contain_text("shop 2.0 deployed")  # what changed before it
            page.screenshot(path=screenshots / "event.png", full_page=True)
            for path, text, name in [("/entities", "web1", "entities"),
                                     ("/entities/default/web1", "web1", "entity"),
                                     ("/silences", "Silence", "silences"),
                                     ("/timeline", "shop 2.0 deployed", "timeline"),
                                     ("/config", "disk", "config"),
                                     ("/deadletters", "", "deadletters")]:  # fmt: skip
                answer = page.goto(path)
                assert answer is not None, path
                assert answer.status == 200, path
                if text:
                    expect(page.locator("main")).to_contain_text(text)
                page.screenshot(path=screenshots / f"{name}.png", full_page=True)

        await in_browser(scenario)
