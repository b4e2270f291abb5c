"""The console under a real browser: Debian's Chromium driven by Playwright.

Playwright never downloads a browser here: it launches the system Chromium by its
executable path (scripts/install-chromium.sh installs it; SPINE_CHROMIUM overrides).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright, expect

#: Waits on page conditions (a bound, not a threshold: they return as soon as they hold).
expect.set_options(timeout=30_000)

CHROMIUM = Path(os.environ.get("SPINE_CHROMIUM", "/usr/bin/chromium"))


def chromium_or_skip() -> Path:
    """The Chromium binary, or skip the test with one line saying how to get it."""
    if not CHROMIUM.exists():
        pytest.skip(
            f"console browser tests need Chromium at {CHROMIUM}: run scripts/install-chromium.sh"
        )
    return CHROMIUM


@asynccontextmanager
async def browser_page(base_url: str) -> AsyncIterator[Page]:
    """A fresh browser context (its own cookies) and page; closed at the end."""
    executable = chromium_or_skip()
    async with async_playwright() as pw:
        # --no-sandbox: the tests run as root in a container, where Chromium's sandbox
        # cannot start; the pages are our own.
        browser = await pw.chromium.launch(
            executable_path=str(executable), headless=True, args=["--no-sandbox"]
        )
        try:
            context = await browser.new_context(
                base_url=base_url, viewport={"width": 1200, "height": 800}
            )
            context.set_default_timeout(30_000)
            yield await context.new_page()
        finally:
            await browser.close()


async def log_in(page: Page, token: str) -> None:
    """Log in through the form and land on the console's home page."""
    await page.goto("/console/login")
    await page.fill("input[name=api_key]", token)
    await page.click("#login button[type=submit]")
    await expect(page.locator("#who")).to_be_visible()
