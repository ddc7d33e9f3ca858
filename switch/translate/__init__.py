"""Translation: payment operations -> ISO 8583 request dicts, responses -> results.

Pure functions over frozen dataclasses: no I/O, no clock, no counters. Three rooms:
:mod:`.values` (what one field may hold: the card, the acceptor, amounts, dates,
processing codes, stored-credential and 3-D Secure fields, the original's DE 90),
:mod:`.requests` (one dataclass per operation and :func:`build`) and
:mod:`.responses` (DE 39 -> :class:`Outcome`, :func:`interpret`). Import from
here; the rooms are the layout, not the interface.

>>> from datetime import UTC, datetime
>>> from switch.money import currency
>>> shop = Merchant(terminal_id="TERM0001", merchant_id="MERCHANT0000001", mcc="5999",
...                 name="BOOKSTORE LTD", city="MOSCOW", country="RU", acquirer_id="412345")
>>> card = Card("4111111111111111", expiry_month=12, expiry_year=2030, cvv="123")
>>> req = Authorize(merchant=shop, card=card, amount=999, currency=currency("USD"), rrn="431822000001")
>>> msg = build(req, now=datetime(2024, 11, 17, 22, 5, 9, tzinfo=UTC))
>>> msg["t"], msg["3"], msg["4"], msg["7"], msg["14"], msg["49"]
('0100', '000000', '000000000999', '1117220509', '3012', '840')
>>> "4111111111111111" in repr(card), card.expiry
(False, '3012')
>>> r = interpret({"t": "0110", "39": "00", "38": "AUTH12", "37": "431822000001"})
>>> r.outcome, r.auth_code, r.message, r.approved
(<Outcome.APPROVED: 'approved'>, 'AUTH12', 'Approved', True)
"""

from switch.translate.requests import (
    Authorize,
    Capture,
    Credit,
    IsoRequest,
    Rebill,
    Refund,
    Reversal,
    Sale,
    build,
    repeat,
    reversal_of,
)
from switch.translate.responses import UNKNOWN_CODE_MESSAGE, Outcome, Result, classify, interpret
from switch.translate.values import (
    Card,
    Channel,
    CredentialReason,
    Descriptor,
    Initiator,
    InvalidCard,
    InvalidDescriptor,
    InvalidField,
    Merchant,
    OriginalRef,
    StoredCredential,
    ThreeDSecure,
)

__all__ = [
    "UNKNOWN_CODE_MESSAGE",
    "Authorize",
    "Capture",
    "Card",
    "Channel",
    "CredentialReason",
    "Credit",
    "Descriptor",
    "Initiator",
    "InvalidCard",
    "InvalidDescriptor",
    "InvalidField",
    "IsoRequest",
    "Merchant",
    "OriginalRef",
    "Outcome",
    "Rebill",
    "Refund",
    "Result",
    "Reversal",
    "Sale",
    "StoredCredential",
    "ThreeDSecure",
    "build",
    "classify",
    "interpret",
    "repeat",
    "reversal_of",
]
