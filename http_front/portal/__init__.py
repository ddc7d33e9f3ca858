"""The merchant portal under ``/portal/`` (issue 13: seeds/000 and seeds/004), server-rendered, on the REST front's
port.

:func:`add_portal_routes` registers the routes of :data:`http_front.portal.views.ROUTES` -- each with the least
role it needs, enforced by :func:`http_front.portal.guard.guarded` on the server -- their Jinja2 environment
(autoescaped, its own: the payment page's is another) and the stylesheet. Every route is ``public:`` for the
API's HTTP Basic: the portal's own session cookie is what lets a browser in.
"""

from __future__ import annotations

from importlib import resources

import aiohttp_jinja2
import jinja2
from aiohttp import web

from http_front.pages.component import secure
from http_front.portal.guard import TEMPLATES, guarded, portal_state, render

__all__ = ["add_portal_routes"]


def add_portal_routes(app: web.Application) -> None:
    from http_front.portal.views import ROUTES

    aiohttp_jinja2.setup(
        app,
        app_key=TEMPLATES,
        loader=jinja2.PackageLoader("http_front.portal", "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
    )
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
    for method, path, handler, role in ROUTES:
        r.add_route(method, path, guarded(handler, role), name=f"public:portal-{handler.__name__}")

    async def missing(request: web.Request) -> web.StreamResponse:
        return render(request, "error.html", 404, title="Not found", message="There is no such page in the portal.")

    # Last: a page of the portal's own rather than the API's JSON 404 for a mistyped portal address.
    r.add_get("/portal/{tail:.*}", guarded(missing, None), name="public:portal-missing")
