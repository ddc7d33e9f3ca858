"""The hosted payment page: templates, its script and style, and its routes.

:func:`add_page_routes` registers ``GET``/``POST /pay/{token}``, ``POST /pay/{token}/resume``, the project's
logo (``GET /pay/logo/{project}/{sha256}``, :mod:`http_front.pages.look`) and the page's static files (all
``public:``: no HTTP Basic) and the Jinja2 environment (autoescaped). The component
(:mod:`http_front.pages.component`) is what other entry points reuse.
"""

from __future__ import annotations

from importlib import resources

import aiohttp_jinja2
import jinja2
from aiohttp import web

from http_front.pages.component import secure

__all__ = ["add_page_routes"]

_TOKEN = "{token:[A-Za-z0-9_-]{43}}"
_STATIC = {"card.js": "text/javascript", "page.css": "text/css"}


def _static_files() -> dict[str, bytes]:
    base = resources.files("http_front.pages") / "static"
    return {name: (base / name).read_bytes() for name in _STATIC}


def add_page_routes(app: web.Application) -> None:
    from http_front.pages.look import logo
    from http_front.pages.order_page import pay_page, resume_page, show_page

    aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("http_front.pages", "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
    )
    files = _static_files()

    async def static(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in files:
            raise web.HTTPNotFound()
        response = web.Response(body=files[name], content_type=_STATIC[name], charset="utf-8")
        secure(response)
        response.headers["Cache-Control"] = "no-cache"  # revalidated; nothing secret in them
        return response

    r = app.router
    r.add_get("/pay/static/{name}", static, name="public:pay-static")
    r.add_get("/pay/logo/{project:[0-9]{1,18}}/{sha:[0-9a-f]{64}}", logo, name="public:pay-logo")
    r.add_get(f"/pay/{_TOKEN}", show_page, name="public:pay")
    r.add_post(f"/pay/{_TOKEN}", pay_page, name="public:pay-submit")
    r.add_post(f"/pay/{_TOKEN}/resume", resume_page, name="public:pay-resume")
