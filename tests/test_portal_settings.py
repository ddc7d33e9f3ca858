"""The portal's settings area over HTTP (issue 13 item 4): the general settings saved through the CLI's validation,
owners and admins only (a viewer's and an operator's forged POSTs are 403 and change nothing), the payment page's
logo checked and served from this origin, the settings' effects on the API and the hosted page, and webhooks
(endpoints, the secret shown once, rotation, the delivery log, redeliver of this project's events only). Real
front, real PostgreSQL, real simulator (tests/test_http_e2e.py's rig); each user a browser of its own (cookies).
"""

from __future__ import annotations

import dataclasses
import re
import struct
import zlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from test_http_e2e import REQUIRED, Front
from test_http_e2e import front as front  # fixture

from switch.portal.settings import LOGO_MAX_BYTES, session_event_mails, sniff
from switch.store import InvalidSettings, Project, ProjectSettings

pytestmark = pytest.mark.timeout(90)

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
NEW_PASSWORD = "Sunny#Day42x"


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A one-colour PNG (what a logo upload needs: real magic bytes and a picture a browser decodes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


PNG = png(160, 48, (29, 78, 216))
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'


class Browser:
    """One user's browser: its own cookies, the page's CSRF token read from the last page."""

    def __init__(self, front: Front, session: aiohttp.ClientSession) -> None:
        self.base = str(front.http.make_url("")).rstrip("/")
        self.session = session
        self.csrf = ""

    async def get(self, path: str) -> tuple[int, str]:
        async with self.session.get(self.base + path, allow_redirects=False) as r:
            text = await r.text()
            match = _CSRF.search(text)
            if match:
                self.csrf = match[1]
            return r.status, text

    async def post(self, path: str, data: Any, *, csrf: bool = True) -> tuple[int, str, str]:
        if isinstance(data, dict) and csrf:
            data = {"csrf": self.csrf, **data}
        async with self.session.post(self.base + path, data=data, allow_redirects=False) as r:
            text = await r.text()
            match = _CSRF.search(text)
            if match:
                self.csrf = match[1]
            return r.status, text, r.headers.get("Location", "")


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"\xff\xd8\xff\xe0" + bytes(16), "image/jpeg"),
        (b"GIF87a" + bytes(16), "image/gif"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 " + bytes(16), "image/webp"),
        (b"\x89PNG\r\n\x1a\n" + bytes(16), "image/png"),
    ],
)
def test_a_logo_is_known_by_its_magic_bytes(data: bytes, kind: str) -> None:
    assert sniff(data) == kind


def test_session_creation_events_mail_each_notification_address_and_nothing_when_off() -> None:
    settings = ProjectSettings.defaults(3, "shop")
    project = Project(3, "shop", "shop", settings)
    assert session_event_mails(project, "1" * 17, "3.00", "USD") == []
    on = dataclasses.replace(settings, session_events=True, notify_emails="a@shop.test, b@shop.test")
    mails = session_event_mails(Project(3, "shop", "shop", on), "1" * 17, "3.00", "USD")
    assert [(m.to, m.kind, m.reference, m.project_id) for m in mails] == [
        ("a@shop.test", "notice", "1" * 17, 3),
        ("b@shop.test", "notice", "1" * 17, 3),
    ]
    assert "3.00 USD" in mails[0].text


@pytest.fixture
async def browsers(front: Front) -> AsyncIterator[Any]:
    sessions: list[aiohttp.ClientSession] = []

    async def open_as(email: str, role: str, project: str = "project") -> Browser:
        _, _, one_time = await front.runtime.portal.add_user(email, project, role)
        assert one_time is not None
        session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        sessions.append(session)
        b = Browser(front, session)
        await b.get("/portal/login")
        status, _, where = await b.post("/portal/login", {"email": email, "password": one_time})
        assert status == 303 and where == "/portal/password"
        await b.get("/portal/password")
        status, _, where = await b.post(
            "/portal/password",
            {"current_password": one_time, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD},
        )
        assert status == 303 and where == "/portal/", where
        return b

    yield open_as
    for s in sessions:
        await s.close()


def _form(settings: ProjectSettings, **changes: str) -> dict[str, str]:
    """The settings page's form as a browser posts it: checked boxes as "on", unchecked ones absent."""
    doc = settings.to_json()
    keys = (
        "capture_hours", "payment_session_minutes", "page_template", "notify_emails", "open_id_token",
        "portal_session_minutes",
    )  # fmt: skip
    flags = (
        "auto_capture", "two_step_allowed", "cvv_required", "holder_required", "google_pay_browser",
        "google_pay_mobile", "apple_pay", "show_final_page", "session_events",
    )  # fmt: skip
    form = {k: str(doc[k]) for k in keys}
    form.update({k: "on" for k in flags if doc[k]})
    for k, v in changes.items():
        if v == "off":
            form.pop(k, None)
        else:
            form[k] = v
    return form


async def _settings(front: Front, login: str = "project") -> ProjectSettings:
    project = await front.runtime.projects.by_login(login)
    assert project is not None
    return project.settings


