"""Who may open a portal route: the session cookie, the role table, CSRF, the login rate, and the pages' headers.

:func:`guarded` wraps each handler of the route table with the least role it needs (``None``: anyone, ``"mfa"``: a
browser between its password and its second factor, else one of :data:`switch.portal.ROLES`):

* a ``full`` session is read from the cookie (:data:`COOKIE`: ``HttpOnly``, ``SameSite=Strict``, ``Path=/portal/``,
  ``Secure`` when the request came over TLS or the front's public URL is https); none, or an expired one: 303 to
  the login page (a POST too: nothing is done);
* a role below the route's: 403, a page saying so (the action is not done whatever the form said);
* a user whose password is a one-time one goes to the password page first, whatever the route;
* every POST carries ``csrf``: the session's token, or for the anonymous forms (login) the value of a cookie of
  its own (:data:`PRE_COOKIE`, double submit); missing or wrong: 403 and nothing is done.

Every answer carries the payment page's strict headers (CSP ``default-src 'none'`` with only this origin's style,
no framing, no referrer, ``no-store``).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

import aiohttp_jinja2
import jinja2
from aiohttp import hdrs, web

from http_front.keys import CONFIG, RUNTIME
from http_front.pages.component import secure
from http_front.ratelimit import TokenBuckets
from switch.orders.service import OrdersService
from switch.portal import Portal, Session, role_allows

__all__ = [
    "COOKIE",
    "PRE_COOKIE",
    "SESSION",
    "TEMPLATES",
    "PortalRuntime",
    "clear_cookie",
    "guarded",
    "login_buckets",
    "portal_state",
    "portal_of",
    "render",
    "see_other",
    "set_cookie",
]

TEMPLATES = web.AppKey("portal_templates", jinja2.Environment)
SESSION = web.RequestKey("portal_session", Session)
_BUCKETS = web.AppKey("portal_login_buckets", TokenBuckets)

COOKIE = "isoswitch_portal"
PRE_COOKIE = "isoswitch_portal_csrf"
_PATH = "/portal/"

PortalHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@runtime_checkable
class PortalRuntime(Protocol):
    """A runtime with the portal's accounts (``switch.runtime.Runtime``); the unit tests' fakes have none."""

    @property
    def portal(self) -> Portal: ...
    @property
    def orders(self) -> OrdersService: ...


def portal_of(request: web.Request) -> PortalRuntime | None:
    runtime = request.app[RUNTIME]
    return runtime if isinstance(runtime, PortalRuntime) else None


async def portal_state(app: web.Application) -> AsyncIterator[None]:
    """The login buckets, made at start (the app's state is frozen once it serves)."""
    runtime = app[RUNTIME]
    if isinstance(runtime, PortalRuntime):
        app[_BUCKETS] = TokenBuckets(runtime.portal.config.login_rate, runtime.portal.config.login_burst)
    yield


def login_buckets(request: web.Request) -> TokenBuckets:
    """Login attempts per client address (each worker its own)."""
    return request.app[_BUCKETS]


# -- answers -------------------------------------------------------------------------------------


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    session = request.get(SESSION)
    ctx = {"session": session, "csrf": session.csrf if session is not None else "", **context}
    response = aiohttp_jinja2.render_template(template, request, ctx, status=status, app_key=TEMPLATES)
    secure(response)
    return response


def see_other(location: str) -> web.Response:
    response = web.Response(status=303, headers={hdrs.LOCATION: location})
    secure(response)
    return response


def _secure_cookie(request: web.Request) -> bool:
    public = request.app[CONFIG].public_url
    return request.secure or (public is not None and public.startswith("https://"))


def set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str) -> None:
    response.set_cookie(
        name, value, path=_PATH, httponly=True, samesite="Strict", secure=_secure_cookie(request) or None
    )


def clear_cookie(response: web.StreamResponse, name: str = COOKIE) -> None:
    response.del_cookie(name, path=_PATH)


def pre_csrf(request: web.Request, response_cookie: dict[str, str]) -> str:
    """The anonymous forms' CSRF value: the browser's pre-session cookie, made when it has none."""
    value = request.cookies.get(PRE_COOKIE, "")
    if not (20 <= len(value) <= 64):
        value = secrets.token_urlsafe(24)
        response_cookie[PRE_COOKIE] = value
    return value


def _csrf_ok(expected: str, posted: object) -> bool:
    if not expected or not isinstance(posted, str):
        return False
    return hmac.compare_digest(expected.encode(), posted.encode("utf-8", "replace"))


def forbidden(request: web.Request, message: str) -> web.Response:
    return render(request, "error.html", 403, title="Not allowed", message=message)


# -- the wrapper ---------------------------------------------------------------------------------


def guarded(handler: PortalHandler, role: str | None) -> PortalHandler:
    """``handler`` behind the checks of the module doc for ``role``."""

    async def guard(request: web.Request) -> web.StreamResponse:
        runtime = portal_of(request)
        if runtime is None:
            raise web.HTTPNotFound()
        if role is None:
            return await _anonymous(request, handler)
        token = request.cookies.get(COOKIE, "")
        stage = "mfa" if role == "mfa" else "full"
        session = await runtime.portal.session(token, stage=stage)
        if session is None:
            response = see_other("/portal/login")
            if token:
                clear_cookie(response)
            return response
        request[SESSION] = session
        if request.method == "POST":
            form = await request.post()
            if not _csrf_ok(session.csrf, form.get("csrf")):
                return forbidden(request, "The form was not sent from this portal's page (CSRF check). Reload it.")
        if stage == "full":
            if session.user.must_change and request.path not in ("/portal/password", "/portal/logout"):
                return see_other("/portal/password")
            if not role_allows(session.role, role):
                return forbidden(request, f"Your role ({session.role}) does not allow this.")
        return await handler(request)

    guard.__name__ = getattr(handler, "__name__", "portal")
    return guard


async def _anonymous(request: web.Request, handler: PortalHandler) -> web.StreamResponse:
    if request.method == "POST":
        form = await request.post()
        if not _csrf_ok(request.cookies.get(PRE_COOKIE, ""), form.get("csrf")):
            return forbidden(request, "The form was not sent from this portal's page (CSRF check). Reload it.")
    return await handler(request)
