"""Notifications of portal users (issue 13 item 8): preferences per event and channel, the notification centre,
e-mail through the mail outbox (read from the SMTP sink) and Telegram through the bot API -- a local fake of it
on 127.0.0.1 speaking the Bot API's sendMessage. Real front, real simulator, real PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from email.message import EmailMessage
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from test_http_e2e import Front
from test_http_e2e import front as front  # fixture
from test_mail import mails, sending
from test_mail import sink as sink  # fixture
from waiting import wait_for

from http_front.outbound.telegram import TelegramHttpSender
from isoswitch.mailsink import MailSink
from switch.notify import Pref, TelegramConfig

pytestmark = pytest.mark.timeout(120)

TOKEN = "123456:TEST-token_abcdefghijklmnopqrstu"
FAST = {"poll_interval": 0.05, "backoff_base": 0.1, "backoff_cap": 0.2, "timeout": 5.0}
DECLINED_PAN = "4276990011343663"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class FakeBot:
    """The Bot API's ``sendMessage``: ``messages`` it took; chats in ``blocked`` answer 403 as the real API does
    for a bot the user blocked; the others get the ``fail`` statuses first, one per call."""

    url: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    fail: list[int] = field(default_factory=list)
    blocked: set[str] = field(default_factory=set)


@pytest.fixture
async def bot() -> AsyncIterator[FakeBot]:
    fake = FakeBot("")

    async def send_message(request: web.Request) -> web.Response:
        fake.paths.append(request.path)
        if request.match_info["token"] != TOKEN:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        doc = await request.json()
        if str(doc["chat_id"]) in fake.blocked:
            body = {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}
            return web.json_response(body, status=403)
        if fake.fail:
            status = fake.fail.pop(0)
            return web.json_response({"ok": False, "error_code": status, "description": "Bad Gateway"}, status=status)
        fake.messages.append(doc)
        return web.json_response({"ok": True, "result": {"message_id": len(fake.messages), "text": doc["text"]}})

    app = web.Application()
    app.router.add_post("/bot{token}/sendMessage", send_message)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    fake.url = str(server.make_url("")).rstrip("/")
    try:
        yield fake
    finally:
        await server.close()


def config(bot: FakeBot, **changes: Any) -> TelegramConfig:
    return TelegramConfig(api_base=bot.url, token=TOKEN, **{**FAST, **changes})


@pytest.fixture
async def notifying(front: Front, sink: MailSink, bot: FakeBot) -> AsyncIterator[Front]:
    """The front with this process's notify worker: e-mails to the sink, Telegram to the fake bot API."""
    mailer = sending(front, sink.port)
    cfg = config(bot)
    front.runtime.notify.start(mailer, TelegramHttpSender(cfg), cfg)
    try:
        yield front
    finally:
        await front.runtime.notify.close()
        await mailer.close()


async def user(front: Front, email: str, project: str = "project", role: str = "owner") -> int:
    u, _, _ = await front.runtime.portal.add_user(email, project, role)
    return u.id


async def project_id(front: Front, name: str = "project") -> int:
    p = await front.runtime.projects.by_login(name)
    assert p is not None
    return p.id


async def want(front: Front, user_id: int, chat: str = "", project: str = "project", **events: str) -> None:
    """``event="email,telegram"`` (or "" for the centre alone) for each event wanted."""
    prefs = [Pref(e, True, "email" in ch, "telegram" in ch) for e, ch in events.items()]
    await front.runtime.notify.save(user_id, await project_id(front, project), prefs, chat)


async def centre(front: Front, user_id: int, project: str = "project") -> list[dict[str, Any]]:
    return await front.runtime.notify.centre(user_id, await project_id(front, project))


def mail_to(sink: MailSink, address: str) -> list[EmailMessage]:
    return [m for m in mails(sink) if m["To"] == address]


