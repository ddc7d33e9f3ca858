"""What the ISO 8583 bench sends: the test cards, their mix, and the 0100s built from them.

Every request is an 0100 authorization of ``amount`` minor units built by
:func:`switch.translate.build`, the switch's own translation, so the bench
sends exactly what the switch would.

>>> card_cycle((80, 5, 5, 5, 5))
[0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bench.rrn import RrnGenerator
from switch.money import currency
from switch.translate import Authorize, Card, Merchant, build
from switch.wire.cards import mask_pan
from switch.wire.codec import Codec, Message
from switch.wire.dialect import Dialect
from switch.wire.framing import Framing

__all__ = [
    "DEFAULT_MIX",
    "TEST_CARDS",
    "AuthBuilder",
    "Template",
    "TestCard",
    "by_card",
    "card_cycle",
    "templates",
]


@dataclass(frozen=True, slots=True)
class TestCard:
    pan: str
    expect: str  # DE 39 the simulator's default rules give this card


# The orders API's test cards, as acquirer_sim/default_rules.toml answers them.
TEST_CARDS: tuple[TestCard, ...] = (
    TestCard("4111111111111111", "00"),
    TestCard("2222400060000007", "00"),
    TestCard("4276990011343663", "05"),
    TestCard("5555555555555599", "96"),
    TestCard("4000000000000002", "59"),
)
DEFAULT_MIX: tuple[int, ...] = (80, 5, 5, 5, 5)  # weights, in TEST_CARDS order

_ACQUIRER_ID = "412345"


def card_cycle(mix: tuple[int, ...]) -> list[int]:
    """Card indexes in a repeating order that follows the weights and spreads each card out.

    Smooth weighted round robin (nginx's upstream balancer); the weights
    reduced by their gcd give the cycle length.

    >>> card_cycle((1, 1, 0, 0, 0)), card_cycle((2, 1, 0, 0, 0))
    ([0, 1], [0, 1, 0])
    """
    g = 0
    for w in mix:
        g = math.gcd(g, w)
    weights = [w // g for w in mix]
    total = sum(weights)
    current = [0] * len(weights)
    out: list[int] = []
    for _ in range(total):
        for i, w in enumerate(weights):
            current[i] += w
        best = max(range(len(weights)), key=current.__getitem__)
        current[best] -= total
        out.append(best)
    return out


def by_card(
    codes: Mapping[tuple[int, str], int], key: str, expected: Callable[[TestCard], str | int]
) -> tuple[dict[str, int], dict[str, dict[str, Any]], int]:
    """``codes`` ((TEST_CARDS index, code) -> answers) per code, per card and against the card's ``expected``.

    Returns the answers per code; ``{masked PAN: {"expect": expected(card), key: {code: answers}}}``; and
    how many answers were not ``expected(card)``.
    """
    counts: dict[str, int] = {}
    cards: dict[str, dict[str, Any]] = {}
    unexpected = 0
    for (idx, code), n in sorted(codes.items()):
        counts[code] = counts.get(code, 0) + n
        card = TEST_CARDS[idx]
        expect = expected(card)
        entry = cards.setdefault(mask_pan(card.pan), {"expect": expect, key: {}})
        entry[key][code] = n
        if code != str(expect):
            unexpected += n
    return counts, cards, unexpected


def _merchant(terminal_id: str) -> Merchant:
    return Merchant(
        terminal_id=terminal_id,
        merchant_id="BENCHMERCHANT01",
        mcc="5999",
        name="ISOSWITCH BENCH",
        city="LOADGEN",
        country="US",
        acquirer_id=_ACQUIRER_ID,
    )


def _cards(now: datetime) -> list[Card]:
    # Valid for two more years (DE 14), whatever the date of the run.
    return [Card(c.pan, expiry_month=12, expiry_year=now.year + 2) for c in TEST_CARDS]


class AuthBuilder:
    """Fresh 0100 dicts, one per request, through the switch's translation (via-switch mode)."""

    __slots__ = ("_merchant", "_cards", "_amount", "_currency", "_rrns")

    def __init__(self, terminal_id: str, amount: int, currency_code: str) -> None:
        self._merchant = _merchant(terminal_id)
        self._cards = _cards(datetime.now(UTC))
        self._amount = amount
        self._currency = currency(currency_code)
        self._rrns = RrnGenerator(node_id=9)

    def message(self, card: int) -> Message:
        """The 0100 for test card ``card`` now; the link stamps DE 11."""
        op = Authorize(
            merchant=self._merchant,
            card=self._cards[card],
            amount=self._amount,
            currency=self._currency,
            rrn=self._rrns.next(),
        )
        return build(op, datetime.now(UTC))


@dataclass(frozen=True, slots=True)
class Template:
    """A framed 0100 with the offsets of what changes per request (direct mode)."""

    frame: bytes
    card: int
    de7: int  # offset of DE 7 (10 bytes)
    stan: int  # offset of DE 11 (6 bytes)
    rrn_tail: int  # offset of the last 6 bytes of DE 37


def _offset_of(codec: Codec, framing: Framing, msg: Message, key: str, prefix: str, width: int) -> int:
    """Where the last ``width`` characters of field ``key`` land in the framed message.

    Found by encoding twice with different values rather than computed, so it
    holds for every dialect (ASCII or binary bitmap) and framing.
    """
    a = framing.pack(codec.encode({**msg, key: prefix + "0" * width}))
    b = framing.pack(codec.encode({**msg, key: prefix + "9" * width}))
    diff = [i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y]
    if len(a) != len(b) or len(diff) != width or diff[-1] - diff[0] != width - 1:
        raise ValueError(f"cannot locate DE {key} in the encoded template")
    return diff[0]


def templates(dialect: Dialect, terminal_id: str, rrn_prefix: str, amount: int, currency_code: str) -> list[Template]:
    """One template per test card, in TEST_CARDS order.

    ``rrn_prefix`` is the ``YDDDHH`` of DE 37; its last six digits are patched
    per request (with the STAN, which is unique per terminal among requests
    in flight).
    """
    now = datetime.now(UTC)
    merchant = _merchant(terminal_id)
    cur = currency(currency_code)
    codec, framing = dialect.codec, dialect.framing
    out = []
    for idx, card in enumerate(_cards(now)):
        op = Authorize(merchant=merchant, card=card, amount=amount, currency=cur, rrn=rrn_prefix + "000000")
        msg = build(op, now)
        msg["11"] = "000000"
        out.append(
            Template(
                frame=framing.pack(codec.encode(msg)),
                card=idx,
                de7=_offset_of(codec, framing, msg, "7", "", 10),
                stan=_offset_of(codec, framing, msg, "11", "", 6),
                rrn_tail=_offset_of(codec, framing, msg, "37", rrn_prefix, 6),
            )
        )
    return out
