"""The portal's account area (issue 13 items 2, 3, 9): password recovery by an e-mailed link, the e-mail code as a
second factor, the project switcher, and the API keys page (seeds/000 "API keys").

Recovery answers the same page whether the address has an account or not, and spends the login rate of the
address that asks (a form in a loop neither finds out who has an account nor fills a mailbox). The link's token is
in its path: the access log keeps 6 of its characters (:mod:`http_front.logs`). API keys and the public keys are
an admin's (both shown, generated, deleted and rotated only after the portal password is confirmed); the guard
refuses a lower role with 403 whatever the form says, and the navigation does not show them the page.
"""

from __future__ import annotations

import asyncio
import math
import time

from aiohttp import hdrs, web

from http_front.keys import CONFIG
from http_front.portal.guard import (
    COOKIE,
    SESSION,
    PortalRuntime,
    login_buckets,
    portal_of,
    pre_csrf,
    render,
    see_other,
    set_cookie,
)
from http_front.portal.views import security
from http_front.urls import public_base
from switch.portal import PasswordRejected, PortalError
from switch.portal.account import RecoveryRefused

__all__ = ["NAV", "ROUTES"]

_SENT = "If this address has an account, a link to choose a new password is on its way. It works once."
_ANSWER_FLOOR = 0.25  # seconds: the least time a recovery request is answered in
_BAD_LINK = "This link is unknown, used or expired. Ask for a new one."


def _runtime(request: web.Request) -> PortalRuntime:
    runtime = portal_of(request)
    assert runtime is not None  # the guard answered 404 otherwise
    return runtime


def _client(request: web.Request) -> tuple[str | None, str | None]:
    return request.remote, request.headers.get(hdrs.USER_AGENT)


async def _text(request: web.Request, name: str, limit: int = 256) -> str:
    value = (await request.post()).get(name, "")
    return value[:limit] if isinstance(value, str) else ""


def _anonymous_page(request: web.Request, template: str, status: int = 200, **context: object) -> web.Response:
    """A page with an anonymous form: its CSRF value is the pre-session cookie's (made when missing)."""
    new: dict[str, str] = {}
    csrf = pre_csrf(request, new)
    response = render(request, template, status, login_csrf=csrf, **context)
    for name, value in new.items():
        set_cookie(request, response, name, value)
    return response


def _link_base(request: web.Request) -> str:
    """Where the recovery link points: ``[http] public_url``, else the address the request came in on -- never its
    ``Host`` header, which the requester writes (a forged one would mail the victim a link to the forger's host)."""
    configured = request.app[CONFIG].public_url
    if configured:
        return configured.rstrip("/")
    sockname = request.transport.get_extra_info("sockname") if request.transport is not None else None
    if not isinstance(sockname, tuple):  # a Unix socket: a proxy in front, whose public_url should be set
        return public_base(request)
    host, port = sockname[0], sockname[1]
    return f"{request.scheme}://{f'[{host}]' if ':' in host else host}:{port}"


def _too_many(request: web.Request) -> web.Response | None:
    wait = login_buckets(request).take(request.remote or "?")
    if wait <= 0:
        return None
    response = render(request, "error.html", 429, title="Too many attempts", message="Wait a minute and try again.")
    response.headers[hdrs.RETRY_AFTER] = str(max(1, math.ceil(wait)))
    return response


# -- recovery ------------------------------------------------------------------------------------


async def recover_form(request: web.Request) -> web.StreamResponse:
    return _anonymous_page(request, "account_recover.html", sent=False)


async def recover_submit(request: web.Request) -> web.StreamResponse:
    refused = _too_many(request)
    if refused is not None:
        return refused
    started = time.monotonic()
    email = await _text(request, "email", 254)
    await _runtime(request).portal.account.request_recovery(email, _link_base(request))
    # A known address costs a mail's writing, an unknown one a single read: the answer waits out a floor so that
    # its time does not tell them apart either.
    await asyncio.sleep(max(0.0, _ANSWER_FLOOR - (time.monotonic() - started)))
    return _anonymous_page(request, "account_recover.html", sent=True, message=_SENT)


