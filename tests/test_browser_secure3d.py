"""3-D Secure in a real browser: Playwright driving Debian's chromium through a tiny merchant site, the switch's
front and the simulator's ACS, all on 127.0.0.1 (tests/secure3d_rig.py). The merchant's pages submit the
answer's ``form3d_html`` as a shop would, run the 3DS Method in a hidden iframe, call ``/resume``; the cardholder
types the one-time code on the ACS's page and lands back on the shop's return URL.

A screenshot of the ACS's challenge is kept in ``docs/acs-challenge.png``.
"""

from __future__ import annotations

import html
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import secure3d_rig
from aiohttp import web
from aiohttp.test_utils import TestServer
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from secure3d_rig import BROWSER, Rig, body

playwright = pytest.importorskip("playwright.async_api")

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed"),
]

DOCS = Path(__file__).resolve().parent.parent / "docs"
VISA = "4111111111111111"
ALWAYS_CHALLENGE = "4000000000003220"  # 3DS2: method URL, always a challenge (and A1 without 3-D Secure)


@dataclass
class Shop:
    """A merchant's site: ``/buy`` authorizes server to server and hands the browser what the answer says."""

    rig: Rig
    orders: list[str] = field(default_factory=list)
    base: str = ""

    async def buy(self, request: web.Request) -> web.Response:
        pan, version = request.query["pan"], request.query.get("v", "1")
        options = {"return_url": f"{self.base}/return", "secure3d20_return_url": f"{self.base}/return"}
        extra: dict[str, Any] = {"secure3d": {"browser_details": BROWSER}} if version == "2" else {}
        status, doc = await self.rig.call("POST", "/orders/authorize", body(pan, options=options, **extra))
        return self._next(status, doc)

    async def resume(self, request: web.Request) -> web.Response:
        status, doc = await self.rig.call("POST", f"/orders/{request.query['order_id']}/resume")
        return self._next(status, doc)

    def _next(self, status: int, doc: dict[str, Any]) -> web.Response:
        if status == 201 and "method3d_params" in doc:
            self.orders.append(doc["order_id"])
            return _page(_method_page(doc["method3d_params"], f"{self.base}/resume?order_id={doc['order_id']}"))
        if status == 201:
            self.orders.append(doc["orders"][0]["id"])
            return _page(doc["orders"][0]["form3d_html"])  # what a shop does with it: put it on its page
        if status == 200:
            self.orders.append(doc["orders"][0]["id"])
            raise web.HTTPSeeOther(f"{self.base}/return")
        return _page(f"<p id='failure'>{html.escape(doc.get('failure_message', ''))}</p>")

    async def back(self, request: web.Request) -> web.Response:
        return _page("<h1 id='back'>Back at the shop</h1>")


def _page(inner: str) -> web.Response:
    return web.Response(text=f"<!doctype html><html><body>{inner}</body></html>", content_type="text/html")


def _method_page(params: dict[str, str], resume: str) -> str:
    """The 3DS Method in a hidden iframe, then ``/resume`` once the ACS's page has posted back to the switch."""
    e = html.escape
    return (
        '<iframe name="method3d" style="display:none"></iframe>'
        f'<form id="method" method="POST" action="{e(params["method_url"])}" target="method3d">'
        f'<input type="hidden" name="threeDSMethodData" value="{e(params["method_data"])}"></form>'
        "<script>"
        # The switch's notification page (where the ACS's method page posts on to) says when it is over.
        f"window.addEventListener('message', (e) => {{ if (e.data === '3DSMethodDone') location.href = {resume!r}; }});"
        "document.getElementById('method').submit();"
        "</script>"
    )


@pytest.fixture
async def shop(fresh_dsn: str, scratch_dir: Path) -> AsyncIterator[Shop]:  # noqa: F811
    async for rig in secure3d_rig.open_rig(fresh_dsn, scratch_dir):
        s = Shop(rig)
        app = web.Application()
        app.router.add_get("/buy", s.buy)
        app.router.add_get("/resume", s.resume)
        app.router.add_route("*", "/return", s.back)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            s.base = str(server.make_url("")).rstrip("/")
            yield s
        finally:
            await server.close()


@pytest.fixture
async def page(shop: Shop) -> AsyncIterator[Any]:
    async with playwright.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        try:
            context = await browser.new_context(viewport={"width": 480, "height": 800})
            yield await context.new_page()
        finally:
            await browser.close()


async def _status(shop: Shop) -> str:
    (order_id,) = set(shop.orders)  # /resume answers for the order /buy made
    status, doc = await shop.rig.call("GET", f"/orders/{order_id}")
    assert status == 200
    return str(doc["orders"][0]["status"])


async def _challenge(page: Any, code: str, *, screenshot: bool = False) -> None:
    await page.get_by_label("One-time code").wait_for()
    if screenshot:
        DOCS.mkdir(exist_ok=True)
        await page.screenshot(path=str(DOCS / "acs-challenge.png"))
    await page.get_by_label("One-time code").fill(code)
    await page.get_by_role("button", name="Confirm").click()
    await page.wait_for_url("**/return")


async def test_3ds1_challenge_with_the_code_1234_returns_to_the_shop_with_the_order_authorized(
    shop: Shop, page: Any
) -> None:
    await page.goto(f"{shop.base}/buy?pan={VISA}")
    await _challenge(page, "1234", screenshot=True)
    assert await page.locator("#back").is_visible()
    assert await _status(shop) == "authorized"


async def test_3ds1_challenge_with_a_wrong_code_returns_to_the_shop_with_the_order_declined(
    shop: Shop, page: Any
) -> None:
    await page.goto(f"{shop.base}/buy?pan={VISA}")
    await _challenge(page, "0000")
    assert await _status(shop) == "declined"
    assert shop.rig.iso("0100") == []


async def test_3ds2_frictionless_after_the_method_iframe_returns_to_the_shop_authorized(shop: Shop, page: Any) -> None:
    await page.goto(f"{shop.base}/buy?pan={VISA}&v=2")
    await page.wait_for_url("**/return")
    assert await _status(shop) == "authorized"
    (msg,) = shop.rig.iso("0100")
    assert msg["121"] == "05"


async def test_3ds2_challenge_with_the_code_1234_returns_to_the_shop_authorized(shop: Shop, page: Any) -> None:
    await page.goto(f"{shop.base}/buy?pan={ALWAYS_CHALLENGE}&v=2")
    await _challenge(page, "1234")
    assert await _status(shop) == "authorized"
    (msg,) = shop.rig.iso("0100")
    assert msg["121"] == "05" and "122" in msg
