"""The JSON:API side of seeds/002: its error shapes, its paging, and the middleware that keeps ``/api/`` and
``/public-api/`` in them.

The orders API (seeds/003) answers failures as ``failure_type``/``failure_message``;
the invoice API's code table answers ``{"errors": [{"status", "code"}]}``
(401, 403, 404, 405, 400, 500) and ``{"errors": {field: message}}`` (422).
:func:`jsonapi_errors` turns whatever the layers below raise (HTTP Basic's 401,
the router's 404/405, a bug's 500) into those shapes for these paths only.

>>> error_list(404)
{'errors': [{'status': 'Not Found', 'code': '404'}]}
>>> page_params({"page[number]": "2", "page[size]": "5"}), page_params({})
((2, 5), (1, 20))
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from http_front.errors import route_name
from http_front.failures import HttpFailure, Reply, dumps
from http_front.logs import format_exception
from switch.store.db import DATABASE_DOWN

__all__ = [
    "API_PREFIXES",
    "ApiError",
    "error_list",
    "invalid",
    "jsonapi_errors",
    "page_links",
    "page_params",
]

log = logging.getLogger("isoswitch.http")

API_PREFIXES = ("/api/", "/public-api/")
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100

# The seed's 500 example, word for word.
_INTERNAL = {
    "errors": [
        {"status": "internal_error", "code": "500", "title": "internal_error", "detail": "Internal server error."}
    ]
}


def error_list(status: int, detail: str | None = None) -> dict[str, Any]:
    """``{"errors": [{"status": <phrase>, "code": "<n>"}]}`` as the seed's 401/404/405 examples (and ``detail``)."""
    item: dict[str, Any] = {"status": HTTPStatus(status).phrase, "code": str(status)}
    if detail is not None:
        item["detail"] = detail
    return {"errors": [item]}


class ApiError(Exception):
    """An answer of the invoice API other than 2xx: status and body (already in the seed's shape)."""

    def __init__(self, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = dict(headers or {})

    def reply(self) -> Reply:
        return Reply(self.status, dumps(self.body), self.headers)


def invalid(errors: Mapping[str, str]) -> ApiError:
    """422 with the seed's ``{"errors": {field: message}}``."""
    return ApiError(422, {"errors": dict(errors)})


def _is_api(request: web.Request) -> bool:
    path = request.path
    return path.startswith(API_PREFIXES) or path in ("/api", "/public-api")


@web.middleware
async def jsonapi_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Failures of ``/api/`` and ``/public-api/`` in the seed's shapes (other paths pass untouched)."""
    if not _is_api(request):
        return await handler(request)
    try:
        return await handler(request)
    except ApiError as e:
        return e.reply().response()
    except HttpFailure as e:
        detail = None if e.status in (401, 404, 405) else e.message
        return ApiError(e.status, error_list(e.status, detail), e.headers).reply().response()
    except web.HTTPException as e:
        if e.status < 400:
            raise
        allow = e.headers.get("Allow")
        return ApiError(e.status, error_list(e.status), {"Allow": allow} if allow else None).reply().response()
    except DATABASE_DOWN as e:
        # seeds/002's 503 (the server is not ready to handle the request), not a 500 with nothing said.
        log.error("database unavailable in %s: %s", route_name(request), type(e).__name__)
        detail = "The service is unavailable, try again later."
        return ApiError(503, error_list(503, detail), {"Retry-After": "1"}).reply().response()
    except Exception as e:
        log.error("unhandled error in %s\n%s", route_name(request), format_exception(e))
        return ApiError(500, _INTERNAL).reply().response()


def page_params(query: Mapping[str, str]) -> tuple[int, int]:
    """``page[number]`` (from 1) and ``page[size]`` (1..100, default 20); 422 for anything else."""
    out: list[int] = []
    for key, default, top in (("page[number]", 1, 10**6), ("page[size]", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)):
        raw = query.get(key)
        if raw is None:
            out.append(default)
            continue
        if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= top):
            raise invalid({key: f"This value should be between 1 and {top}."})
        out.append(int(raw))
    return out[0], out[1]


def page_links(path: str, number: int, size: int, pages: int) -> dict[str, str]:
    """``first``, ``prev`` (after the first page), ``next`` (before the last), ``last``, as the seed's list shows."""

    def link(n: int) -> str:
        return f"{path}?page[number]={n}&page[size]={size}"

    links = {"first": link(1)}
    if number > 1:
        links["prev"] = link(min(number - 1, pages))
    if number < pages:
        links["next"] = link(number + 1)
    links["last"] = link(pages)
    return links
