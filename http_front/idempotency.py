"""``Idempotency-Key`` on POST and PUT: a retried request gets the first answer, not a second payment.

The key is scoped to the project. The request's fingerprint is SHA-256 of
project, method, path with query, and the canonical JSON of the validated
body (sorted keys, amounts as decimal strings), so whitespace or key order
does not make a retry look different.

- new key: the operation runs; its answer (status and body, success or a
  decline/error the service reported) is stored, then returned;
- same key, same fingerprint, finished: the stored answer, byte for byte,
  with ``Idempotent-Replayed: true`` and no second ISO message;
- same key, other fingerprint: 422, ``failure_type: validation``;
- same key while the first is still running: 409 in the failure shape;
- a bug or a cancelled request: the key is abandoned, so a retry runs.

Requests without the header run as they are. A 422 of validation happens
before the key is looked at: nothing is stored for a request that never ran.

A 201 that asks the cardholder's browser for 3-D Secure (``form3d``,
``form3d_html``, ``method3d_params``) is answered once and not kept: its
MD, PaReq, creq, threeDSSessionData and method data are bearer tokens that
the 3-D Secure sessions keep only hashed (migration 007), and the key table
would keep them in clear for its retention. What is stored for the key is
a 409 in the failure shape naming the order (``order_id``): a replay gets
that 409, never a second order or authorization; the merchant follows the
order with ``GET /orders/:id`` (it waits, ``prepared``, until the cardholder
completes or the session expires).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from aiohttp import web

from http_front.errors import reply_for
from http_front.failures import FieldError, HttpFailure, Reply, dumps
from http_front.ports import IdempotencyPort
from switch.store.idempotency import BeginState, request_fingerprint

__all__ = ["FORM_NOT_REPLAYED", "KEY_HEADER", "REPLAYED_HEADER", "fingerprint", "idempotent", "settle"]

log = logging.getLogger("isoswitch.http")

KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
_MAX_KEY = 255


def fingerprint(project_id: object, method: str, path_qs: str, body: Mapping[str, Any]) -> bytes:
    """SHA-256 of what makes two requests "the same" (32 bytes).

    >>> a = fingerprint(1, "POST", "/orders/authorize", {"amount": "9.99", "pan": "4111111111111111"})
    >>> a == fingerprint(1, "POST", "/orders/authorize", {"pan": "4111111111111111", "amount": "9.99"})
    True
    >>> a == fingerprint(2, "POST", "/orders/authorize", {"amount": "9.99", "pan": "4111111111111111"})
    False
    """
    return request_fingerprint(str(project_id), method, path_qs, dumps(body))


def _check_key(key: str) -> str:
    if not (0 < len(key) <= _MAX_KEY and key.isascii() and key.isprintable()):
        raise HttpFailure(
            422,
            "validation",
            "Validation failed",
            errors=[FieldError(f"#/{KEY_HEADER}", f"Invalid {KEY_HEADER}: 1-{_MAX_KEY} printable ASCII characters")],
        )
    return key


# The 3-D Secure answer's fields that carry the browser's tokens (http_front/orders/views.py secure3d_view).
_FORM_FIELDS = ("form3d", "form3d_html", "method3d_params")
FORM_NOT_REPLAYED = "Replay not available for a 3-D Secure form: it is answered once; see the order"


def _kept(reply: Reply) -> Reply:
    """What is stored for replays: ``reply``, or for a 3-D Secure form's 201 the 409 that replaces it."""
    if reply.status != 201:
        return reply
    try:
        doc = orjson.loads(reply.body)
    except orjson.JSONDecodeError:
        return reply
    if not isinstance(doc, dict):
        return reply
    orders = [o for o in doc.get("orders") or () if isinstance(o, dict)]
    if any(f in doc for f in _FORM_FIELDS):
        order_id = doc.get("order_id")
    elif any(f in o for o in orders for f in _FORM_FIELDS):
        order_id = orders[0].get("id")
    else:
        return reply
    return HttpFailure(409, "validation", FORM_NOT_REPLAYED, order_id=str(order_id) if order_id else None).reply()


async def settle(produce: Callable[[], Awaitable[Reply]]) -> Reply:
    """Run ``produce``; a failure the service reported (decline, rejection, 404...) becomes its answer."""
    try:
        return await produce()
    except Exception as exc:
        reply = reply_for(exc)
        if reply is None:
            raise
        return reply


async def idempotent(
    request: web.Request,
    store: IdempotencyPort,
    project_id: int,
    body: Mapping[str, Any],
    produce: Callable[[], Awaitable[Reply]],
) -> Reply:
    """The answer to a POST/PUT, run at most once per ``Idempotency-Key`` (see the module doc)."""
    raw_key = request.headers.get(KEY_HEADER)
    if raw_key is None:
        return await settle(produce)
    key = _check_key(raw_key)
    begin = await store.begin(project_id, key, fingerprint(project_id, request.method, request.path_qs, body))
    state = begin.state
    if state is BeginState.REPLAY:
        return Reply(begin.status or 200, begin.body or b"", {REPLAYED_HEADER: "true"})
    if state is BeginState.MISMATCH:
        raise HttpFailure(
            422,
            "validation",
            f"{KEY_HEADER} was already used with a different request",
            errors=[FieldError(f"#/{KEY_HEADER}", "Key reused with a different request")],
        )
    if state is BeginState.IN_FLIGHT:
        raise HttpFailure(409, "validation", f"A request with this {KEY_HEADER} is still in progress")
    try:
        reply = await settle(produce)
    except BaseException:
        # A bug or a cancellation: nothing worth replaying. Free the key so a retry can run.
        try:
            await asyncio.shield(store.abandon(project_id, key))
        except Exception as exc:
            log.warning("could not abandon an idempotency key of project %s: %s", project_id, type(exc).__name__)
        raise
    try:
        kept = _kept(reply)
        await store.finish(project_id, key, kept.status, kept.body)
    except Exception as exc:
        # The operation happened: answer it. A retry finds the key in flight (409) until it
        # expires, never runs the payment twice.
        log.error("could not store the answer of an idempotency key of project %s: %r", project_id, exc)
    return reply
