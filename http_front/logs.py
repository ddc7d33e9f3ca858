"""Logging of the front: the request id, an access log without queries or headers, card numbers scrubbed.

Each request gets an id (the caller's ``X-Request-Id`` when it is sane, else a
new one), answered in ``X-Request-Id`` and set in :data:`switch.logs.REQUEST_ID`
for every log line written while the request is served: the orders service's,
the link's, the writer's, and the access log's.
"""

from __future__ import annotations

import logging
import re
import traceback

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler

from switch.logs import REQUEST_ID, new_request_id
from switch.wire.cards import scrub

__all__ = ["ACCESS_LOGGER", "REQUEST_ID_HEADER", "AccessLog", "format_exception", "request_id_middleware", "scrub"]

REQUEST_ID_HEADER = "X-Request-Id"
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_RID = web.RequestKey("request_id", str)

ACCESS_LOGGER = logging.getLogger("isoswitch.http.access")


def format_exception(exc: BaseException) -> str:
    """The traceback of ``exc``, scrubbed: a third-party message may quote a value."""
    return scrub("".join(traceback.format_exception(exc)))


class AccessLog(AbstractAccessLogger):
    """``METHOD /path STATUS bytes ms``: never the query (filters carry e-mails, names) nor headers."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        path = scrub(request.path)
        ms = round(time * 1000.0, 1)
        extra = {"method": request.method, "path": path, "status": response.status, "ms": ms}
        rid = request.get(_RID)
        if rid is not None:
            extra["request_id"] = rid  # logged after the handler: the context variable is gone
        self.logger.info(
            "%s %s %s %s %.1fms", request.method, path, response.status, response.body_length, ms, extra=extra
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: every response, errors included, carries the id its log lines carry."""
    rid = request.headers.get(REQUEST_ID_HEADER)
    if rid is None or _SANE_ID.fullmatch(rid) is None or scrub(rid) != rid:
        rid = new_request_id()  # a caller's id that could forge log lines, or a card number, is replaced
    request[_RID] = rid
    token = REQUEST_ID.set(rid)
    try:
        response = await handler(request)
    finally:
        REQUEST_ID.reset(token)
    response.headers[REQUEST_ID_HEADER] = rid
    return response
