"""Every failure as the seed's failure body, and never a stack trace on the wire.

The middleware is the outermost layer of the app: whatever a handler
raises -- an :class:`~http_front.failures.HttpFailure`, an orders-service
:class:`~switch.orders.errors.OrderError`, aiohttp's own 404/405/413, a
translation error the service let through, or a bug -- leaves as JSON in
the shape ``{"failure_type", "failure_message", "order_id"[, "errors"]}``.
A bug is logged here with its traceback (the route's pattern, never the
path, query or body: those can carry card data) and answered 500. A body the
client never finished sending (it went away, or sent a wrong length or bad
chunks) is not a bug: one WARNING line, rate-limited, and a 400.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from http_front.failures import FieldError, HttpFailure, Reply, dumps, failure_body
from http_front.logs import body_failure, format_exception, log_client_failure
from http_front.orders.status import error_body, http_status
from switch.errors import TranslationError
from switch.orders.errors import OrderError

__all__ = ["INTERNAL_ERROR", "error_middleware", "reply_for", "route_name"]

log = logging.getLogger("isoswitch.http")

INTERNAL_ERROR = Reply(500, failure_body("error", "Internal error"))
BODY_NOT_RECEIVED = Reply(400, failure_body("validation", "Request body not received"))

_HTTP_MESSAGES = {
    404: "Not found",
    405: "Method not allowed",
    413: "Request body is too large",
}


def route_name(request: web.Request) -> str:
    """``METHOD /pattern`` of the matched route: safe to log (no ids, no query)."""
    info = request.match_info
    resource = info.route.resource if info.http_exception is None else None
    return f"{request.method} {resource.canonical if resource is not None else '(no route)'}"


def reply_for(exc: BaseException) -> Reply | None:
    """The answer for a known failure, or None for a bug."""
    if isinstance(exc, HttpFailure):
        return exc.reply()
    if isinstance(exc, OrderError):
        return Reply(http_status(exc), dumps(error_body(exc)))
    if isinstance(exc, TranslationError):
        # Input the schemas let through but a field cannot carry. The texts of
        # switch.translate/money never hold card data (STYLE.md, Errors).
        errors = [FieldError("#", str(exc))]
        return Reply(422, failure_body("validation", "Validation failed", errors=errors))
    return None


def _from_http_exception(exc: web.HTTPException) -> web.Response:
    message = _HTTP_MESSAGES.get(exc.status, exc.reason)
    failure_type = "validation" if exc.status < 500 else "error"
    headers = {}
    allow = exc.headers.get("Allow")
    if allow is not None:
        headers["Allow"] = allow
    return Reply(exc.status, failure_body(failure_type, message), headers).response()


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _from_http_exception(exc)
    except Exception as exc:
        reply = reply_for(exc)
        if reply is None and body_failure(request, exc):
            log_client_failure(request, exc)
            response = BODY_NOT_RECEIVED.response()
            response.force_close()  # the body's stream is broken: this connection cannot carry another request
            return response
        if reply is None:
            log.error("unhandled error in %s\n%s", route_name(request), format_exception(exc))
            reply = INTERNAL_ERROR
        return reply.response()