async def test_an_owner_saves_the_general_settings_with_the_clis_validation(front: Front, browsers: Any) -> None:
    owner = await browsers("owner@shop.test", "owner")
    status, page = await owner.get("/portal/settings")
    assert status == 200 and 'id="s_auto_capture"' in page and "Capture time (in hours)" in page
    before = await _settings(front)
    form = _form(before, auto_capture="on", capture_hours="6", notify_emails="a@shop.test, b@shop.test")
    form["apple_pay"] = ""  # any value but "on" is an unchecked box
    status, _, where = await owner.post("/portal/settings", {**form, "show_final_page": "on"})
    assert status == 303 and where == "/portal/settings?saved=1"
    after = await _settings(front)
    assert (after.auto_capture, after.capture_hours, after.show_final_page, after.apple_pay) == (True, 6, True, False)
    assert after.notify_emails == "a@shop.test, b@shop.test" and after.terminal_id == before.terminal_id
    # A wrong value: the CLI's message, the typed values shown again, nothing stored.
    status, page, _ = await owner.post("/portal/settings", _form(after, capture_hours="721"))
    with pytest.raises(InvalidSettings) as cli:
        ProjectSettings.from_json({**after.to_json(), "capture_hours": 721})
    assert status == 422 and f"Capture time (in hours): {cli.value}" in page and 'value="721"' in page
    status, page, _ = await owner.post("/portal/settings", _form(after, notify_emails="not an address"))
    assert status == 422 and "E-mail: notify_emails must be" in page
    assert await _settings(front) == after
    # The Open Id token, generated on the page.
    status, _, _ = await owner.post("/portal/settings/open-id", {})
    token = (await _settings(front)).open_id_token
    assert status == 303 and len(token) >= 40 and token in (await owner.get("/portal/settings"))[1]


async def test_a_viewer_and_an_operator_neither_see_nor_change_settings_even_by_a_forged_post(
    front: Front, browsers: Any
) -> None:
    before = await _settings(front)
    for email, role in (("viewer@shop.test", "viewer"), ("operator@shop.test", "operator")):
        user = await browsers(email, role)
        status, home = await user.get("/portal/")
        assert status == 200 and 'href="/portal/settings"' not in home and 'href="/portal/webhooks"' not in home
        assert (await user.get("/portal/settings"))[0] == 403
        assert (await user.get("/portal/webhooks"))[0] == 403
        for path, data in (
            ("/portal/settings", _form(before, auto_capture="on")),
            ("/portal/settings/open-id", {}),
            ("/portal/webhooks", {"name": "evil", "url": "http://127.0.0.1:9/x"}),
            ("/portal/settings/logo/remove", {}),
        ):
            status, page, _ = await user.post(path, data)
            assert status == 403 and f"Your role ({role}) does not allow this" in page, path
    assert await _settings(front) == before
    assert await front.runtime.db.pool.fetchval("SELECT count(*) FROM webhook_endpoints") == 0


async def test_a_post_without_the_csrf_token_changes_nothing(front: Front, browsers: Any) -> None:
    admin = await browsers("admin@shop.test", "admin")
    before = await _settings(front)
    status, _, _ = await admin.post("/portal/settings", _form(before, auto_capture="on"), csrf=False)
    assert status == 403 and await _settings(front) == before


async def test_the_logo_is_checked_for_type_and_size_and_served_from_this_origin(front: Front, browsers: Any) -> None:
    admin = await browsers("admin@shop.test", "admin")
    await admin.get("/portal/settings")

    def upload(data: bytes, name: str, kind: str) -> aiohttp.FormData:
        form = aiohttp.FormData()
        form.add_field("csrf", admin.csrf)
        form.add_field("logo", data, filename=name, content_type=kind)
        return form

    for data, name, says in (
        (SVG, "logo.svg", "must be a PNG, JPEG, GIF or WebP"),
        (b"GIF89a" + bytes(LOGO_MAX_BYTES), "big.gif", f"at most {LOGO_MAX_BYTES // 1024} KiB"),
        (b"MZ\x90\x00 not a picture", "logo.png", "must be a PNG"),  # the name and the browser's type are not trusted
    ):
        status, page, _ = await admin.post("/portal/settings/logo", upload(data, name, "image/png"))
        assert status == 422 and says in page, name
    status, _, _ = await admin.post("/portal/settings/logo", upload(PNG, "logo.png", "image/png"))
    assert status == 303
    status, page = await admin.get("/portal/settings")
    match = re.search(r'src="(/pay/logo/\d+/[0-9a-f]{64})"', page)
    assert match is not None
    async with admin.session.get(admin.base + match[1]) as r:
        assert r.status == 200 and r.content_type == "image/png" and await r.read() == PNG
        assert "img-src 'self'" in r.headers["Content-Security-Policy"] and r.headers["X-Content-Type-Options"]
    # Another digest (an old logo, a guess) and another project's number: nothing.
    other = await front.runtime.projects.by_login("other")
    assert other is not None
    for wrong in (match[1][:-1] + "0" if not match[1].endswith("0") else match[1][:-1] + "1",
                  re.sub(r"/pay/logo/\d+/", f"/pay/logo/{other.id}/", match[1])):  # fmt: skip
        async with admin.session.get(admin.base + wrong) as r:
            assert r.status == 404
    # The hosted page shows it (and its template's class).
    project = await front.runtime.projects.by_login("project")
    assert project is not None
    await front.runtime.projects.update_settings(project.id, page_template="dark")
    _, url = await create_page(front)
    async with admin.session.get(url) as r:
        page = await r.text()
    assert f'src="{match[1]}"' in page and 'class="tpl-dark' in page


