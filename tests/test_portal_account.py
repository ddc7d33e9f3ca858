"""The portal's account area below the browser (http_front/portal/account.py, switch/portal/account.py): recovery
links (one answer for every address, one use, an expiry), the e-mail code as a second factor, the bounded login
history, API keys the API takes until they are deleted, public keys rotated, the project switcher, and the roles
the server enforces on all of it. Real front, real PostgreSQL (tests/test_http_e2e.py's rig), mails through the
real SMTP client to the real sink of ``isoswitch up``.
"""

from __future__ import annotations

import base64
import dataclasses
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pyotp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from test_http_e2e import Front
from test_http_e2e import front as front  # fixture
from test_invoices import PUBLIC_REQUEST, keys_of
from waiting import wait_for

from http_front.logs import _PAGE_TOKEN
from http_front.outbound.smtp import SmtpSender
from isoswitch.mailsink import MailSink, read_mails
from switch.mail import MailConfig
from switch.portal import PortalConfig
from switch.store.api_keys import ApiKeys
from switch.store.projects import Projects

pytestmark = pytest.mark.timeout(120)

PASSWORD = "Sunny#Day42x"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_LINK = re.compile(r"http://\S+/portal/recover/([A-Za-z0-9_-]{43})")
_CODE = re.compile(r"\b(\d{6})\b")
Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def sink(front: Front, tmp_path: Path) -> AsyncIterator[MailSink]:
    """The SMTP sink, and the front's outbox sending to it."""
    s = MailSink(tmp_path / "mail", port=0)
    await s.start()
    front.runtime.mail.start(SmtpSender(MailConfig(port=s.port, poll_interval=0.05)))
    try:
        yield s
    finally:
        await s.close()


async def user(front: Front, email: str, role: str = "owner", project: str = "project") -> None:
    """A user with :data:`PASSWORD` (the one-time password already changed)."""
    portal = front.runtime.portal
    _, _, one_time = await portal.add_user(email, project, role)
    assert one_time is not None
    first = await portal.login(email, one_time, None, None)
    assert first.session is not None
    await portal.change_password(first.session, one_time, PASSWORD, None, None)


async def csrf_of(client: Client, path: str) -> str:
    match = _CSRF.search(await (await client.get(path)).text())
    assert match is not None, path
    return match[1]


async def log_in(client: Client, email: str, password: str = PASSWORD) -> int:
    client.session.cookie_jar.clear()  # a fresh browser (a signed-in one is sent from the login page to the portal)
    csrf = await csrf_of(client, "/portal/login")
    answer = await client.post(
        "/portal/login", data={"csrf": csrf, "email": email, "password": password}, allow_redirects=False
    )
    return answer.status


async def post(client: Client, path: str, form: dict[str, str], *, page: str | None = None) -> web.StreamResponse:
    """A form of ``page`` (default: ``path``) posted with the page's CSRF token."""
    csrf = await csrf_of(client, page or path)
    return await client.post(path, data={"csrf": csrf, **form}, allow_redirects=False)


def mails_to(sink: MailSink, address: str) -> list[EmailMessage]:
    return [m for m in read_mails(sink.directory) if m["To"] == address]


def text_of(mail: EmailMessage) -> str:
    body = mail.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def basic(login: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()}


# -- recovery --------------------------------------------------------------------------------------


async def test_a_recovery_request_answers_alike_for_known_and_unknown_addresses_and_mails_only_the_known(
    front: Front, sink: MailSink
) -> None:
    await user(front, "owner@shop.test")
    pages = []
    for address in ("Owner@Shop.test", "nobody@shop.test"):
        answer = await post(front.http, "/portal/recover", {"email": address})
        assert answer.status == 200
        pages.append(_CSRF.sub("", await answer.text()))
    assert pages[0] == pages[1] and "a link to choose a new password is on its way" in pages[0]
    (mail,) = await wait_for(lambda: mails_to(sink, "owner@shop.test"), what="the recovery mail")
    assert mail["Subject"] == "Set a new password for the merchant portal"
    rows = await front.runtime.db.pool.fetch("SELECT recipient, kind FROM mail_outbox")
    assert [(r["recipient"], r["kind"]) for r in rows] == [("owner@shop.test", "recovery")]
    # Asking again at once sends nothing more (a form in a loop fills no mailbox), with the same answer.
    again = await post(front.http, "/portal/recover", {"email": "owner@shop.test"})
    assert again.status == 200 and _CSRF.sub("", await again.text()) == pages[0]
    assert await front.runtime.db.pool.fetchval("SELECT count(*) FROM mail_outbox") == 1