async def test_an_approved_payment_reaches_the_centre_the_mailbox_and_telegram_of_who_asked(
    notifying: Front, sink: MailSink, bot: FakeBot
) -> None:
    front = notifying
    ann = await user(front, "ann@shop.test")
    bob = await user(front, "bob@shop.test", role="viewer")  # no preferences: hears nothing
    await want(front, ann, chat="4242", payment_approved="email,telegram")
    order = await front.order()
    (msg,) = await wait_for(lambda: bot.messages, what="the Telegram message")
    assert msg["chat_id"] == "4242" and "Payment approved: 9.99 USD" in msg["text"] and order["id"] in msg["text"]
    assert bot.paths == [f"/bot{TOKEN}/sendMessage"]
    (mail,) = await wait_for(lambda: mail_to(sink, "ann@shop.test"), what="the e-mail")
    assert mail["Subject"] == "Payment approved: 9.99 USD"
    assert order["id"] in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    (n,) = await centre(front, ann)
    assert n["event"] == "payment_approved" and n["read_at"] is None and n["link"] == f"/portal/payments/{order['id']}"
    states = await wait_for(lambda: _all_sent(front, n["id"]))
    assert sorted(states) == ["email", "telegram"]
    # The charge of the same order is the same approval: no second notice.
    status, _ = await front.call("PUT", f"/orders/{order['id']}/charge")
    assert status == 200
    assert await centre(front, bob) == [] and len(await centre(front, ann)) == 1
    assert len(bot.messages) == 1 and len(mail_to(sink, "ann@shop.test")) == 1


async def _all_sent(front: Front, notification_id: int) -> list[str] | None:
    rows = [d for d in await front.runtime.notify.store.deliveries() if d["notification_id"] == notification_id]
    return [d["channel"] for d in rows] if rows and all(d["state"] == "sent" for d in rows) else None


async def test_declines_and_refunds_notify_only_their_subscribers_and_never_another_projects_users(
    notifying: Front, sink: MailSink
) -> None:
    front = notifying
    ann = await user(front, "ann@shop.test")
    eve = await user(front, "eve@other.test", project="other")
    await want(front, ann, payment_declined="", refund="email")
    await want(front, eve, project="other", payment_declined="email", refund="email", payment_approved="email")
    status, doc = await front.call("POST", "/orders/authorize", {**_required(), "pan": DECLINED_PAN})
    assert status != 200 or doc["orders"][0]["status"] == "declined"
    oid = (await front.order())["id"]
    assert (await front.call("PUT", f"/orders/{oid}/charge"))[0] == 200
    assert (await front.call("PUT", f"/orders/{oid}/refund", {"amount": Decimal("1.00")}))[0] == 200
    got = await wait_for(lambda: _events(front, ann, 2), what="a decline and a refund")
    assert sorted(got) == ["payment_declined", "refund"]  # no approval: ann did not ask for one
    (refund,) = [n for n in await centre(front, ann) if n["event"] == "refund"]
    assert refund["body"].startswith("1.00 USD of 9.99 USD refunded")
    (mail,) = await wait_for(lambda: mail_to(sink, "ann@shop.test"), what="the refund's e-mail")
    assert mail["Subject"].startswith("Refund of order")
    assert await centre(front, eve, "other") == [] and mail_to(sink, "eve@other.test") == []


def _required() -> dict[str, Any]:
    from test_http_e2e import REQUIRED

    return dict(REQUIRED)


async def _events(front: Front, user_id: int, n: int) -> list[str] | None:
    found = [x["event"] for x in await centre(front, user_id)]
    return found if len(found) >= n else None


async def test_a_telegram_outage_is_retried_until_it_answers_and_a_blocked_chat_fails_at_once(
    notifying: Front, bot: FakeBot
) -> None:
    front = notifying
    ann = await user(front, "ann@shop.test")
    bob = await user(front, "bob@shop.test")
    bot.fail = [502, 500]
    bot.blocked = {"777"}
    await want(front, ann, chat="4242", payment_approved="telegram")
    await want(front, bob, chat="777", payment_approved="telegram")
    await front.order()
    await wait_for(lambda: bot.messages, what="the message after two failed attempts")
    rows = await wait_for(lambda: _settled(front, 2))
    by_chat = {r["recipient"]: r for r in rows}
    assert by_chat["4242"]["state"] == "sent" and by_chat["4242"]["attempts"] >= 2
    assert by_chat["777"]["state"] == "failed" and by_chat["777"]["attempts"] == 1
    assert "blocked" in by_chat["777"]["last_error"]
    assert all(TOKEN not in (r["last_error"] or "") for r in rows)  # the token is in the URL, never in a log


