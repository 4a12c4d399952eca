"""A real browser for the dashboard's tests: Debian's chromium driven by Playwright for Python.

Playwright's own browser download does not work here (and a test must not fetch a browser), so
Debian's ``chromium`` (installed by ``.ci/setup``) is launched by path, headless. Playwright's
sync API runs in a worker thread (:func:`in_browser`) while the backend under test runs on trio
in the test's own thread; every wait is Playwright's (``expect`` with a timeout), never a sleep.

Screenshots go to the ``screenshots`` fixture's directory: ``<pytest tmp dir>/screenshots``,
or ``$PIPELINE_SCREENSHOTS`` when set (CI keeps that directory beside its test results).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Milliseconds a browser expectation may take (a live update, a page load).
TIMEOUT_MS = 15_000

T = TypeVar("T")


def need_browser() -> None:
    """Skip, naming what to run, when chromium or Playwright is not installed."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed: run .ci/setup")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -e '.[test]'")


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless chromium (Playwright's ``Browser``), closed after the block."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


async def in_browser(scenario: Callable[[Any], T]) -> T:
    """Run ``scenario(browser)`` in a worker thread with a fresh chromium; its result."""

    def run() -> T:
        from playwright.sync_api import expect

        expect.set_options(timeout=TIMEOUT_MS)
        with chromium() as browser:
            return scenario(browser)

    return await trio.to_thread.run_sync(run)


def new_page(browser: Any, base_url: str, *, javascript: bool = True) -> Any:
    """A page in a fresh context (its own cookies) that notes when the live stream opens
    (``window.__sseOpen``), so that a test can wait for it before changing anything."""
    context = browser.new_context(
        base_url=base_url, java_script_enabled=javascript, viewport={"width": 1400, "height": 900}
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.add_init_script("document.addEventListener('htmx:sseOpen', () => { window.__sseOpen = true; });")
    return page


def log_in(page: Any, *, key: str = "", user: str = "", password: str = "", path: str = "/") -> None:
    """Log in through the form of ``/login`` (an API key, or a user and password)."""
    page.goto(path)
    if key:
        page.get_by_label("API key").fill(key)
    else:
        page.get_by_label("Username").fill(user)
        page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"^(?!.*/login).*$"))


def wait_live(page: Any) -> None:
    """Wait until the page's live stream is open (see :func:`new_page`)."""
    page.wait_for_function("window.__sseOpen === true")


def settled(page: Any) -> None:
    """Wait until htmx has no request, swap or settle under way: a click on content that htmx
    has not processed yet would be a plain form submission (it works, but reloads the page)."""
    page.wait_for_function("!document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')")


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    target = Path(os.environ.get("PIPELINE_SCREENSHOTS", "") or tmp_path / "screenshots")
    target.mkdir(parents=True, exist_ok=True)
    return target