async def test_a_forged_host_header_does_not_choose_where_the_recovery_link_points(
    front: Front, sink: MailSink
) -> None:
    await user(front, "owner@shop.test")
    csrf = await csrf_of(front.http, "/portal/recover")
    answer = await front.http.post(
        "/portal/recover", data={"csrf": csrf, "email": "owner@shop.test"}, headers={"Host": "evil.example"}
    )
    assert answer.status == 200
    (mail,) = await wait_for(lambda: mails_to(sink, "owner@shop.test"), what="the recovery mail")
    link = _LINK.search(text_of(mail))
    assert link is not None and "evil.example" not in text_of(mail)
    assert link[0].startswith(str(front.http.make_url("/portal/recover/")))  # the address the request came in on


async def test_a_recovery_link_works_once_and_not_after_it_expires(front: Front, sink: MailSink) -> None:
    await user(front, "owner@shop.test")
    portal = front.runtime.portal
    assert await portal.account.request_recovery("owner@shop.test", "http://portal.test")
    (mail,) = await wait_for(lambda: mails_to(sink, "owner@shop.test"), what="the recovery mail")
    match = _LINK.search(text_of(mail))
    assert match is not None
    token = match[1]
    weak = await post(front.http, f"/portal/recover/{token}", {"new_password": "weak", "confirm_password": "weak"})
    assert weak.status == 422 and "at least 8" in await weak.text()  # refused, and the link is not spent
    new = "Rainy#Night77"
    done = await post(front.http, f"/portal/recover/{token}", {"new_password": new, "confirm_password": new})
    assert done.status == 200 and "Your password is changed" in await done.text()
    assert (await front.http.get(f"/portal/recover/{token}")).status == 410
    reused = await post(
        front.http, f"/portal/recover/{token}", {"new_password": "Other#Pass99", "confirm_password": "Other#Pass99"},
        page="/portal/recover",
    )  # fmt: skip
    assert reused.status == 410
    assert await log_in(front.http, "owner@shop.test", new) == 303
    assert await log_in(front.http, "owner@shop.test", PASSWORD) == 401
    results = [h["result"] for h in await portal.history(await _user_id(front, "owner@shop.test"))]
    assert "recovery_link" in results

    # A second link, opened after its time: refused, and the password stays.
    start = portal.clock()
    portal.clock = lambda: start + timedelta(minutes=2)  # past the gap between two mails
    assert await portal.account.request_recovery("owner@shop.test", "http://portal.test")
    mails = await wait_for(lambda: mails_to(sink, "owner@shop.test")[1:], what="the second recovery mail")
    late = _LINK.search(text_of(mails[0]))
    assert late is not None
    portal.clock = lambda: start + timedelta(seconds=portal.config.recovery_ttl + 180)
    assert (await front.http.get(f"/portal/recover/{late[1]}")).status == 410
    portal.clock = lambda: start
    assert await log_in(front.http, "owner@shop.test", new) == 303


async def _user_id(front: Front, email: str) -> int:
    user_id: int = await front.runtime.db.pool.fetchval("SELECT id FROM portal_users WHERE email = $1", email)
    return user_id


def test_the_access_log_keeps_six_characters_of_a_recovery_token() -> None:
    token = "A" * 6 + "b" * 37
    assert _PAGE_TOKEN.sub(
        lambda m: f"{m[1] or m[3] or m[5]}{m[2] or m[4] or m[6]}...", f"/portal/recover/{token}"
    ) == ("/portal/recover/AAAAAA...")


# -- the e-mail code -------------------------------------------------------------------------------