async def reset_form(request: web.Request) -> web.StreamResponse:
    if not await _runtime(request).portal.account.recovery_live(request.match_info["token"]):
        return render(request, "error.html", 410, title="Link not valid", message=_BAD_LINK)
    return _anonymous_page(request, "account_reset.html", error=None, token=request.match_info["token"])


async def reset_submit(request: web.Request) -> web.StreamResponse:
    refused = _too_many(request)
    if refused is not None:
        return refused
    token = request.match_info["token"]
    new, again = await _text(request, "new_password"), await _text(request, "confirm_password")
    if new != again:
        error = "The new password and its confirmation differ."
        return _anonymous_page(request, "account_reset.html", 422, error=error, token=token)
    try:
        await _runtime(request).portal.account.recover(token, new, *_client(request))
    except RecoveryRefused:
        return render(request, "error.html", 410, title="Link not valid", message=_BAD_LINK)
    except PasswordRejected as e:
        return _anonymous_page(request, "account_reset.html", 422, error=str(e).capitalize() + ".", token=token)
    return _anonymous_page(request, "account_recovered.html")


# -- the e-mail code -----------------------------------------------------------------------------


async def code_resend(request: web.Request) -> web.StreamResponse:
    """Another login code by mail (none within 30 s of the last): back to the code form either way."""
    session = request[SESSION]
    if session.user.email_code and not session.user.totp_enabled:
        await _runtime(request).portal.account.send_code(session.user.id, session.user.email, "login", force=False)
    return see_other("/portal/login/code")


async def _security_error(request: web.Request, message: str) -> web.StreamResponse:
    return await security(request, error=message, status=422)  # the security page is the foundation's


async def email_start(request: web.Request) -> web.StreamResponse:
    portal = _runtime(request).portal
    session = request[SESSION]
    if not await portal.confirm_password(session, await _text(request, "password")):
        return await _security_error(request, "The password is wrong.")
    try:
        await portal.account.email_code_begin(session)
    except PortalError as e:
        return await _security_error(request, str(e).capitalize() + ".")
    return render(request, "account_email_code.html", error=None)


async def email_confirm(request: web.Request) -> web.StreamResponse:
    code = await _text(request, "code", 32)
    if not await _runtime(request).portal.account.email_code_confirm(request[SESSION], code):
        error = "The code is wrong, used or expired. Start again to get a new one."
        return render(request, "account_email_code.html", 422, error=error)
    return see_other("/portal/security")


async def email_disable(request: web.Request) -> web.StreamResponse:
    portal = _runtime(request).portal
    session = request[SESSION]
    if not await portal.confirm_password(session, await _text(request, "password")):
        return await _security_error(request, "The password is wrong.")
    await portal.account.email_code_disable(session)
    return see_other("/portal/security")


# -- projects ------------------------------------------------------------------------------------


async def projects_page(request: web.Request) -> web.StreamResponse:
    session = request[SESSION]
    memberships = await _runtime(request).portal.account.memberships(session.user.id)
    return render(request, "account_projects.html", memberships=memberships)


async def project_switch(request: web.Request) -> web.StreamResponse:
    raw = await _text(request, "project_id", 20)
    session = request[SESSION]
    try:
        if not (raw.isascii() and raw.isdigit()):
            raise LookupError(raw)
        token = await _runtime(request).portal.account.switch_project(session, int(raw), *_client(request))
    except LookupError:
        return render(request, "error.html", 403, title="Not allowed", message="You have no role in that project.")
    response = see_other("/portal/")
    set_cookie(request, response, COOKIE, token)
    return response


# -- API keys ------------------------------------------------------------------------------------


