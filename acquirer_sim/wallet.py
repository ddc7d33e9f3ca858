"""The simulated wallet (Apple Pay / Google Pay): mints test tokens for ``POST /orders/token_pay``.

Format and cryptography: :mod:`switch.wire.wallet`. The wallet signs with
its own key (``wallet_signing.pem``) and encrypts for the gateway's public
key (``wallet_merchant.pub.pem``); ``isoswitch up`` keeps both pairs in
``<data_dir>/keys/`` and starts the simulator with them.

Command line (prints the token, the ``dsrp.token`` to post)::

    python -m acquirer_sim wallet-token --pan 4111111111111111 --amount 9.99 [--currency USD]
        [--type apple_pay|google_pay] [--expiry 2030-12] [--eci 05] [--no-eci] [--ttl 3600]
        --merchant-key .data/keys/wallet_merchant.pub.pem --signing-key .data/keys/wallet_signing.pem

Admin endpoint (when the simulator has both keys): ``POST /wallet/token``
``{"pan", "amount", "currency"?, "type"?, "expiry"?, "eci"?}`` ->
``{"token", "type", "transaction_id"}``. ``amount`` is a decimal string in
the currency's units; ``eci`` defaults to ``"05"`` (``null``: a token
without one).
"""

from __future__ import annotations

import argparse
import base64
import calendar
import json
import secrets
import sys
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from switch.wire.wallet import VERSIONS, PaymentData, Wallet

__all__ = ["MintError", "WalletKeys", "main", "mint"]

# ISO 4217 numeric code and exponent of the currencies a developer mints for most; others by number (--currency 978).
_CURRENCIES = {"USD": ("840", 2), "EUR": ("978", 2), "GBP": ("826", 2), "RUB": ("643", 2), "JPY": ("392", 0)}


class MintError(ValueError):
    """A mint request that cannot be carried out (the text names the field, never the PAN)."""


@dataclass(frozen=True, slots=True)
class WalletKeys:
    """The wallet's signing key (private PEM) and the gateway's public key it encrypts for."""

    signing_key: Path
    merchant_key: Path


def _minor(amount: str, exponent: int) -> int:
    try:
        value = Decimal(amount)
    except InvalidOperation:
        raise MintError("amount must be a decimal number") from None
    units = value.scaleb(exponent)
    if not value.is_finite() or value < 0 or units != units.to_integral_value():
        raise MintError(f"amount must be non-negative with at most {exponent} decimals")
    return int(units)


def mint(keys: WalletKeys, doc: dict[str, Any]) -> dict[str, str]:
    """A token for ``doc`` (``pan``, ``amount``, ``currency``, ``type``, ``expiry`` YYYY-MM, ``eci``, ``ttl``)."""
    pan = str(doc.get("pan", ""))
    if not (pan.isascii() and pan.isdigit() and 12 <= len(pan) <= 19):
        raise MintError("pan must be 12-19 digits")
    kind = doc.get("type", "apple_pay")
    if kind not in VERSIONS:
        raise MintError(f"type must be one of {sorted(VERSIONS)}")
    cur = str(doc.get("currency", "USD")).upper()
    numeric, exponent = _CURRENCIES.get(cur, (cur, 2))
    if not (len(numeric) == 3 and numeric.isdigit()):
        raise MintError(f"currency must be one of {sorted(_CURRENCIES)} or a 3-digit ISO 4217 number")
    amount = _minor(str(doc.get("amount", "")), exponent)
    expiry = str(doc.get("expiry", "2030-12"))
    year, _, month = expiry.partition("-")
    if not (len(year) == 4 and year.isdigit() and month.isdigit() and 1 <= int(month) <= 12):
        raise MintError("expiry must be YYYY-MM")
    eci = doc.get("eci", "05")
    if eci is not None and not (isinstance(eci, str) and eci.isdigit() and len(eci) <= 2):
        raise MintError("eci must be 1-2 digits or null")
    # A cryptogram is 20 bytes the issuer checks (TAVV / UCAF); the simulator's issuer does not, so random ones do.
    cryptogram = base64.b64encode(secrets.token_bytes(20)).decode()
    last_day = calendar.monthrange(int(year), int(month))[1]
    data = PaymentData(pan, f"{year[2:]}{int(month):02d}{last_day:02d}", numeric, amount, cryptogram, eci)
    tx = secrets.token_hex(16)
    ttl = float(doc.get("ttl", 3600))
    token = Wallet.load(keys.signing_key).mint(data, keys.merchant_key, wallet_type=kind, ttl=ttl, transaction_id=tx)
    return {"token": token, "type": kind, "transaction_id": tx}


def main(argv: list[str]) -> int:
    """``python -m acquirer_sim wallet-token ...``: print a token; 2 on bad arguments."""
    p = argparse.ArgumentParser(prog="python -m acquirer_sim wallet-token", description="Mint a wallet test token.")
    p.add_argument("--pan", required=True)
    p.add_argument("--amount", required=True, help="decimal, in the currency's units (9.99)")
    p.add_argument("--currency", default="USD")
    p.add_argument("--type", default="apple_pay", choices=sorted(VERSIONS))
    p.add_argument("--expiry", default="2030-12", help="card expiry YYYY-MM (default 2030-12)")
    p.add_argument("--eci", default="05", help="eciIndicator (default 05)")
    p.add_argument("--no-eci", action="store_true", help="a token without eciIndicator")
    p.add_argument("--ttl", type=float, default=3600.0, help="seconds until messageExpiration (negative: expired)")
    p.add_argument("--merchant-key", required=True, metavar="PUB", help="the gateway's public key (PEM)")
    p.add_argument("--signing-key", required=True, metavar="PEM", help="the wallet's signing key (PEM)")
    p.add_argument("--json", action="store_true", help="print {token, type, transaction_id} as JSON")
    try:
        args = p.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    doc = {
        "pan": args.pan,
        "amount": args.amount,
        "currency": args.currency,
        "type": args.type,
        "expiry": args.expiry,
        "eci": None if args.no_eci else args.eci,
        "ttl": args.ttl,
    }
    try:
        out = mint(WalletKeys(Path(args.signing_key), Path(args.merchant_key)), doc)
    except (MintError, OSError, ValueError) as e:
        print(f"wallet-token: {e}", file=sys.stderr)
        return 2
    print(json.dumps(out) if args.json else out["token"])
    return 0
