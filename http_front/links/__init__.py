"""Payment links (issue 12 item 7): the merchant's templates under ``/api/payment-links`` (HTTP Basic,
JSON:API) and the public pre-payment page at ``/link/{slug}``.

:func:`add_link_routes` registers both.
"""

from __future__ import annotations

from aiohttp import web

__all__ = ["add_link_routes"]

_LINK_ID = "{link_id:[A-Za-z0-9_]{1,64}}"
_SLUG = "{slug:[A-Za-z0-9_-]{32}}"


def add_link_routes(r: web.UrlDispatcher) -> None:
    from http_front.links import api, page

    r.add_post("/api/payment-links", api.create_link)
    r.add_get("/api/payment-links", api.list_links)
    r.add_get(f"/api/payment-links/{_LINK_ID}", api.get_link)
    r.add_patch(f"/api/payment-links/{_LINK_ID}", api.update_link)
    r.add_delete(f"/api/payment-links/{_LINK_ID}", api.delete_link)
    # The public page: the slug is its credential (http_front.auth skips "public:" routes).
    r.add_get(f"/link/{_SLUG}", page.show_link, name="public:link")
    r.add_post(f"/link/{_SLUG}", page.submit_link, name="public:link-submit")
