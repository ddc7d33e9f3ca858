"""The portal's payments area below the browser (issue 13 item 6): the filter selects what ``GET /orders/`` selects
with the same query, the CSV, XLSX and XML exports hold exactly those orders, templates are each user's own,
capture/refund/cancel go through the order service with the portal user in the audit log, a refund by cart items,
and a viewer refused the operations by the server. Real front, real simulator, real PostgreSQL.
"""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
import pytest
from openpyxl import load_workbook
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from test_http_e2e import REQUIRED, Front
from test_http_e2e import front as front  # fixture
from test_invoices import create_invoice, pay

pytestmark = pytest.mark.timeout(120)

PASSWORD = "Sunny#Day42x"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_ROW_ID = re.compile(r'<td data-col="id"><a href="/portal/payments/(\d+)">')
CART = [
    {"name": "Green tea", "quantity": 2, "price": 12.5, "amount": 25, "article": "GT-1"},
    {"name": "Honey", "quantity": 3, "price": 25, "amount": 75},
]


class Browserless:
    """A portal user's own cookie jar against the running front (no browser: the pages work without JS)."""

    def __init__(self, front: Front, session: aiohttp.ClientSession) -> None:
        self.base = str(front.http.make_url("")).rstrip("/")
        self.session = session

    async def get(self, path: str) -> tuple[int, str]:
        async with self.session.get(self.base + path, allow_redirects=False) as r:
            return r.status, await r.text()

    async def raw(self, path: str) -> tuple[int, bytes, str]:
        async with self.session.get(self.base + path, allow_redirects=False) as r:
            return r.status, await r.read(), r.headers.get("Content-Disposition", "")

    async def csrf(self, path: str = "/portal/") -> str:
        _, html = await self.get(path)
        match = _CSRF.search(html)
        assert match is not None, html
        return match[1]

    async def post(self, path: str, form: dict[str, str], *, csrf: str | None = None) -> tuple[int, str, str]:
        data = {"csrf": csrf if csrf is not None else await self.csrf(), **form}
        async with self.session.post(self.base + path, data=data, allow_redirects=False) as r:
            return r.status, r.headers.get("Location", ""), await r.text()


SignIn = Callable[[str, str], Awaitable[Browserless]]


@pytest.fixture
async def sign_in(front: Front) -> AsyncIterator[SignIn]:
    """``await sign_in(email, role)``: a new user of project "project", signed in with its own password."""
    sessions: list[aiohttp.ClientSession] = []

    async def make(email: str, role: str) -> Browserless:
        _, _, one_time = await front.runtime.portal.add_user(email, "project", role)
        assert one_time is not None
        session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        sessions.append(session)
        user = Browserless(front, session)
        status, _, _ = await user.post(
            "/portal/login", {"email": email, "password": one_time}, csrf=await user.csrf("/portal/login")
        )
        assert status == 303
        status, where, _ = await user.post(
            "/portal/password",
            {"current_password": one_time, "new_password": PASSWORD, "confirm_password": PASSWORD},
            csrf=await user.csrf("/portal/password"),
        )
        assert (status, where) == (303, "/portal/"), status
        return user

    yield make
    for s in sessions:
        await s.close()


async def orders_of(front: Front, query: dict[str, str]) -> list[dict[str, Any]]:
    status, doc = await front.call("GET", "/orders/?" + urlencode({**query, "expand": "card"}))
    assert status == 200, doc
    orders: list[dict[str, Any]] = doc["orders"]
    return orders


async def some_orders(front: Front) -> list[dict[str, Any]]:
    """Six orders: amounts 1.00 .. 6.00, references r1 .. r6, the even ones charged, the sixth in EUR."""
    made = []
    for i in range(1, 7):
        body = {**REQUIRED, "amount": Decimal(i), "merchant_order_id": f"r{i}"}
        if i == 6:
            body["currency"] = "EUR"
        order = await front.order(body)
        if i % 2 == 0:
            status, doc = await front.call("PUT", f"/orders/{order['id']}/charge", {})
            assert status == 200, doc
        made.append(order)
    return made


