"""Headless Chromium for end-to-end tests, driven by Playwright for Python.

The tests use Debian's chromium package (/usr/bin/chromium, or FRONTDESK_TEST_CHROMIUM), never
a browser build that Playwright downloads. Playwright 1.64 drives Chromium 156, the version
of Debian's package when this was written; pyproject.toml pins it. Without the browser or
Playwright the tests skip, or fail when FRONTDESK_TEST_REQUIRE names ``chromium``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from conftest import skip_or_fail

CHROMIUM = os.environ.get("FRONTDESK_TEST_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium keeps opening connections to Google's
# hosts, which this test machine's closed network refuses. --no-sandbox is needed because
# the tests may run as root.
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


def require_chromium() -> None:
    """Skip (or fail, when required) the calling test unless Chromium and Playwright exist."""
    if not Path(CHROMIUM).is_file() or not os.access(CHROMIUM, os.X_OK):
        skip_or_fail("chromium", f"no browser at {CHROMIUM}; install the Debian package chromium")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError as exc:
        skip_or_fail("chromium", f"Playwright for Python is not installed ({exc})")


@asynccontextmanager
async def launch_chromium() -> AsyncIterator[Any]:
    """Start Chromium and yield the Playwright ``Browser``.

    Playwright starts the browser with a new empty user data folder of its own and deletes it
    on close. Each test opens a new browser context, with empty storage and cookies, so one
    browser serves a whole module.
    """
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=30_000
        )
        try:
            yield browser
        finally:
            await browser.close()
