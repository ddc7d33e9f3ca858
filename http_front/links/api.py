"""``/api/payment-links`` (HTTP Basic): the merchant's payment-link templates, JSON:API like the invoice API.

``POST`` makes one (201, ``Location``), ``GET`` lists them newest first (``page[number]``/``page[size]``, the
services' paging), ``GET /{id}`` reads one, ``PATCH /{id}`` changes the attributes given (the rest kept; the
whole is checked again), ``DELETE /{id}`` removes it (204; its URL stops working, its invoices stay).
"""

from __future__ import annotations

import re

from aiohttp import web

from http_front.failures import json_reply
from http_front.invoices.jsonapi import ApiError, error_list, page_links, page_params
from http_front.invoices.parse import read_body
from http_front.keys import PROJECT, RUNTIME
from http_front.links.parse import link_document, link_request
from http_front.links.views import PATH, attributes_of, link_resource

__all__ = ["create_link", "delete_link", "get_link", "list_links", "update_link"]

_LINK_ID = re.compile(r"cpl_[A-Za-z0-9]{16}")


def _id(request: web.Request) -> str:
    link_id = request.match_info["link_id"]
    if not _LINK_ID.fullmatch(link_id):
        raise ApiError(404, error_list(404))
    return link_id


async def create_link(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    links = runtime.links
    attrs = link_document(await read_body(request))
    req = link_request(attrs, runtime.invoices.services, links.now())
    link = await links.create(request[PROJECT], req)
    body = {"data": link_resource(request, link, links.now())}
    return json_reply(body, 201, {"Location": f"{PATH}/{link.id}"}).response()


async def get_link(request: web.Request) -> web.Response:
    links = request.app[RUNTIME].links
    link = await links.get(request[PROJECT], _id(request))
    if link is None:
        raise ApiError(404, error_list(404))
    return json_reply({"data": link_resource(request, link, links.now())}).response()


async def update_link(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    links, project, link_id = runtime.links, request[PROJECT], _id(request)
    patch = link_document(await read_body(request), link_id=link_id)
    old = await links.get(project, link_id)
    if old is None:
        raise ApiError(404, error_list(404))
    merged = attributes_of(old) | patch
    # A switch between a fixed amount and the payer's: what belonged to the other kind goes unless given.
    if merged.get("arbitrary_amount") is True and "amount" not in patch:
        merged["amount"] = None
    if merged.get("arbitrary_amount") is False:
        merged |= {k: None for k in ("amount_min", "amount_max") if k not in patch}
    req = link_request(merged, runtime.invoices.services, links.now())
    link = await links.update(project, link_id, req)
    if link is None:
        raise ApiError(404, error_list(404))
    return json_reply({"data": link_resource(request, link, links.now())}).response()


async def delete_link(request: web.Request) -> web.Response:
    if not await request.app[RUNTIME].links.delete(request[PROJECT], _id(request)):
        raise ApiError(404, error_list(404))
    return web.Response(status=204)


async def list_links(request: web.Request) -> web.Response:
    links = request.app[RUNTIME].links
    number, size = page_params(request.query)
    found, total = await links.page(request[PROJECT], number, size)
    pages = max(1, -(-total // size))
    now = links.now()
    body = {
        "meta": {"total": total, "pages": pages, "page": number},
        "links": page_links(PATH, number, size, pages),
        "data": [link_resource(request, link, now) for link in found],
    }
    return json_reply(body).response()