async def test_the_filter_selects_what_get_orders_selects_and_every_export_holds_exactly_those(
    front: Front, sign_in: SignIn
) -> None:
    await some_orders(front)
    user = await sign_in("viewer@shop.test", "viewer")
    page_query = [("status", "charged"), ("status", "authorized"), ("amount_from", "200"), ("amount_to", "600")]
    page_query += [("currency", "USD"), ("card.type", "visa"), ("col", "id"), ("col", "amount"), ("col", "status")]
    status, html = await user.get("/portal/?" + urlencode(page_query))
    assert status == 200, html
    api = {"status": "charged,authorized", "amount_from": "200", "amount_to": "600", "currency": "USD"}
    api["card.type"] = "visa"
    expected = await orders_of(front, api)
    assert [o["amount"] for o in expected] == ["5.00", "4.00", "3.00", "2.00"]
    assert _ROW_ID.findall(html) == [o["id"] for o in expected]
    said = re.search(r'<code id="api-query">GET /orders/\?([^<]*)</code>', html)  # the page says the API's query
    assert said is not None and dict(parse_qsl(said[1].replace("&amp;", "&"))) == api

    rows = [(o["id"], o["amount"], o["status"]) for o in expected]
    status, body, disposition = await user.raw("/portal/payments/export?" + urlencode([*page_query, ("format", "csv")]))
    assert status == 200 and 'filename="payments-project.csv"' in disposition
    table = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert table[0] == ["Payment", "Amount", "Status"] and [tuple(r) for r in table[1:]] == rows

    status, body, _ = await user.raw("/portal/payments/export?" + urlencode([*page_query, ("format", "xlsx")]))
    assert status == 200
    sheet = load_workbook(io.BytesIO(body), read_only=True)["Payments"]
    cells = [tuple(str(c) for c in r) for r in sheet.iter_rows(values_only=True)]
    assert cells[0] == ("Payment", "Amount", "Status") and cells[1:] == rows

    status, body, _ = await user.raw("/portal/payments/export?" + urlencode([*page_query, ("format", "xml")]))
    assert status == 200
    doc = ET.fromstring(body)
    assert [(p.findtext("id"), p.findtext("amount"), p.findtext("status")) for p in doc] == rows

    # Another merchant's alias selects nothing; a bad amount is named, with a 422.
    status, html = await user.get("/portal/?alias=someone-else")
    assert status == 200 and 'id="no-matches"' in html and not _ROW_ID.findall(html)
    status, html = await user.get("/portal/?amount_from=ten")
    assert status == 422 and 'id="error-amount"' in html


async def test_a_saved_template_is_the_users_own_and_applies_its_filter_and_columns(
    front: Front, sign_in: SignIn
) -> None:
    await some_orders(front)
    ann = await sign_in("ann@shop.test", "operator")
    bob = await sign_in("bob@shop.test", "viewer")
    query = urlencode([("status", "authorized"), ("col", "id"), ("col", "merchant_order_id"), ("evil", "x")])
    status, where, _ = await ann.post("/portal/payments/templates", {"name": "Waiting", "query": query})
    assert status == 303 and "evil" not in where
    _, html = await ann.get("/portal/")
    link = re.search(r'<a href="/portal/\?([^"]+)" class="template">Waiting</a>', html)
    assert link is not None
    _, applied = await ann.get("/portal/?" + link[1].replace("&amp;", "&"))
    expected = await orders_of(front, {"status": "authorized"})
    assert _ROW_ID.findall(applied) == [o["id"] for o in expected]
    assert '<th scope="col">Reference</th>' in applied and '<th scope="col">Amount</th>' not in applied
    _, theirs = await bob.get("/portal/")
    assert "Waiting" not in theirs and 'id="no-templates"' in theirs
    # Bob cannot delete Ann's template by its id (it is not his).
    project = await front.runtime.projects.by_login("project")
    assert project is not None
    row = await front.runtime.db.pool.fetchrow("SELECT id FROM portal_filter_templates WHERE name = 'Waiting'")
    assert row is not None
    await bob.post("/portal/payments/templates/delete", {"id": str(row["id"])})
    assert await front.runtime.db.pool.fetchval("SELECT count(*) FROM portal_filter_templates") == 1
    await ann.post("/portal/payments/templates/delete", {"id": str(row["id"])})
    assert await front.runtime.db.pool.fetchval("SELECT count(*) FROM portal_filter_templates") == 0


