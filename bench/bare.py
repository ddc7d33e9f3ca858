"""The bare path of the REST bench: JSON -> 0100 -> router -> 0110 -> JSON, and nothing else.

No database, no schema validation, no authentication, no idempotency: the
floor under ``POST /orders/authorize``, so ``isoswitch bench rest --bare``
can report how much of the full path's time the durable, validated,
authenticated work costs (full/bare). It is a separate application on its
own port, built only when asked; the normal app has no route to it.

Request: the seed's authorize body (``amount``, ``currency``, ``pan``,
``card.expiration_month/year``, ``card.cvv``); other fields are ignored.
Answer: 200 ``{"orders": [{...}]}`` when approved, else the failure shape
with 402 (declined, fraud) or 500 (error), 422 for input translate refuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

import orjson
from aiohttp import web

from bench.rrn import RrnGenerator
from http_front.config import FrontConfig
from http_front.failures import Reply, failure_body, json_reply
from switch.errors import SwitchError, TranslationError
from switch.money import currency, from_minor, to_minor
from switch.translate import Authorize, Card, Merchant, Outcome, build, interpret
from switch.wire.cards import mask_pan
from switch.wire.codec import Message

__all__ = ["BARE_MERCHANT", "RouterPort", "create_bare_app"]

BARE_MERCHANT = Merchant(
    terminal_id="BARE0001",
    merchant_id="ISOSWITCHBARE01",
    mcc="5999",
    name="ISOSWITCH BARE",
    city="INTERNET",
    country="US",
    acquirer_id="412345",
)

_STATUS = {Outcome.APPROVED: "authorized", Outcome.DECLINED: "declined", Outcome.FRAUD: "fraud", Outcome.ERROR: "error"}
_HTTP = {Outcome.DECLINED: 402, Outcome.FRAUD: 402, Outcome.ERROR: 500}


class RouterPort(Protocol):
    async def request(self, msg: Message, *, timeout: float | None = None) -> Message: ...


@dataclass(slots=True)
class _Bare:
    router: RouterPort
    merchant: Merchant
    rrns: RrnGenerator
    timeout: float


_BARE = web.AppKey("bare", _Bare)


def _operation(body: Any, bare: _Bare) -> Authorize:
    card = body.get("card") or {}
    cur = currency(body.get("currency") or "USD")
    raw = body["amount"]
    amount = to_minor(Decimal(repr(raw)) if isinstance(raw, float) else raw, cur)
    return Authorize(
        merchant=bare.merchant,
        card=Card(
            str(body["pan"]),
            expiry_month=card.get("expiration_month"),
            expiry_year=card.get("expiration_year"),
            cvv=card.get("cvv"),
        ),
        amount=amount,
        currency=cur,
        rrn=bare.rrns.next(),
    )


async def _authorize(request: web.Request) -> web.Response:
    bare = request.app[_BARE]
    try:
        op = _operation(orjson.loads(await request.read()), bare)
    except (KeyError, TypeError, AttributeError, ValueError) as e:  # TranslationError and JSONDecodeError too
        text = str(e) if isinstance(e, TranslationError) else "Malformed request"
        return Reply(422, failure_body("validation", text)).response()
    try:
        response = await bare.router.request(build(op, datetime.now(UTC)), timeout=bare.timeout)
    except (SwitchError, TimeoutError, ConnectionError):
        return Reply(500, failure_body("error", "Issuer unavailable")).response()
    result = interpret(response)
    if result.outcome is not Outcome.APPROVED:
        return Reply(_HTTP[result.outcome], failure_body(result.outcome.value, result.message)).response()
    order = {
        "amount": from_minor(op.amount, op.currency),
        "auth_code": result.auth_code,
        "currency": op.currency.alpha,
        "iso_message": result.message,
        "iso_response_code": result.response_code,
        "pan": mask_pan(op.card.pan),
        "rrn": op.rrn,
        "status": _STATUS[result.outcome],
    }
    return json_reply({"orders": [order]}).response()


def create_bare_app(
    router: RouterPort,
    config: FrontConfig | None = None,
    *,
    merchant: Merchant = BARE_MERCHANT,
    timeout: float = 5.0,
    node_id: int = 9,
) -> web.Application:
    """The bare app over a started ``router`` (the caller owns it). ``node_id`` keeps its RRNs apart."""
    config = config or FrontConfig()
    app = web.Application(client_max_size=config.client_max_size)
    app[_BARE] = _Bare(router, merchant, RrnGenerator(node_id), timeout)
    app.router.add_post("/orders/authorize", _authorize)
    return app
