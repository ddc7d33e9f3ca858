"""The merchant portal's accounts below the browser: the seed's password policy, `isoswitch user add`, the session
cookie's attributes (Secure under TLS), the strict headers, the login rate per address, and the session setting.
Real front, real PostgreSQL (tests/test_http_e2e.py's rig); the CLI as a process of its own.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta

import orjson
import pyotp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from test_cli import _env, _isoswitch
from test_http_e2e import Front
from test_http_e2e import front as front  # fixture

from http_front import FrontConfig, create_app
from switch.portal import PasswordRejected, PortalError, check_password
from switch.store import InvalidSettings

pytestmark = pytest.mark.timeout(90)

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("Sh#1a", "at least 8"),
        ("sunny#day42", "uppercase"),
        ("SUNNY#DAY42", "lowercase"),
        ("Sunny#Dayxx", "digit"),
        ("SunnyDay42x", "special"),
        ("My#PROJECT42", "store's name"),  # the project's name in another letter case
        ("Ann.Lee#2024", "login"),  # a user's login: the e-mail's local part
    ],
)
def test_the_seeds_password_policy_names_the_rule_a_password_breaks(password: str, rule: str) -> None:
    with pytest.raises(PasswordRejected) as e:
        check_password(password, forbidden=["project", "ann.lee@shop.test"])
    assert rule in str(e.value) and password not in str(e.value)


def test_user_add_prints_json_with_a_one_time_password_once(fresh_dsn: str) -> None:  # noqa: F811
    env = _env(DATABASE_URL=fresh_dsn)
    for name in ("shop", "shop2"):
        assert _isoswitch("project", "add", name, env=env).returncode == 0
    out = _isoswitch("user", "add", "Owner@Shop.test", "--project", "shop", "--role", "owner", env=env)
    assert out.returncode == 0, out.stderr
    doc = orjson.loads(out.stdout)
    assert (doc["email"], doc["project"], doc["role"]) == ("Owner@Shop.test", "shop", "owner")
    check_password(doc["password"])  # the one-time password meets the policy itself
    # The same address in another project: a role more, the password it has (none printed).
    again = _isoswitch("user", "add", "owner@shop.test", "--project", "shop2", "--role", "viewer", env=env)
    assert again.returncode == 0 and orjson.loads(again.stdout)["password"] is None
    twice = _isoswitch("user", "add", "owner@shop.test", "--project", "shop", "--role", "admin", env=env)
    assert twice.returncode == 1 and "already has a role" in twice.stderr and "Traceback" not in twice.stderr
    missing = _isoswitch("user", "add", "x@shop.test", "--project", "nope", "--role", "owner", env=env)
    assert missing.returncode == 1 and "no project 'nope'" in missing.stderr
    listed = _isoswitch("user", "list", "--project", "shop", env=env)
    assert [orjson.loads(x) for x in listed.stdout.splitlines()] == [
        {"email": "Owner@Shop.test", "role": "owner", "totp": False}
    ]
    assert doc["password"] not in listed.stdout


@pytest.fixture
async def tls_client(front: Front) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """The same runtime behind a front whose public URL is https (a TLS proxy in front of it)."""
    server = TestServer(create_app(front.runtime, FrontConfig(port=0, public_url="https://portal.example")))
    async with TestClient(server) as client:
        yield client


async def _login(client: TestClient[web.Request, web.Application], email: str, password: str) -> web.StreamResponse:
    page = await client.get("/portal/login")
    match = _CSRF.search(await page.text())
    assert match is not None
    return await client.post(
        "/portal/login",
        data={"csrf": match[1], "email": email, "password": password},
        allow_redirects=False,
    )


async def test_the_session_cookie_is_httponly_samesite_and_secure_behind_https(
    front: Front, tls_client: TestClient[web.Request, web.Application]
) -> None:
    _, _, password = await front.runtime.portal.add_user("owner@shop.test", "project", "owner")
    assert password is not None
    plain = await _login(front.http, "owner@shop.test", password)
    assert plain.status == 303 and plain.headers["Location"] == "/portal/password"
    cookie = next(c for c in plain.headers.getall("Set-Cookie") if c.startswith("isoswitch_portal="))
    attrs = {a.strip().split("=")[0].lower() for a in cookie.split(";")}
    assert {"httponly", "path", "samesite"} <= attrs and "secure" not in attrs, cookie
    assert "SameSite=Strict" in cookie and "Path=/portal/" in cookie
    # Behind https every cookie of the portal is Secure (this plain-HTTP client would not even send it back, so
    # the login form's own cookie is what is looked at: set_cookie makes both).
    answer = await tls_client.get("/portal/login")
    cookie = next(c for c in answer.headers.getall("Set-Cookie") if c.startswith("isoswitch_portal_csrf="))
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie


async def test_every_portal_answer_carries_the_strict_headers(front: Front) -> None:
    for path in ("/portal/login", "/portal/static/portal.css", "/portal/"):
        answer = await front.http.get(path, allow_redirects=False)
        csp = answer.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, path
        assert answer.headers["X-Frame-Options"] == "DENY" and answer.headers["Referrer-Policy"] == "no-referrer"
    page = await (await front.http.get("/portal/login")).text()
    assert "http://" not in page and "https://" not in page  # nothing from another host (or this one, by name)
    assert (await front.http.get("/portal/", allow_redirects=False)).headers["Location"] == "/portal/login"
    missing = await front.http.get("/portal/no/such/page")
    assert missing.status == 404 and missing.content_type == "text/html" and "no such page" in await missing.text()


async def test_an_address_past_its_login_attempts_gets_429_before_any_password_is_checked(front: Front) -> None:
    burst = front.runtime.portal.config.login_burst
    statuses = [(await _login(front.http, f"nobody{i}@shop.test", "Wrong#Guess1")).status for i in range(burst + 1)]
    assert statuses == [401] * burst + [429]
    last = await _login(front.http, "nobody@shop.test", "Wrong#Guess1")
    assert last.status == 429 and int(last.headers["Retry-After"]) >= 1
    rows = await front.runtime.db.pool.fetchval("SELECT count(*) FROM portal_logins")
    assert rows == burst  # the refused ones never reached the password check


async def test_the_portal_session_duration_is_a_validated_project_setting(front: Front) -> None:
    project = await front.runtime.projects.by_login("project")
    assert project is not None and project.settings.portal_session_minutes == 30
    for bad in (0, 1441, True):
        with pytest.raises(InvalidSettings):
            await front.runtime.projects.update_settings(project.id, portal_session_minutes=bad)
    changed = await front.runtime.projects.update_settings(project.id, portal_session_minutes=90)
    assert changed.settings.portal_session_minutes == 90


async def test_a_totp_code_and_a_recovery_code_each_work_once(front: Front) -> None:
    portal = front.runtime.portal
    _, _, one_time = await portal.add_user("owner@shop.test", "project", "owner")
    assert one_time is not None
    first = await portal.login("owner@shop.test", one_time, "127.0.0.1", "test")
    assert first.session is not None
    secret, uri = await portal.totp_begin(first.session)
    assert uri.startswith("otpauth://totp/") and "issuer=isoswitch" in uri
    now = portal.clock()
    code = pyotp.TOTP(secret).at(now)
    codes = await portal.totp_confirm(first.session, code)
    assert len(codes) == 10 and len(set(codes)) == 10
    pending = await portal.login("owner@shop.test", one_time, "127.0.0.1", "test")
    assert pending.outcome == "mfa" and pending.token is not None and pending.session is None
    assert await portal.session(pending.token) is None  # half signed in opens no page
    assert (await portal.second_factor(pending.token, code, None, None)).outcome == "bad"  # used at enrolment
    nxt = pyotp.TOTP(secret).at(now + timedelta(seconds=30))
    assert (await portal.second_factor(pending.token, nxt, None, None)).outcome == "ok"
    for expected in ("ok", "bad"):
        again = await portal.login("owner@shop.test", one_time, None, None)
        assert again.token is not None
        assert (await portal.second_factor(again.token, codes[3], None, None)).outcome == expected


async def test_a_lock_lifts_after_its_time_and_a_password_change_ends_the_other_sessions(front: Front) -> None:
    portal = front.runtime.portal
    _, _, one_time = await portal.add_user("owner@shop.test", "project", "owner")
    assert one_time is not None
    for _ in range(portal.config.max_failures):
        assert (await portal.login("owner@shop.test", "Wrong#Guess1", None, None)).outcome == "bad"
    assert (await portal.login("owner@shop.test", one_time, None, None)).outcome == "locked"
    start = portal.clock()
    portal.clock = lambda: start + timedelta(seconds=portal.config.lockout + 1)
    here = await portal.login("owner@shop.test", one_time, None, None)
    there = await portal.login("owner@shop.test", one_time, None, None)
    assert here.session is not None and here.session.user.must_change and there.token is not None
    token = await portal.change_password(here.session, one_time, "Sunny#Day42x", None, None)
    assert await portal.session(there.token) is None  # the other browser is signed out
    fresh = await portal.session(token)
    assert fresh is not None and not fresh.user.must_change


async def test_a_locked_account_refuses_the_password_behind_a_session_and_totp_is_not_re_enrolled_while_on(
    front: Front,
) -> None:
    portal = front.runtime.portal
    _, _, one_time = await portal.add_user("owner@shop.test", "project", "owner")
    assert one_time is not None
    signed = await portal.login("owner@shop.test", one_time, None, None)
    assert signed.session is not None
    # A stolen session guessing the password through the pages that ask for it: locked like the login.
    for _ in range(portal.config.max_failures):
        assert not await portal.confirm_password(signed.session, "Wrong#Guess1")
    assert await portal.locked(signed.session.user.id)
    assert not await portal.confirm_password(signed.session, one_time)  # the right one too, while locked
    with pytest.raises(PortalError):
        await portal.change_password(signed.session, one_time, "Sunny#Day42x", None, None)
    start = portal.clock()
    portal.clock = lambda: start + timedelta(seconds=portal.config.lockout + 1)
    secret, _ = await portal.totp_begin(signed.session)
    await portal.totp_confirm(signed.session, pyotp.TOTP(secret).at(portal.clock()))
    pending = await portal.login("owner@shop.test", one_time, None, None)
    assert pending.token is not None
    code = pyotp.TOTP(secret).at(portal.clock() + timedelta(seconds=30))
    full = await portal.second_factor(pending.token, code, None, None)
    assert full.session is not None and full.session.user.totp_enabled
    # Enrolling again would switch the factor off until confirmed: refused while it is on.
    with pytest.raises(PortalError):
        await portal.totp_begin(full.session)
