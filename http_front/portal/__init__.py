"""The merchant portal under ``/portal/`` (issue 13: seeds/000 and seeds/004), server-rendered, on the REST front's
port.

:func:`add_portal_routes` registers the routes of :data:`http_front.portal.views.ROUTES` -- each with the least
role it needs, enforced by :func:`http_front.portal.guard.guarded` on the server -- their Jinja2 environment
(autoescaped, its own: the payment page's is another) and the stylesheet. Every route is ``public:`` for the
API's HTTP Basic: the portal's own session cookie is what lets a browser in.
"""

from __future__ import annotations

import importlib
from importlib import resources
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from http_front.pages.component import secure
from http_front.portal.guard import TEMPLATES, guarded, portal_state, render

__all__ = ["AREAS", "add_portal_routes"]


#: The portal's areas: each module has ``ROUTES`` ((method, path, handler, least role), the role table
#: :func:`guarded` enforces) and ``NAV`` ((label, href, least role): its entries in the top navigation, shown
#: to the roles that may open them). An area is added here, in one line, and nowhere else.
AREAS = (
    "http_front.portal.payments",
    "http_front.portal.views",
    "http_front.portal.settings",
    "http_front.portal.dashboard",
    "http_front.portal.notify",
    "http_front.portal.moto",
    "http_front.portal.account",
)


def _areas() -> list[Any]:
    return [importlib.import_module(name) for name in AREAS]


def add_portal_routes(app: web.Application) -> None:
    areas = _areas()
    routes = [route for area in areas for route in area.ROUTES]
    nav = tuple(entry for area in areas for entry in getattr(area, "NAV", ()))

    aiohttp_jinja2.setup(
        app,
        app_key=TEMPLATES,
        loader=jinja2.PackageLoader("http_front.portal", "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
    )
    aiohttp_jinja2.get_env(app, app_key=TEMPLATES).globals["portal_nav"] = nav
    app.cleanup_ctx.append(portal_state)
    css = (resources.files("http_front.portal") / "static" / "portal.css").read_bytes()

    async def stylesheet(request: web.Request) -> web.StreamResponse:
        response = web.Response(body=css, content_type="text/css", charset="utf-8")
        secure(response)
        response.headers["Cache-Control"] = "no-cache"
        return response

    async def home(request: web.Request) -> web.StreamResponse:
        raise web.HTTPSeeOther("/portal/")

    r = app.router
    r.add_get("/portal/static/portal.css", stylesheet, name="public:portal-css")
    r.add_get("/portal", home, name="public:portal-root")
    for method, path, handler, role in routes:
        r.add_route(method, path, guarded(handler, role), name=f"public:portal-{handler.__name__}")

    async def missing(request: web.Request) -> web.StreamResponse:
        return render(request, "error.html", 404, title="Not found", message="There is no such page in the portal.")

    # Last: a page of the portal's own rather than the API's JSON 404 for a mistyped portal address.
    r.add_get("/portal/{tail:.*}", guarded(missing, None), name="public:portal-missing")
