"""The portal's pages: login (password, then the TOTP code when enrolled), logout, change of password, security
(TOTP enrolment with a QR code drawn here as SVG, recovery codes, login history) and the team. The payments are
:mod:`http_front.portal.payments`'s.

:data:`ROUTES` is the role table: ``(method, path, handler, least role)``; :mod:`http_front.portal.guard` enforces
it before any handler runs.
"""

from __future__ import annotations

import math
from typing import Any

import segno
from aiohttp import hdrs, web
from markupsafe import Markup

from http_front.portal.guard import (
    COOKIE,
    PRE_COOKIE,
    SESSION,
    PortalRuntime,
    clear_cookie,
    login_buckets,
    portal_of,
    pre_csrf,
    render,
    see_other,
    set_cookie,
)
from switch.portal import ROLES, PasswordRejected, PortalError, TeamRefused, role_allows

__all__ = ["NAV", "ROUTES"]

_PAGE_SIZE = 20
_LOCKED = "This account is locked after too many failed attempts. Try again later."
_BAD_LOGIN = "Wrong e-mail or password."


def _runtime(request: web.Request) -> PortalRuntime:
    runtime = portal_of(request)
    assert runtime is not None  # the guard answered 404 otherwise
    return runtime


def _client(request: web.Request) -> tuple[str | None, str | None]:
    return request.remote, request.headers.get(hdrs.USER_AGENT)


def _too_many(request: web.Request) -> web.Response | None:
    """429 once this address spent its login attempts (before any password is checked)."""
    wait = login_buckets(request).take(request.remote or "?")
    if wait <= 0:
        return None
    response = render(request, "error.html", 429, title="Too many attempts", message="Wait a minute and try again.")
    response.headers[hdrs.RETRY_AFTER] = str(max(1, math.ceil(wait)))
    return response


async def _text(request: web.Request, name: str, limit: int = 256) -> str:
    value = (await request.post()).get(name, "")
    return value[:limit] if isinstance(value, str) else ""


# -- login ---------------------------------------------------------------------------------------


def _login_page(request: web.Request, status: int = 200, *, email: str = "", error: str | None = None) -> web.Response:
    new: dict[str, str] = {}
    csrf = pre_csrf(request, new)
    response = render(request, "login.html", status, login_csrf=csrf, email=email, error=error)
    for name, value in new.items():
        set_cookie(request, response, name, value)
    return response


async def login_form(request: web.Request) -> web.StreamResponse:
    if await _runtime(request).portal.session(request.cookies.get(COOKIE, "")) is not None:
        return see_other("/portal/")
    return _login_page(request)


async def login_submit(request: web.Request) -> web.StreamResponse:
    refused = _too_many(request)
    if refused is not None:
        return refused
    email, password = await _text(request, "email", 254), await _text(request, "password")
    portal = _runtime(request).portal
    previous = request.cookies.get(COOKIE)
    if previous:  # a new login ends the browser's earlier session (never two live tokens in one browser)
        await portal.logout(previous)
    result = await portal.login(email, password, *_client(request))
    if result.outcome == "locked":
        return _login_page(request, 403, email=email, error=_LOCKED)
    if result.outcome == "bad" or result.token is None:
        return _login_page(request, 401, email=email, error=_BAD_LOGIN)
    must_change = result.session is not None and result.session.user.must_change
    response = see_other("/portal/login/code" if result.outcome == "mfa" else _after_login(must_change))
    set_cookie(request, response, COOKIE, result.token)
    return response


def _after_login(must_change: bool) -> str:
    return "/portal/password" if must_change else "/portal/"


async def code_form(request: web.Request) -> web.StreamResponse:
    return render(request, "code.html", error=None)


async def code_submit(request: web.Request) -> web.StreamResponse:
    refused = _too_many(request)
    if refused is not None:
        return refused
    code = await _text(request, "code", 32)
    result = await _runtime(request).portal.second_factor(request.cookies.get(COOKIE, ""), code, *_client(request))
    if result.outcome == "locked":
        response = _login_page(request, 403, error=_LOCKED)
        clear_cookie(response)
        return response
    if result.outcome != "ok" or result.token is None or result.session is None:
        return render(request, "code.html", 401, error="The code is wrong or was used already.")
    response = see_other(_after_login(result.session.user.must_change))
    set_cookie(request, response, COOKIE, result.token)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    portal = _runtime(request).portal
    await portal.logout(request.cookies.get(COOKIE, ""))
    await portal.record_logout(request[SESSION], *_client(request))
    response = see_other("/portal/login")
    clear_cookie(response)
    clear_cookie(response, PRE_COOKIE)
    return response


# -- password ------------------------------------------------------------------------------------


async def password_form(request: web.Request) -> web.StreamResponse:
    return render(request, "password.html", error=None, done=False)