async def _settled(front: Front, n: int) -> list[dict[str, Any]] | None:
    rows = await front.runtime.notify.store.deliveries()
    return rows if len(rows) == n and all(r["state"] != "pending" for r in rows) else None


async def test_events_written_while_no_worker_runs_are_delivered_once_one_starts(
    front: Front, sink: MailSink, bot: FakeBot
) -> None:
    cfg = config(bot)
    mailer = sending(front, sink.port)
    try:
        ann = await user(front, "ann@shop.test")
        front.runtime.notify.start(mailer, TelegramHttpSender(cfg), cfg)
        await want(front, ann, chat="4242", payment_approved="email,telegram")
        await front.runtime.notify.close()  # the process stops; the project still wants its events
        order = await front.order()
        assert await centre(front, ann) == [] and bot.messages == []
        front.runtime.notify.start(mailer, TelegramHttpSender(cfg), cfg)  # another process, later
        await wait_for(lambda: bot.messages, what="the message")
        await wait_for(lambda: mail_to(sink, "ann@shop.test"), what="the e-mail")
        assert [n["link"] for n in await centre(front, ann)] == [f"/portal/payments/{order['id']}"]
    finally:
        await front.runtime.notify.close()
        await mailer.close()


async def _login(front: Front, email: str, password: str) -> int:
    page = await front.http.get("/portal/login")
    match = _CSRF.search(await page.text())
    assert match is not None
    answer = await front.http.post(
        "/portal/login", data={"csrf": match[1], "email": email, "password": password}, allow_redirects=False
    )
    return answer.status


async def test_a_new_login_notifies_its_user_by_e_mail_and_a_failed_one_does_not(
    notifying: Front, sink: MailSink
) -> None:
    front = notifying
    u, _, password = await front.runtime.portal.add_user("ann@shop.test", "project", "owner")
    assert password is not None
    await want(front, u.id, login="email")
    assert await _login(front, "ann@shop.test", "Wrong#Guess1") == 401
    assert await _login(front, "ann@shop.test", password) == 303
    (mail,) = await wait_for(lambda: mail_to(sink, "ann@shop.test"), what="the login's e-mail")
    assert mail["Subject"] == "New login to the portal"
    assert "127.0.0.1" in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert [n["event"] for n in await centre(front, u.id)] == ["login"]


async def _form(front: Front, path: str) -> tuple[str, str]:
    page = await front.http.get(path)
    assert page.status == 200, path
    text = await page.text()
    match = _CSRF.search(text)
    assert match is not None
    return text, match[1]


