"""The portal's settings area (issue 13 item 4; seeds/000 "General settings" and "Webhooks"), owners and admins
only (the guard refuses anyone else with 403, whatever a forged form says; the navigation hides it from them).

* ``/portal/settings``: the seed's general settings, saved through the same parsing and validation as
  ``isoswitch project settings --set`` (:mod:`switch.portal.settings`), an Open Id token generated here, and
  the payment page's logo (uploaded, checked for type and size, stored in PostgreSQL, served by
  ``GET /pay/logo/...`` from this origin: :mod:`http_front.pages`).
* ``/portal/webhooks``: the project's endpoints (add: the signing secret shown once; rotate; remove), the
  delivery log (newest first) and redeliver, through :class:`switch.webhooks.WebhookStore` as the CLI.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol, cast

from aiohttp import web

from http_front.keys import RUNTIME
from http_front.portal.guard import SESSION, render, see_other
from switch.portal import settings as core
from switch.runtime import RuntimeConfig
from switch.store import Database, InvalidSettings, Projects
from switch.webhooks import UrlRefused, WebhookWorker, check_url

__all__ = ["NAV", "ROUTES"]

_LOG_ROWS = 50

log = logging.getLogger("isoswitch.portal")


class _Runtime(Protocol):
    """What the settings area uses of ``switch.runtime.Runtime``."""

    @property
    def projects(self) -> Projects: ...
    @property
    def db(self) -> Database: ...
    @property
    def webhooks(self) -> WebhookWorker | None: ...
    @property
    def config(self) -> RuntimeConfig: ...


def _runtime(request: web.Request) -> _Runtime:
    # The guard answered 404 for a runtime without the portal (the unit tests' fakes): this one is the real one.
    return cast(_Runtime, request.app[RUNTIME])


async def _form(request: web.Request) -> dict[str, str]:
    return {k: v[:1024] for k, v in (await request.post()).items() if isinstance(v, str)}


# -- general settings ------------------------------------------------------------------------------


async def _general(
    request: web.Request,
    *,
    status: int = 200,
    error: str | None = None,
    posted: dict[str, str] | None = None,
    notice: str | None = None,
) -> web.Response:
    rt = _runtime(request)
    session = request[SESSION]
    project = await rt.projects.get(session.project.id)
    assert project is not None  # the session was read with its project
    values: dict[str, Any] = project.settings.to_json()
    if posted is not None:  # a refused form shows what was typed, not the stored values
        for _, group in core.FIELDS:
            for f in group:
                values[f.key] = (posted.get(f.key) == "on") if f.kind == "flag" else posted.get(f.key, "")
    logo = await core.Logos(rt.db.pool).digest(project.id)
    return render(
        request,
        "settings_general.html",
        status,
        groups=core.FIELDS,
        values=values,
        error=error,
        notice=notice or ("Settings saved." if request.query.get("saved") == "1" else None),
        logo=core.logo_path(project.id, logo) if logo else None,
        logo_max_kib=core.LOGO_MAX_BYTES // 1024,
    )


async def settings_page(request: web.Request) -> web.StreamResponse:
    return await _general(request)


async def settings_save(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    session = request[SESSION]
    before = session.project.settings
    try:
        after = (await core.save(_runtime(request).projects, session.project, form)).settings
    except InvalidSettings as e:
        return await _general(request, status=422, error=_labelled(str(e)), posted=form)
    changed = sorted(k for k, v in after.to_json().items() if before.to_json().get(k) != v)
    # Who changed what (the keys, never the values: notification addresses and tokens stay out of the log).
    log.info(
        "project settings changed", extra={"project": session.project.login, "user": session.user.id, "keys": changed}
    )
    return see_other("/portal/settings?saved=1")


async def open_id_generate(request: web.Request) -> web.StreamResponse:
    projects = _runtime(request).projects
    await projects.update_settings(request[SESSION].project.id, open_id_token=core.new_open_id_token())
    return see_other("/portal/settings?saved=1")


async def logo_upload(request: web.Request) -> web.StreamResponse:
    upload = (await request.post()).get("logo")
    data = upload.file.read(core.LOGO_MAX_BYTES + 1) if isinstance(upload, web.FileField) else b""
    try:
        await core.Logos(_runtime(request).db.pool).put(request[SESSION].project.id, data)
    except core.LogoRefused as e:
        return await _general(request, status=422, error=_sentence(str(e)))
    return see_other("/portal/settings?saved=1")


async def logo_remove(request: web.Request) -> web.StreamResponse:
    await core.Logos(_runtime(request).db.pool).remove(request[SESSION].project.id)
    return see_other("/portal/settings?saved=1")


# -- webhooks --------------------------------------------------------------------------------------


def _worker(request: web.Request) -> WebhookWorker:
    worker = _runtime(request).webhooks
    assert worker is not None  # every runtime has one (open_runtime)
    return worker


async def _hooks(
    request: web.Request,
    *,
    status: int = 200,
    error: str | None = None,
    secret: dict[str, str] | None = None,
    notice: str | None = None,
) -> web.Response:
    store = _worker(request).store
    project_id = request[SESSION].project.id
    return render(
        request,
        "settings_webhooks.html",
        status,
        endpoints=await store.endpoints(project_id),
        deliveries=await store.project_deliveries(project_id, limit=_LOG_ROWS),
        error=error,
        secret=secret,
        notice=notice,
    )


async def webhooks_page(request: web.Request) -> web.StreamResponse:
    return await _hooks(request)


async def webhook_add(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    name, url = form.get("name", "").strip()[:64], form.get("url", "").strip()
    if not name:
        return await _hooks(request, status=422, error="Give the endpoint a name.")
    worker = _worker(request)
    cfg = _runtime(request).config.webhooks
    try:
        await check_url(url, allow_private=cfg.allow_private, allow_loopback=cfg.allow_loopback)
        endpoint, secret = await worker.store.add_endpoint(request[SESSION].project.id, name, url)
    except (UrlRefused, ValueError) as e:
        return await _hooks(request, status=422, error=_sentence(str(e)))
    await worker.refresh()  # this project's orders make events from now on, in this process at once
    return await _hooks(request, secret={"name": endpoint["name"], "secret": secret})


async def webhook_remove(request: web.Request) -> web.StreamResponse:
    worker = _worker(request)
    if not await worker.store.remove_endpoint(request[SESSION].project.id, (await _form(request)).get("id", "")):
        return await _hooks(request, status=404, error="The project has no such endpoint.")
    await worker.refresh()
    return see_other("/portal/webhooks")


async def webhook_rotate(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    raw = form.get("id", "")
    endpoint_id = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else 0
    secret = await _worker(request).store.rotate_endpoint_secret(request[SESSION].project.id, endpoint_id)
    if secret is None:
        return await _hooks(request, status=404, error="The project has no such endpoint.")
    return await _hooks(request, secret={"name": form.get("name", "")[:64], "secret": secret})


async def webhook_redeliver(request: web.Request) -> web.StreamResponse:
    event_id = (await _form(request)).get("event_id", "")[:64]
    worker = _worker(request)
    n = await worker.store.redeliver(event_id, project_id=request[SESSION].project.id)
    if n == 0:  # another project's event (a forged id) is "no such event" too
        return await _hooks(request, status=404, error="The project has no such event.")
    worker.kick()
    return await _hooks(request, notice=f"Event {event_id} is sent again ({n} destination{'s' if n > 1 else ''}).")


def _labelled(message: str) -> str:
    """The CLI's message (it names the setting's key) after the label the page shows for that key."""
    key = message.split(" ", 1)[0]
    label = next((f.label for _, group in core.FIELDS for f in group if f.key == key), None)
    return f"{label}: {message}" + ("" if message.endswith(".") else ".") if label else _sentence(message)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


#: (method, path, handler, least role): settings are the owners' and admins'.
ROUTES = (
    ("GET", "/portal/settings", settings_page, "admin"),
    ("POST", "/portal/settings", settings_save, "admin"),
    ("POST", "/portal/settings/open-id", open_id_generate, "admin"),
    ("POST", "/portal/settings/logo", logo_upload, "admin"),
    ("POST", "/portal/settings/logo/remove", logo_remove, "admin"),
    ("GET", "/portal/webhooks", webhooks_page, "admin"),
    ("POST", "/portal/webhooks", webhook_add, "admin"),
    ("POST", "/portal/webhooks/remove", webhook_remove, "admin"),
    ("POST", "/portal/webhooks/rotate", webhook_rotate, "admin"),
    ("POST", "/portal/webhooks/redeliver", webhook_redeliver, "admin"),
)

#: (label, href, least role): this area's entries in the top navigation.
NAV = (
    ("Settings", "/portal/settings", "admin"),
    ("Webhooks", "/portal/webhooks", "admin"),
)