async def password_submit(request: web.Request) -> web.StreamResponse:
    current = await _text(request, "current_password")
    new, again = await _text(request, "new_password"), await _text(request, "confirm_password")
    if new != again:
        return render(request, "password.html", 422, error="The new password and its confirmation differ.", done=False)
    try:
        token = await _runtime(request).portal.change_password(request[SESSION], current, new, *_client(request))
    except (PortalError, PasswordRejected) as e:
        return render(request, "password.html", 422, error=str(e).capitalize() + ".", done=False)
    response = see_other("/portal/")
    set_cookie(request, response, COOKIE, token)
    return response


# -- security: TOTP and the login history --------------------------------------------------------


async def security(request: web.Request, *, error: str | None = None, status: int = 200) -> web.StreamResponse:
    session = request[SESSION]
    history = await _runtime(request).portal.history(session.user.id)
    return render(request, "security.html", status, history=history, error=error)


async def totp_start(request: web.Request) -> web.StreamResponse:
    portal = _runtime(request).portal
    session = request[SESSION]
    if not await portal.confirm_password(session, await _text(request, "password")):
        return await security(request, error="The password is wrong.", status=422)
    try:
        secret, uri = await portal.totp_begin(session)
    except PortalError as e:
        return await security(request, error=str(e).capitalize() + ".", status=422)
    # Drawn here, inline: no image host, no script; segno writes plain SVG paths (no style attribute the CSP
    # would block).
    qr = segno.make(uri, error="m").svg_inline(scale=5, title="QR code of the authenticator key")
    spaced = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
    return render(request, "totp.html", qr=Markup(qr), secret=spaced, error=None)


async def totp_confirm(request: web.Request) -> web.StreamResponse:
    try:
        codes = await _runtime(request).portal.totp_confirm(request[SESSION], await _text(request, "code", 32))
    except PortalError as e:
        return await security(request, error=str(e).capitalize() + ". Start again.", status=422)
    return render(request, "recovery.html", codes=codes)


async def totp_disable(request: web.Request) -> web.StreamResponse:
    portal = _runtime(request).portal
    session = request[SESSION]
    if not await portal.confirm_password(session, await _text(request, "password")):
        return await security(request, error="The password is wrong.", status=422)
    await portal.totp_disable(session)
    return see_other("/portal/security")


async def security_page(request: web.Request) -> web.StreamResponse:
    return await security(request)


# -- team -----------------------------------------------------------------------------------------


async def team(
    request: web.Request, *, status: int = 200, error: str | None = None, added: dict[str, Any] | None = None
) -> web.StreamResponse:
    session = request[SESSION]
    members = await _runtime(request).portal.team.members(session.project.id)
    for m in members:  # what this user may take away (the server checks again on the POST)
        m["removable"] = m["email"].lower() != session.user.email.lower() and role_allows(session.role, m["role"])
    grantable = [r for r in ROLES if role_allows(session.role, r)]
    return render(request, "team.html", status, members=members, grantable=grantable, error=error, added=added)


async def team_page(request: web.Request) -> web.StreamResponse:
    return await team(request)


async def team_add(request: web.Request) -> web.StreamResponse:
    email, role = await _text(request, "email", 254), await _text(request, "role", 16)
    try:
        user, password = await _runtime(request).portal.team.add(request[SESSION], email, role)
    except TeamRefused as e:
        return await team(request, status=403, error=str(e).capitalize() + ".")
    except PortalError as e:
        return await team(request, status=422, error=str(e).capitalize() + ".")
    return await team(request, added={"email": user.email, "role": role, "password": password})


async def team_remove(request: web.Request) -> web.StreamResponse:
    try:
        await _runtime(request).portal.team.remove(request[SESSION], await _text(request, "email", 254))
    except TeamRefused as e:
        return await team(request, status=403, error=str(e).capitalize() + ".")
    except LookupError as e:
        return await team(request, status=404, error=str(e.args[0]).capitalize() + ".")
    return see_other("/portal/team")


#: (method, path, handler, least role): None anyone, "mfa" between the password and the code.
ROUTES = (
    ("GET", "/portal/login", login_form, None),
    ("POST", "/portal/login", login_submit, None),
    ("GET", "/portal/login/code", code_form, "mfa"),
    ("POST", "/portal/login/code", code_submit, "mfa"),
    ("POST", "/portal/logout", logout, "viewer"),
    ("GET", "/portal/password", password_form, "viewer"),
    ("POST", "/portal/password", password_submit, "viewer"),
    ("GET", "/portal/security", security_page, "viewer"),
    ("POST", "/portal/security/totp", totp_start, "viewer"),
    ("POST", "/portal/security/totp/confirm", totp_confirm, "viewer"),
    ("POST", "/portal/security/totp/disable", totp_disable, "viewer"),
    ("GET", "/portal/team", team_page, "admin"),
    ("POST", "/portal/team", team_add, "admin"),
    ("POST", "/portal/team/remove", team_remove, "admin"),
)

#: (label, href, least role): this area's entries in the top navigation.
NAV = (
    ("Security", "/portal/security", "viewer"),
    ("Password", "/portal/password", "viewer"),
    ("Team", "/portal/team", "admin"),
)