async def keys_page(
    request: web.Request, *, status: int = 200, error: str | None = None, **shown: object
) -> web.StreamResponse:
    project = request[SESSION].project
    portal = _runtime(request).portal
    keys = await portal.api_keys.list(project.id)
    public = await portal.api_keys.public_keys(project.id)
    context = {"keys": keys, "public": public, "error": error, "new_key": None, "rotated": None, **shown}
    return render(request, "account_keys.html", status, **context)


async def keys_list(request: web.Request) -> web.StreamResponse:
    return await keys_page(request)


async def key_generate(request: web.Request) -> web.StreamResponse:
    session = request[SESSION]
    try:
        made = await _runtime(request).portal.api_keys.generate(
            session.project.id, await _text(request, "name", 64), session.user.email
        )
    except ValueError as e:
        return await keys_page(request, status=422, error=str(e).capitalize() + ".")
    return await keys_page(request, new_key=made)


def _key_id(raw: str) -> int | None:
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else None


async def key_delete_form(request: web.Request) -> web.StreamResponse:
    key_id = _key_id(request.match_info["key_id"])
    keys = await _runtime(request).portal.api_keys.list(request[SESSION].project.id)
    key = next((k for k in keys if k.id == key_id), None)
    if key is None:
        return render(request, "error.html", 404, title="Not found", message="No such API key in this project.")
    return render(request, "account_key_delete.html", key=key, error=None)


async def key_delete(request: web.Request) -> web.StreamResponse:
    portal = _runtime(request).portal
    session = request[SESSION]
    key_id = _key_id(request.match_info["key_id"])
    keys = await portal.api_keys.list(session.project.id)
    key = next((k for k in keys if k.id == key_id), None)
    if key is None:
        return render(request, "error.html", 404, title="Not found", message="No such API key in this project.")
    if not await portal.confirm_password(session, await _text(request, "password")):
        return render(request, "account_key_delete.html", 422, key=key, error="The password is wrong.")
    await portal.api_keys.delete(session.project.id, key.id)
    return see_other("/portal/api-keys")


async def public_key_rotate(request: web.Request) -> web.StreamResponse:
    portal = _runtime(request).portal
    session = request[SESSION]
    mode = await _text(request, "mode", 8)
    if mode not in ("test", "live"):
        return await keys_page(request, status=422, error="Choose the test or the live key.")
    if not await portal.confirm_password(session, await _text(request, "password")):
        return await keys_page(request, status=422, error="The password is wrong.")
    await portal.api_keys.rotate_public_key(session.project.id, test_mode=mode == "test")
    return await keys_page(request, rotated=mode)


_TOKEN = "{token:[A-Za-z0-9_-]{43}}"
_KEY = "{key_id:[0-9]{1,18}}"

#: (method, path, handler, least role): None anyone, "mfa" between the password and the code.
ROUTES = (
    ("GET", "/portal/recover", recover_form, None),
    ("POST", "/portal/recover", recover_submit, None),
    ("GET", f"/portal/recover/{_TOKEN}", reset_form, None),
    ("POST", f"/portal/recover/{_TOKEN}", reset_submit, None),
    ("POST", "/portal/login/code/resend", code_resend, "mfa"),
    ("POST", "/portal/security/email", email_start, "viewer"),
    ("POST", "/portal/security/email/confirm", email_confirm, "viewer"),
    ("POST", "/portal/security/email/disable", email_disable, "viewer"),
    ("GET", "/portal/projects", projects_page, "viewer"),
    ("POST", "/portal/projects", project_switch, "viewer"),
    ("GET", "/portal/api-keys", keys_list, "admin"),
    ("POST", "/portal/api-keys", key_generate, "admin"),
    ("GET", f"/portal/api-keys/{_KEY}/delete", key_delete_form, "admin"),
    ("POST", f"/portal/api-keys/{_KEY}/delete", key_delete, "admin"),
    ("POST", "/portal/api-keys/public", public_key_rotate, "admin"),
)

#: (label, href, least role): this area's entries in the top navigation.
NAV = (
    ("API keys", "/portal/api-keys", "admin"),
    ("Projects", "/portal/projects", "viewer"),
)