async def test_the_centre_marks_read_only_the_users_own_notifications_and_refuses_a_csrf_less_post(
    notifying: Front,
) -> None:
    front = notifying
    ann_user, _, ann_pw = await front.runtime.portal.add_user("ann@shop.test", "project", "viewer")
    bob = await user(front, "bob@shop.test")
    assert ann_pw is not None
    await want(front, ann_user.id, payment_approved="")
    await want(front, bob, payment_approved="")
    for _ in range(2):
        await front.order()
    await wait_for(lambda: _events(front, ann_user.id, 2))
    await wait_for(lambda: _events(front, bob, 2))
    bobs = [n["id"] for n in await centre(front, bob)]
    # Ann logs in (a one-time password: she sets her own first).
    await _login(front, "ann@shop.test", ann_pw)
    _, csrf = await _form(front, "/portal/password")
    new = {"csrf": csrf, "current_password": ann_pw, "new_password": "Sunny#Day42x", "confirm_password": "Sunny#Day42x"}
    assert (await front.http.post("/portal/password", data=new, allow_redirects=False)).status == 303
    text, csrf = await _form(front, "/portal/notifications")
    assert "2 unread" in text and text.count('class="notify-item unread"') == 2
    mine = [int(x) for x in re.findall(r'id="notification-(\d+)"', text)]
    # Without the CSRF token: 403, nothing read.
    refused = await front.http.post("/portal/notifications/read", data={"all": "1"}, allow_redirects=False)
    assert refused.status == 403 and await front.runtime.notify.unread(ann_user.id, await project_id(front)) == 2
    # Bob's ids forged into Ann's form change nothing of Bob's.
    forged = {"csrf": csrf, "id": str(bobs[0])}
    assert (await front.http.post("/portal/notifications/read", data=forged, allow_redirects=False)).status == 303
    assert await front.runtime.notify.unread(bob, await project_id(front)) == 2
    one = {"csrf": csrf, "id": str(mine[0])}
    await front.http.post("/portal/notifications/read", data=one, allow_redirects=False)
    text, _ = await _form(front, "/portal/notifications?show=unread")
    assert "1 unread" in text and f'id="notification-{mine[1]}"' in text and f'id="notification-{mine[0]}"' not in text
    await front.http.post("/portal/notifications/read", data={"csrf": csrf, "all": "1"}, allow_redirects=False)
    text, _ = await _form(front, "/portal/notifications")
    assert "0 unread" in text and text.count('class="notify-item"') == 2


async def test_preferences_are_saved_from_the_form_and_telegram_without_a_chat_is_refused(front: Front) -> None:
    ann, _, pw = await front.runtime.portal.add_user("ann@shop.test", "project", "viewer")
    assert pw is not None
    await _login(front, "ann@shop.test", pw)
    _, csrf = await _form(front, "/portal/password")
    new = {"csrf": csrf, "current_password": pw, "new_password": "Sunny#Day42x", "confirm_password": "Sunny#Day42x"}
    await front.http.post("/portal/password", data=new, allow_redirects=False)
    text, csrf = await _form(front, "/portal/notifications/settings")
    assert 'id="telegram-off"' in text  # no bot token on this server: said, not hidden
    bad = await front.http.post(
        "/portal/notifications/settings", data={"csrf": csrf, "telegram_refund": "on"}, allow_redirects=False
    )
    assert bad.status == 422 and "chat id" in await bad.text()
    form = {
        "csrf": csrf,
        "on_payment_declined": "on",
        "email_refund": "on",
        "telegram_refund": "on",
        "telegram_chat": "99",
    }
    ok = await front.http.post("/portal/notifications/settings", data=form, allow_redirects=False)
    assert ok.status == 303
    prefs = {p.event: p for p in await front.runtime.notify.prefs(ann.id, await project_id(front))}
    assert prefs["payment_declined"] == Pref("payment_declined", True, False, False)
    assert prefs["refund"] == Pref("refund", True, True, True) and not prefs["login"].on
    assert await front.runtime.notify.telegram_chat(ann.id) == "99"
    without = {k: v for k, v in form.items() if k != "csrf"} | {"telegram_chat": ""}
    assert (await front.http.post("/portal/notifications/settings", data=without)).status == 403
    assert await front.runtime.notify.telegram_chat(ann.id) == "99"


def test_the_bot_token_comes_from_the_environment_config_show_hides_it_and_a_bad_base_is_refused() -> None:
    from isoswitch.config import load, show
    from switch.settings import ConfigError

    s = load(env={"ISOSWITCH_TELEGRAM__TOKEN": TOKEN, "ISOSWITCH_TELEGRAM__API_BASE": "http://127.0.0.1:9"})
    assert (s.runtime.telegram.token, s.runtime.telegram.api_base) == (TOKEN, "http://127.0.0.1:9")
    shown = show(s)
    assert 'token = "<hidden>"' in shown and TOKEN not in shown
    for env, what in (
        ({"ISOSWITCH_TELEGRAM__API_BASE": "ftp://bot.example"}, "api_base"),
        ({"ISOSWITCH_TELEGRAM__TOKEN": "not a token"}, "token must look like"),
    ):
        with pytest.raises(ConfigError, match=what):
            load(env=env)