async def create_page(front: Front) -> tuple[str, str]:
    """``POST /orders/create``: the order's id and its page's URL."""
    body = {"amount": "3.00", "currency": "USD", "options": {"return_url": "http://shop.test/back"}}
    r = await front.http.post("/orders/create", json=body, headers=front.auth)
    assert r.status == 201, await r.text()
    return str((await r.json())["orders"][0]["id"]), r.headers["Location"]


async def test_settings_take_effect_on_the_api(front: Front) -> None:
    project = await front.runtime.projects.by_login("project")
    assert project is not None
    await front.runtime.projects.update_settings(project.id, two_step_allowed=False, payment_session_minutes=7)
    status, answer = await front.call("POST", "/orders/authorize", REQUIRED)
    assert status == 402 and answer["failure_type"] == "rejected", answer
    assert "Two-step payments are not allowed" in answer["failure_message"]
    status, answer = await front.call("POST", "/orders/authorize", {**REQUIRED, "options": {"auto_charge": 1}})
    assert status == 200 and answer["orders"][0]["status"] == "charged", answer
    # A hosted page without its own expiration lasts the project's session duration.
    before = datetime.now(UTC)
    order_id, _ = await create_page(front)
    expires = await front.runtime.db.pool.fetchval("SELECT expires_at FROM payment_pages WHERE order_id = $1", order_id)
    assert 6.9 * 60 < (expires - before).total_seconds() < 7.1 * 60
    assert await front.runtime.db.pool.fetchval("SELECT count(*) FROM mail_outbox") == 0  # events off: no mail
    # "Send session creation events": one mail per notification address, naming the order.
    await front.runtime.projects.update_settings(
        project.id, session_events=True, notify_emails="ops@shop.test,boss@shop.test"
    )
    order_id, _ = await create_page(front)
    rows = await front.runtime.db.pool.fetch("SELECT recipient, kind, reference, subject FROM mail_outbox ORDER BY id")
    assert [(r["recipient"], r["kind"], r["reference"]) for r in rows] == [
        ("ops@shop.test", "notice", order_id),
        ("boss@shop.test", "notice", order_id),
    ]
    assert rows[0]["subject"] == f"Payment session {order_id} created"


async def test_webhook_endpoints_secrets_the_delivery_log_and_redeliver(front: Front, browsers: Any) -> None:
    owner = await browsers("owner@shop.test", "owner")
    await owner.get("/portal/webhooks")
    status, page, _ = await owner.post("/portal/webhooks", {"name": "shop", "url": "ftp://127.0.0.1/x"})
    assert status == 422
    status, page, _ = await owner.post("/portal/webhooks", {"name": "shop", "url": "http://127.0.0.1:9/hooks"})
    secret = re.search(r'id="webhook-secret">([^<]+)<', page)
    assert status == 200 and secret is not None and secret[1].startswith("whsec_")
    status, page = await owner.get("/portal/webhooks")
    assert secret[1] not in page and "http://127.0.0.1:9/hooks" in page  # shown once
    # An order of the project makes an event: in the log at once.
    order = await front.order()
    status, page = await owner.get("/portal/webhooks")
    event = re.search(r"<code>(evt_" + order["id"] + r"_\d+)</code>", page)
    assert event is not None and "order.authorized" in page
    status, page, _ = await owner.post("/portal/webhooks/redeliver", {"event_id": event[1]})
    assert status == 200 and f"Event {event[1]} is sent again" in page
    # Another project's event, by a forged id: no such event, nothing reset.
    other = await browsers("owner@other.test", "owner", "other")
    await other.get("/portal/webhooks")
    status, page, _ = await other.post("/portal/webhooks/redeliver", {"event_id": event[1]})
    assert status == 404 and "no such event" in page
    # Rotate: a new secret, shown once; another project cannot rotate or remove this one.
    endpoint_id = await front.runtime.db.pool.fetchval("SELECT id FROM webhook_endpoints WHERE name = 'shop'")
    for path in ("/portal/webhooks/rotate", "/portal/webhooks/remove"):
        assert (await other.post(path, {"id": str(endpoint_id)}))[0] == 404
    status, page, _ = await owner.post("/portal/webhooks/rotate", {"id": str(endpoint_id), "name": "shop"})
    rotated = re.search(r'id="webhook-secret">([^<]+)<', page)
    assert status == 200 and rotated is not None and rotated[1] != secret[1]
    status, _, _ = await owner.post("/portal/webhooks/remove", {"id": str(endpoint_id)})
    assert status == 303 and "no-endpoints" in (await owner.get("/portal/webhooks"))[1]