async def audit_rows(front: Front, order_id: str) -> list[tuple[str, str, str | None, str | None]]:
    rows = await front.runtime.db.pool.fetch(
        "SELECT action, result, channel, portal_user FROM audit_log WHERE order_id = $1 ORDER BY id", order_id
    )
    return [(r["action"], r["result"], r["channel"], r["portal_user"]) for r in rows]


async def test_capture_and_refunds_from_the_portal_are_the_order_services_and_name_the_portal_user(
    front: Front, sign_in: SignIn
) -> None:
    order = await front.order({**REQUIRED, "amount": Decimal("10.00")})
    oid = order["id"]
    clerk = await sign_in("clerk@shop.test", "operator")
    _, html = await clerk.get(f"/portal/payments/{oid}")
    assert 'id="capture-form"' in html and 'id="cancel-form"' in html and 'id="refund-form"' not in html
    status, where, _ = await clerk.post(f"/portal/payments/{oid}/capture", {"amount": "7.50"})
    assert (status, where) == (303, f"/portal/payments/{oid}?done=captured")
    status, where, _ = await clerk.post(f"/portal/payments/{oid}/refund", {"amount": "2.00"})
    assert status == 303
    # Beyond what is left: the service's own rule, said on the page, nothing done.
    status, _, html = await clerk.post(f"/portal/payments/{oid}/refund", {"amount": "6.00"})
    assert status == 422 and "Amount exceeds the charged amount not yet refunded" in html
    _, doc = await front.call("GET", f"/orders/{oid}")
    got = doc["orders"][0]
    assert (got["status"], got["amount_charged"], got["amount_refunded"]) == ("refunded", "7.50", "2.00")
    assert await audit_rows(front, oid) == [
        ("charge", "success", "portal", "clerk@shop.test"),
        ("refund", "success", "portal", "clerk@shop.test"),
        ("refund", "rejected", "portal", "clerk@shop.test"),
    ]
    # Cancel of an authorization reverses it.
    other = (await front.order())["id"]
    status, _, _ = await clerk.post(f"/portal/payments/{other}/cancel", {})
    assert status == 303
    _, doc = await front.call("GET", f"/orders/{other}")
    assert doc["orders"][0]["status"] == "reversed"
    assert await audit_rows(front, other) == [("cancel", "success", "portal", "clerk@shop.test")]


async def test_a_viewer_sees_no_operation_and_a_forged_post_is_refused_with_nothing_done(
    front: Front, sign_in: SignIn
) -> None:
    oid = (await front.order())["id"]
    await front.call("PUT", f"/orders/{oid}/charge", {})
    viewer = await sign_in("viewer@shop.test", "viewer")
    status, html = await viewer.get(f"/portal/payments/{oid}")
    assert status == 200 and "refund-form" not in html and "capture-form" not in html
    for action in ("refund", "capture", "cancel", "refund-items"):
        status, _, html = await viewer.post(f"/portal/payments/{oid}/{action}", {"amount": "1.00"})
        assert status == 403 and "viewer" in html, action
    _, doc = await front.call("GET", f"/orders/{oid}")
    assert doc["orders"][0]["amount_refunded"] == "0.00"
    assert await audit_rows(front, oid) == [("charge", "success", "rest", None)]