async def test_an_invoice_paid_and_one_expired_unpaid_are_each_notified_once(notifying: Front, sink: MailSink) -> None:
    from datetime import UTC, datetime, timedelta

    from test_invoices import create_invoice, pay

    front = notifying
    ann = await user(front, "ann@shop.test")
    await want(front, ann, invoice_paid="email", invoice_expired="email")
    paid = await create_invoice(front, reference_id="inv-paid")
    assert (await pay(front, paid)).status == 303
    (mail,) = await wait_for(lambda: mail_to(sink, "ann@shop.test"), what="the paid invoice's e-mail")
    assert mail["Subject"] == f"Invoice {paid['id']} paid"
    unpaid = await create_invoice(front, reference_id="inv-unpaid")
    worker = front.runtime.notify.worker
    assert worker is not None
    # The worker's clock past the unpaid invoice's expiry (a day ahead), as a day later.
    worker.clock = lambda: datetime.now(UTC) + timedelta(days=1, hours=1)
    for _ in range(2):  # swept twice: still one notice
        await front.runtime.notify.store.sweep_expired(worker.clock())
    worker.kick()
    got = await wait_for(lambda: _events(front, ann, 2), what="the expired invoice's notice")
    assert sorted(got) == ["invoice_expired", "invoice_paid"]
    (expired,) = [n for n in await centre(front, ann) if n["event"] == "invoice_expired"]
    assert expired["title"] == f"Invoice {unpaid['id']} expired" and "inv-unpaid" in expired["body"]
    await wait_for(lambda: len(mail_to(sink, "ann@shop.test")) == 2, what="the expired invoice's e-mail")


async def test_two_workers_on_one_database_notify_each_event_exactly_once(
    notifying: Front, sink: MailSink, bot: FakeBot
) -> None:
    from switch.notify import NotifyWorker

    front = notifying
    n = front.runtime.notify
    mailer = sending(front, sink.port)
    cfg = config(bot)
    second = NotifyWorker(
        n.store, cfg, mailer, events=n.events, load_order=n.load_order, telegram=TelegramHttpSender(cfg)
    )
    second.start()
    try:
        ann = await user(front, "ann@shop.test")
        await want(front, ann, chat="4242", payment_approved="email,telegram", payment_declined="telegram")
        for _ in range(4):
            await front.order()
            await front.call("POST", "/orders/authorize", {**_required(), "pan": DECLINED_PAN})
        await wait_for(lambda: len(bot.messages) >= 8, what="eight Telegram messages")
        await wait_for(lambda: len(mail_to(sink, "ann@shop.test")) >= 4, what="four e-mails")
        await wait_for(lambda: _settled(front, 12))
    finally:
        await second.close()
        await mailer.close()
    assert len(bot.messages) == 8 and len(mail_to(sink, "ann@shop.test")) == 4
    assert len(await centre(front, ann)) == 8


async def test_the_bot_api_client_never_puts_the_token_in_an_error(bot: FakeBot) -> None:
    from test_mail import free_port

    from http_front.outbound.telegram import TelegramApiError

    closed = TelegramHttpSender(TelegramConfig(api_base=f"http://127.0.0.1:{free_port()}", token=TOKEN))
    wrong = TelegramHttpSender(TelegramConfig(api_base=bot.url, token=TOKEN.replace("TEST", "XXXX")))
    try:
        for sender, what in ((closed, "ClientConnectorError"), (wrong, "401 Unauthorized")):
            with pytest.raises(TelegramApiError) as e:
                await sender.send_message("4242", "hello", 5.0)
            assert what in str(e.value) and "TEST-token" not in str(e.value) and "XXXX" not in str(e.value)
    finally:
        await closed.close()
        await wrong.close()
