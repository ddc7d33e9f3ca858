"""The portal's notifications area (issue 13 item 8; seeds/004): the notification centre (unread and read,
mark read) and each user's preferences (which events, by e-mail and/or Telegram).

Everything here is the signed-in user's own, in the session's project: any role may open it (``viewer``), and
what it reads or changes is always ``session.user`` x ``session.project`` -- a forged id of another user's
notification changes nothing. Core logic: :mod:`switch.notify` (``runtime.notify``).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from aiohttp import web

from http_front.keys import RUNTIME
from http_front.portal.guard import SESSION, render, see_other
from switch.notify import EVENTS, Notifier, NotifyError, Pref

__all__ = ["NAV", "ROUTES"]

_MAX_IDS = 200


@runtime_checkable
class _NotifyRuntime(Protocol):
    @property
    def notify(self) -> Notifier: ...


def _notifier(request: web.Request) -> Notifier:
    runtime = request.app[RUNTIME]
    if not isinstance(runtime, _NotifyRuntime):
        raise web.HTTPNotFound()
    return runtime.notify


async def centre(request: web.Request) -> web.StreamResponse:
    session = request[SESSION]
    only_unread = request.query.get("show") == "unread"
    notifier = _notifier(request)
    items = await notifier.centre(session.user.id, session.project.id, unread=only_unread)
    unread = await notifier.unread(session.user.id, session.project.id)
    return render(request, "notify_centre.html", items=items, unread=unread, only_unread=only_unread)


async def mark_read(request: web.Request) -> web.StreamResponse:
    session = request[SESSION]
    form = await request.post()
    ids: list[int] | None = None
    if form.get("all") != "1":
        raw = [v for v in form.getall("id", []) if isinstance(v, str)][:_MAX_IDS]
        ids = [int(v) for v in raw if v.isascii() and v.isdigit() and len(v) < 19]
    if ids != []:
        await _notifier(request).mark_read(session.user.id, session.project.id, ids)
    back = "/portal/notifications?show=unread" if form.get("back") == "unread" else "/portal/notifications"
    return see_other(back)


async def _prefs_page(
    request: web.Request,
    *,
    status: int = 200,
    error: str | None = None,
    saved: bool = False,
    prefs: list[Pref] | None = None,
    chat: str | None = None,
) -> web.Response:
    session = request[SESSION]
    notifier = _notifier(request)
    if prefs is None:
        prefs = await notifier.prefs(session.user.id, session.project.id)
        chat = await notifier.telegram_chat(session.user.id)
    labels = dict(EVENTS)
    rows = [(p, labels[p.event]) for p in prefs]
    return render(
        request,
        "notify_prefs.html",
        status,
        rows=rows,
        chat=chat or "",
        telegram_ready=notifier.telegram_ready,
        error=error,
        saved=saved,
    )


async def prefs_page(request: web.Request) -> web.StreamResponse:
    return await _prefs_page(request, saved=request.query.get("saved") == "1")


async def prefs_save(request: web.Request) -> web.StreamResponse:
    session = request[SESSION]
    form = await request.post()

    def box(name: str) -> bool:
        return form.get(name) == "on"

    prefs = []
    for event, _ in EVENTS:
        email, telegram = box(f"email_{event}"), box(f"telegram_{event}")
        # A channel ticked means "notify me" even if the main box was not.
        prefs.append(Pref(event, box(f"on_{event}") or email or telegram, email, telegram))
    chat = form.get("telegram_chat", "")
    chat = chat[:40] if isinstance(chat, str) else ""
    try:
        await _notifier(request).save(session.user.id, session.project.id, prefs, chat)
    except NotifyError as e:
        return await _prefs_page(request, status=422, error=str(e).capitalize() + ".", prefs=prefs, chat=chat)
    return see_other("/portal/notifications/settings?saved=1")


#: (method, path, handler, least role): every user's own notifications.
ROUTES = (
    ("GET", "/portal/notifications", centre, "viewer"),
    ("POST", "/portal/notifications/read", mark_read, "viewer"),
    ("GET", "/portal/notifications/settings", prefs_page, "viewer"),
    ("POST", "/portal/notifications/settings", prefs_save, "viewer"),
)

NAV = (("Notifications", "/portal/notifications", "viewer"),)
