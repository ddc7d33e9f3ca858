"""Wallet payments: a token opened into the card and its cryptogram, authorized as DSRP.

A wallet token (``POST /orders/token_pay``; format and crypto in
:mod:`switch.wire.wallet`) and DSRP (``secure3d {dsrp: 1, ...}``: the
merchant decrypted the token itself) become the same authorization: the
token's card, no CVV nor holder, DE 22 ``810`` (tokenized e-commerce
credential), DE 121 the token's ECI (only when it has one), DE 122 its
cryptogram, DE 123 its transaction id. The order's ``secure3d`` shows
``dsrp_type``, ``reason: dsrp``, ``dsrp: "1"``, ``eci``, ``xid``,
``authorization_status``, ``version``, ``scenario`` as the seed's example,
never the cryptogram. A token pays once: ``token_pay`` refuses one whose
transaction id was claimed already (``OrderRepo.claim_wallet_token``).
"""

from __future__ import annotations

from typing import Any

from switch.money import Currency
from switch.orders.errors import InvalidInput
from switch.orders.requests import SecureData
from switch.translate import Card, ThreeDSecure
from switch.wire.wallet import Gateway, Payment, TokenError

__all__ = ["dsrp_data", "open_token"]


def dsrp_data(kind: str, eci: str | None, cavv: str, xid: str, wallet_id: str | None = None) -> SecureData:
    """DE 121-123 of a wallet's cryptogram and the order's ``secure3d`` view (TranslationError if they don't fit)."""
    three_ds = ThreeDSecure(eci.zfill(2) if eci is not None else None, cavv=cavv, xid=xid)
    shown: dict[str, Any] = {
        "authorization_status": "Y",  # the wallet authenticated the cardholder (device biometrics or passcode)
        "dsrp": "1",
        "dsrp_type": kind,
        "reason": "dsrp",
        "scenario": "unknown",
        "version": "1",
        "xid": xid,
    }
    if eci is not None:
        shown["eci"] = str(int(eci))
    if wallet_id is not None:
        shown["dsrp_wallet_id"] = wallet_id
    return SecureData(three_ds, shown, tokenized=True)


def open_token(
    gateway: Gateway | None, token: str, kind: str, amount: int, cur: Currency
) -> tuple[Card, SecureData, Payment]:
    """The checked token's card and cryptogram; :class:`InvalidInput` at ``dsrp/token`` for any bad token.

    The token must be for this amount and currency (a token minted for 1.00 never pays 100.00).
    """
    if gateway is None:
        raise InvalidInput.one("Wallet payments are not configured", "dsrp/token")
    try:
        payment = gateway.open(token, wallet_type=kind)
    except TokenError as e:
        raise InvalidInput.one(f"Invalid token: {e}", "dsrp/token") from None
    if payment.currency_code != cur.numeric:
        raise InvalidInput.one("Token currency differs from the request's", "currency")
    if payment.amount != amount:
        raise InvalidInput.one("Token amount differs from the request's", "amount")
    try:
        card = Card(payment.pan, expiry_month=payment.expiry_month, expiry_year=payment.expiry_year)
        secure = dsrp_data(kind, payment.eci, payment.cryptogram, payment.transaction_id)
    except ValueError as e:  # TranslationError: the token's values do not fit their fields
        raise InvalidInput.one(f"Invalid token: {e}", "dsrp/token") from None
    return card, secure, payment
