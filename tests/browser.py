"""Browser tests' rig: a running front (real PostgreSQL, real simulator, real TCP) and Debian's chromium.

Use it from a test module::

    from browser import Front, browser, front, screenshot, shop  # noqa: F401  (fixtures)

- ``front``: the REST front of tests/test_http_e2e.py on 127.0.0.1 (an ephemeral port), its access log
  written by the front's own :class:`~http_front.logs.AccessLog`; ``base_url(front)`` is its URL,
  ``front.call(...)`` calls the API as project "project" (``front.other``: as project "other").
- ``browser``: chromium driven by Playwright (``executable_path=shutil.which("chromium")``; Playwright's
  own browser download is not used). ``await new_page(browser, ...)`` opens a page in a fresh context
  (viewport, JavaScript on or off); every context is closed with the browser.
- ``shop``: a tiny "merchant's site" on another port to be sent back to (``return_url``): it records the
  requests it gets and answers a page of its own.
- ``screenshot(page, name)``: a PNG in ``docs/`` when ``ISOSWITCH_SCREENSHOTS=1`` (how the README's
  screenshots are made), else in pytest's tmp dir; returns the path.

Chromium missing is a failure, not a skip: ``make`` installs it (``machine-chromium``).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, async_playwright
from test_http_e2e import Front
from test_http_e2e import front as api_front

__all__ = [
    "DOCS",
    "Shop",
    "access_log",
    "base_url",
    "browser",
    "front",
    "new_page",
    "screenshot",
    "screenshot_dir",
    "shop",
]

DOCS = Path(__file__).resolve().parent.parent / "docs"


front = api_front  # re-exported: the same fixture, for browser modules


def base_url(front: Front) -> str:
    return str(front.http.make_url("")).rstrip("/")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    exe = shutil.which("chromium")
    assert exe is not None, "chromium is not installed (make installs it: apt-get install chromium)"
    async with async_playwright() as pw:
        # --no-sandbox: the tests run as root in containers, where chromium's sandbox cannot start.
        b = await pw.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield b
        finally:
            await b.close()


async def new_page(
    browser: Browser, *, width: int = 1280, height: int = 860, javascript: bool = True, mobile: bool = False
) -> Page:
    """A page in a fresh context (no shared cookies or cache)."""
    context = await browser.new_context(
        viewport={"width": width, "height": height},
        java_script_enabled=javascript,
        is_mobile=mobile,
        has_touch=mobile,
        device_scale_factor=2 if mobile else 1,
    )
    context.set_default_timeout(10_000)
    return await context.new_page()


def screenshot_dir(tmp: Path) -> Path:
    if os.environ.get("ISOSWITCH_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        return DOCS
    return tmp


async def screenshot(page: Page, directory: Path, name: str) -> Path:
    path = directory / name
    await page.screenshot(path=str(path), full_page=True)
    return path


@dataclass
class Shop:
    """The merchant's site: ``url`` to return to; ``visits`` the paths (with queries) it was sent to."""

    url: str
    visits: list[str] = field(default_factory=list)


@pytest.fixture
async def shop() -> AsyncIterator[Shop]:
    visits: list[str] = []

    async def back(request: web.Request) -> web.Response:
        visits.append(request.path_qs)
        return web.Response(
            text="<!doctype html><title>Shop</title><h1 id='shop'>Back at the shop</h1>", content_type="text/html"
        )

    app = web.Application()
    app.router.add_get("/{tail:.*}", back)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield Shop(str(server.make_url("/done")), visits)
    finally:
        await server.close()


@pytest.fixture
def access_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every record of the front's access log (and everything else) at INFO."""
    caplog.set_level(logging.INFO)
    return caplog