async def test_a_refund_by_cart_items_refunds_their_sum_and_never_more_units_than_the_line_has(
    front: Front, sign_in: SignIn
) -> None:
    invoice = await create_invoice(front, reference_id="cart-refund", cart=CART, amount=100)
    answer = await pay(front, invoice)
    assert answer.status in (200, 303), await answer.text()
    oid = await front.runtime.db.pool.fetchval("SELECT order_id FROM payment_invoices WHERE id = $1", invoice["id"])
    _, doc = await front.call("GET", f"/orders/{oid}")
    assert doc["orders"][0]["status"] == "charged", doc
    clerk = await sign_in("clerk@shop.test", "operator")
    _, html = await clerk.get(f"/portal/payments/{oid}?tab=cart")
    assert "Green tea" in html and 'name="qty-1"' in html
    status, _, _ = await clerk.post(f"/portal/payments/{oid}/refund-items", {"qty-0": "1", "qty-1": "2"})
    assert status == 303
    _, doc = await front.call("GET", f"/orders/{oid}")
    assert doc["orders"][0]["amount_refunded"] == "62.50"  # 12.50 + 2 x 25.00
    status, _, html = await clerk.post(f"/portal/payments/{oid}/refund-items", {"qty-1": "2"})
    assert status == 422 and "at most 1 left" in html
    _, html = await clerk.get(f"/portal/payments/{oid}?tab=cart")
    assert re.search(r'id="refunded-1">2<', html)
    _, doc = await front.call("GET", f"/orders/{oid}")
    assert doc["orders"][0]["amount_refunded"] == "62.50"


async def test_an_over_capture_up_to_the_projects_percentage_reaches_the_issuer_and_more_is_refused(
    front: Front, sign_in: SignIn
) -> None:
    project = await front.runtime.projects.by_login("project")
    assert project is not None
    await front.runtime.projects.update_settings(project.id, overcapture_percent=20)
    issuer = front.sim.issuer._issuer  # type: ignore[attr-defined]  # behind the rig's recorder
    issuer.rules = replace(issuer.rules, issuer=replace(issuer.rules.issuer, overcapture_percent=20))  # 20 % too
    oid = (await front.order({**REQUIRED, "amount": Decimal("10.00")}))["id"]
    clerk = await sign_in("clerk@shop.test", "operator")
    _, html = await clerk.get(f"/portal/payments/{oid}")
    assert "up to 12.00" in html
    status, _, html = await clerk.post(f"/portal/payments/{oid}/capture", {"amount": "12.01"})
    assert status == 422 and "Amount exceeds the authorized amount plus 20 %" in html
    status, _, _ = await clerk.post(f"/portal/payments/{oid}/capture", {"amount": "11.50"})
    assert status == 303
    _, doc = await front.call("GET", f"/orders/{oid}")
    assert (doc["orders"][0]["status"], doc["orders"][0]["amount_charged"]) == ("charged", "11.50")
    assert front.iso("0220")[-1]["4"] == "000000001150"


async def test_get_orders_filters_by_currency_and_amount_range_and_names_a_bad_bound(front: Front) -> None:
    await some_orders(front)
    eur = await orders_of(front, {"currency": "eur"})
    assert [(o["amount"], o["currency"]) for o in eur] == [("6.00", "EUR")]
    middle = await orders_of(front, {"amount_from": "200", "amount_to": "300"})
    assert [o["merchant_order_id"] for o in middle] == ["r3", "r2"]
    status, doc = await front.call("GET", "/orders/?amount_from=1.50&amount_to=-1")
    assert status == 422 and {e["uri"] for e in doc["errors"]} == {"#/amount_from", "#/amount_to"}, doc


async def test_an_export_larger_than_its_bound_is_refused_whole_not_cut_short(
    front: Front, sign_in: SignIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    from http_front.portal import payments

    await some_orders(front)
    monkeypatch.setattr(payments, "MAX_EXPORT", 5)
    user = await sign_in("viewer@shop.test", "viewer")
    status, body, _ = await user.raw("/portal/payments/export?format=csv")
    assert status == 422 and b"selects 6 payments" in body and b"at most 5" in body
    status, body, _ = await user.raw("/portal/payments/export?format=csv&currency=USD")
    assert status == 200 and len(body.decode("utf-8-sig").splitlines()) == 1 + 5