async def test_the_email_code_is_a_second_factor_each_code_works_once_and_it_replaces_totp(
    front: Front, sink: MailSink
) -> None:
    await user(front, "owner@shop.test")
    portal = front.runtime.portal
    assert await log_in(front.http, "owner@shop.test") == 303
    wrong = await post(front.http, "/portal/security/email", {"password": "Wrong#Pass1"}, page="/portal/security")
    assert wrong.status == 422 and not mails_to(sink, "owner@shop.test")
    started = await post(front.http, "/portal/security/email", {"password": PASSWORD}, page="/portal/security")
    assert started.status == 200
    (mail,) = await wait_for(lambda: mails_to(sink, "owner@shop.test"), what="the enrolment code")
    code = _CODE.search(text_of(mail))
    assert code is not None
    token = _CSRF.search(await started.text())
    assert token is not None
    confirm = await front.http.post(
        "/portal/security/email/confirm", data={"csrf": token[1], "code": code[1]}, allow_redirects=False
    )
    assert confirm.status == 303
    assert "is <strong>on</strong>" in await (await front.http.get("/portal/security")).text()

    await post(front.http, "/portal/logout", {}, page="/portal/security")
    pending = await portal.login("owner@shop.test", PASSWORD, None, None)
    assert pending.outcome == "mfa" and pending.token is not None
    mails = await wait_for(lambda: mails_to(sink, "owner@shop.test")[1:], what="the login code")
    login_code = _CODE.search(text_of(mails[0]))
    assert login_code is not None
    wrong_code = "000000" if login_code[1] != "000000" else "111111"
    assert (await portal.second_factor(pending.token, wrong_code, None, None)).outcome == "bad"
    done = await portal.second_factor(pending.token, login_code[1], None, None)
    assert done.outcome == "ok" and done.session is not None and done.session.user.email_code
    again = await portal.login("owner@shop.test", PASSWORD, None, None)
    assert again.token is not None
    assert (await portal.second_factor(again.token, login_code[1], None, None)).outcome == "bad"  # used up
    history = [h["result"] for h in await portal.history(done.session.user.id)]
    assert history[:3] == ["bad_code", "email_code", "bad_code"], history

    # Enrolling the authenticator app turns the e-mail code off: one second factor at a time.
    secret, _ = await portal.totp_begin(done.session)
    await portal.totp_confirm(done.session, pyotp.TOTP(secret).at(portal.clock()))
    row = await front.runtime.db.pool.fetchrow(
        "SELECT totp_enabled, email_code_enabled FROM portal_users WHERE id = $1", done.session.user.id
    )
    assert (row["totp_enabled"], row["email_code_enabled"]) == (True, False)


async def test_a_login_the_outbox_cannot_mail_is_refused_the_email_code_with_a_reason(front: Front) -> None:
    await user(front, "ann@localhost")
    assert await log_in(front.http, "ann@localhost") == 303
    answer = await post(front.http, "/portal/security/email", {"password": PASSWORD}, page="/portal/security")
    assert answer.status == 422 and "not an e-mail address we can send codes to" in await answer.text()
    assert await front.runtime.db.pool.fetchval("SELECT count(*) FROM mail_outbox") == 0


async def test_the_login_history_keeps_its_bound_per_user_and_in_time(front: Front) -> None:
    await user(front, "owner@shop.test")
    portal = front.runtime.portal
    portal.config = dataclasses.replace(portal.config, history_keep=3, max_failures=100)
    for _ in range(6):
        await portal.login("owner@shop.test", "Wrong#Guess1", None, None)
    await portal.login("owner@shop.test", PASSWORD, None, None)
    user_id = await _user_id(front, "owner@shop.test")
    rows = await front.runtime.db.pool.fetch("SELECT result FROM portal_logins WHERE user_id = $1", user_id)
    assert sorted(r["result"] for r in rows) == ["bad_password", "bad_password", "ok"]
    for i in range(4):
        await portal.login(f"nobody{i}@shop.test", "Wrong#Guess1", None, None)
    start = portal.clock()
    portal.clock = lambda: start + timedelta(days=portal.config.history_days + 1)
    await portal.login("owner@shop.test", "Wrong#Guess1", None, None)  # any write prunes the old rows
    left = await front.runtime.db.pool.fetch("SELECT email, result FROM portal_logins")
    assert [(r["email"], r["result"]) for r in left] == [("owner@shop.test", "bad_password")]


# -- API keys and public keys ------------------------------------------------------------------------


async def test_an_api_key_made_in_the_portal_opens_the_api_until_deleted_with_the_password(front: Front) -> None:
    await user(front, "admin@shop.test", role="admin")
    assert await log_in(front.http, "admin@shop.test") == 303
    made = await post(front.http, "/portal/api-keys", {"name": "Shop backend"})
    page = await made.text()
    assert made.status == 200
    login = re.search(r'id="new-key-login">(ak_[A-Za-z0-9]{20})<', page)
    password = re.search(r'id="new-key-password">([^<]+)<', page)
    assert login is not None and password is not None
    status, doc = await front.call("GET", "/orders/", headers=basic(login[1], password[1]))
    assert status == 200, doc
    listed = await (await front.http.get("/portal/api-keys")).text()
    assert password[1] not in listed and f"{password[1][:3]}…{password[1][-3:]}" in listed  # masked from now on
    key_id = await front.runtime.db.pool.fetchval("SELECT id FROM project_api_keys WHERE login = $1", login[1])
    path = f"/portal/api-keys/{key_id}/delete"
    refused = await post(front.http, path, {"password": "Wrong#Pass1"})
    assert refused.status == 422
    assert (await front.call("GET", "/orders/", headers=basic(login[1], password[1])))[0] == 200
    deleted = await post(front.http, path, {"password": PASSWORD})
    assert deleted.status == 303 and deleted.headers["Location"] == "/portal/api-keys"
    assert (await front.call("GET", "/orders/", headers=basic(login[1], password[1])))[0] == 401
    assert (await front.call("GET", "/orders/"))[0] == 200  # the project's own login is untouched


async def test_a_replaced_public_key_stops_naming_the_project_and_the_new_one_does(front: Front) -> None:
    await user(front, "owner@shop.test")
    assert await log_in(front.http, "owner@shop.test") == 303
    old_test, old_live = await keys_of(front, "project")
    assert old_test in await (await front.http.get("/portal/api-keys")).text()
    rotated = await post(
        front.http, "/portal/api-keys/public", {"mode": "test", "password": PASSWORD}, page="/portal/api-keys"
    )
    assert rotated.status == 200
    new_test, live = await keys_of(front, "project")
    assert new_test != old_test and new_test.startswith("pk_test_") and live == old_live
    assert new_test in await rotated.text()
    gone = await front.call("POST", "/public-api/payment-invoices", {**PUBLIC_REQUEST, "public_key": old_test})
    assert gone[0] == 401
    made = await front.call("POST", "/public-api/payment-invoices", {**PUBLIC_REQUEST, "public_key": new_test})
    assert made[0] == 201, made


async def test_an_operator_is_not_shown_api_keys_and_a_forged_post_is_refused(front: Front) -> None:
    await user(front, "clerk@shop.test", role="operator")
    assert await log_in(front.http, "clerk@shop.test") == 303
    home = await (await front.http.get("/portal/")).text()
    assert "/portal/api-keys" not in home and "/portal/projects" in home
    assert (await front.http.get("/portal/api-keys")).status == 403
    for path, form in (
        ("/portal/api-keys", {"name": "mine"}),
        ("/portal/api-keys/public", {"mode": "live", "password": PASSWORD}),
        ("/portal/api-keys/1/delete", {"password": PASSWORD}),
    ):
        answer = await post(front.http, path, form, page="/portal/security")
        assert answer.status == 403, path
    assert await front.runtime.db.pool.fetchval("SELECT count(*) FROM project_api_keys") == 0


# -- projects --------------------------------------------------------------------------------------


async def test_a_user_of_two_projects_switches_between_them_with_each_ones_role(front: Front) -> None:
    await user(front, "ann@shop.test", role="owner")
    await front.runtime.portal.add_user("ann@shop.test", "other", "viewer")
    assert await log_in(front.http, "ann@shop.test") == 303
    page = await (await front.http.get("/portal/projects")).text()
    assert "Switch to other" in page and 'id="role">owner<' in page
    other = await front.runtime.projects.by_login("other")
    assert other is not None
    before = front.http.session.cookie_jar.filter_cookies(front.http.make_url("/portal/"))["isoswitch_portal"].value
    switched = await post(front.http, "/portal/projects", {"project_id": str(other.id)})
    assert switched.status == 303
    after = front.http.session.cookie_jar.filter_cookies(front.http.make_url("/portal/"))["isoswitch_portal"].value
    assert after != before and await front.runtime.portal.session(before) is None  # a new token for a new role
    home = await (await front.http.get("/portal/")).text()
    assert 'id="project">other<' in home and 'id="role">viewer<' in home
    assert (await front.http.get("/portal/api-keys")).status == 403  # a viewer there
    nowhere = await post(front.http, "/portal/projects", {"project_id": "999999"})
    assert nowhere.status == 403


async def test_a_deleted_api_key_is_refused_by_another_processs_cache_within_its_refresh(front: Front) -> None:
    pool = front.runtime.db.pool
    project = await front.runtime.projects.by_login("project")
    assert project is not None
    here = front.runtime.projects
    there = Projects(pool, refresh=0.2)  # another process's cache of verified credentials
    made = await ApiKeys(pool, here).generate(project.id, "CI", "owner@shop.test")
    login, password = made.key.login, made.password
    for projects in (here, there):
        found = await projects.authenticate(login, password)
        assert found is not None and found.id == project.id
        assert await projects.authenticate(login, password + "x") is None
    assert await ApiKeys(pool, here).delete(project.id, made.key.id)
    assert await here.authenticate(login, password) is None  # this process: at once
    assert await wait_for(lambda: _refused(there, login, password), what="the other cache refusing the key")
    assert not await ApiKeys(pool, here).delete(project.id, made.key.id)  # gone already


async def _refused(projects: Projects, login: str, password: str) -> bool:
    return await projects.authenticate(login, password) is None


@pytest.mark.parametrize(
    "bad", [{"recovery_ttl": 0}, {"email_code_ttl": -1.0}, {"history_keep": 0}, {"history_days": 0}]
)
def test_the_account_options_of_the_portal_section_refuse_what_cannot_work(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        PortalConfig(**bad)  # type: ignore[arg-type]
