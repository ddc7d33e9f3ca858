"""Field values: checks, amounts, dates, processing codes, the card and its acceptor, private fields.

What one ISO 8583 field (or a few that travel together) may hold, checked
when the value is made, so that a request builder (:mod:`.requests`) never
meets a bad one. Errors name the DE and never carry card data.

>>> Descriptor("BOOKSTORE LTD", "Moscow", "ru").field43()[-2:], Channel.ECOMMERCE.value
('RU', '59')
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum, StrEnum

from switch.errors import TranslationError
from switch.money import MAX_MINOR, Currency, InvalidAmount, currency
from switch.wire.cards import mask_pan
from switch.wire.codec import Message

__all__ = [
    "Card",
    "Channel",
    "CredentialReason",
    "Descriptor",
    "Initiator",
    "InvalidCard",
    "InvalidDescriptor",
    "InvalidField",
    "Merchant",
    "OriginalRef",
    "StoredCredential",
    "ThreeDSecure",
]

# DE 3 processing codes (MESSAGES.md).
_PURCHASE = "000000"
_REFUND = "200000"
_CREDIT = "260000"

# DE 22 POS entry mode: card keyed now (e-commerce/MOTO) vs. taken from file.
_KEYED = "010"
_ON_FILE = "100"
# A tokenized e-commerce credential with its cryptogram (wallet token, DSRP): the card network
# convention "81" (PAN entered via e-commerce, including remote chip), no PIN capability.
_TOKENIZED = "810"

# DE 90's last part: no forwarding institution.
_NO_FORWARDER = "0" * 11


# -- errors ----------------------------------------------------------------


class InvalidField(TranslationError):
    """Caller input that does not fit its ISO 8583 field. ``field`` is the DE number."""

    def __init__(self, msg: str, *, field: str) -> None:
        super().__init__(f"{msg} (DE {field})")
        self.field = field


class InvalidCard(InvalidField):
    """Bad PAN, expiry or CVV. The text never carries the values themselves."""


class InvalidDescriptor(InvalidField):
    """A card acceptor name/location (DE 43) that cannot be sent."""


# -- small checks ----------------------------------------------------------


def _is_digits(s: object, lo: int, hi: int) -> bool:
    return isinstance(s, str) and lo <= len(s) <= hi and s.isascii() and s.isdigit()


def _is_text(s: object, lo: int, hi: int) -> bool:
    """Printable ASCII (0x20-0x7E), the ``ans`` character set, of lo..hi characters."""
    return isinstance(s, str) and lo <= len(s) <= hi and s.isascii() and s.isprintable()


def _check_rrn(rrn: object, field: str = "37") -> str:
    if not (isinstance(rrn, str) and len(rrn) == 12 and rrn.isascii() and rrn.isalnum()):
        raise InvalidField("RRN must be 12 letters or digits", field=field)
    return rrn


def _check_amount(amount: object, lowest: int) -> int:
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise InvalidAmount("amount must be an int of minor units")
    if not lowest <= amount <= MAX_MINOR:
        raise InvalidAmount(f"amount must be {lowest}..{MAX_MINOR} minor units (DE 4), not {amount}")
    return amount


# -- inputs ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Descriptor:
    """What the cardholder's statement shows: DE 43, 40 characters.

    Layout (the ISO 8583:1987 / card-network convention for DE 43): name in
    positions 1-25, city in 26-38, ISO 3166-1 alpha-2 country in 39-40; each
    part left-justified and space-filled. Longer names and cities are cut to
    fit rather than refused: the REST API already bounds them (name <= 22,
    name + city <= 37), and a short statement line beats a refused payment.

    >>> Descriptor("BOOKSTORE LTD", "Moscow", "ru").field43()
    'BOOKSTORE LTD            Moscow       RU'
    """

    name: str
    city: str
    country: str

    def __post_init__(self) -> None:
        if not _is_text(self.name, 1, 1000) or not self.name.strip():
            raise InvalidDescriptor("descriptor name must be printable ASCII and not blank", field="43")
        if not _is_text(self.city, 0, 1000):
            raise InvalidDescriptor("descriptor city must be printable ASCII", field="43")
        c = self.country
        if not (isinstance(c, str) and len(c) == 2 and c.isascii() and c.isalpha()):
            raise InvalidDescriptor("descriptor country must be an ISO 3166-1 alpha-2 code", field="43")

    def field43(self) -> str:
        """The 40-character DE 43 value."""
        return f"{self.name[:25]:<25}{self.city[:13]:<13}{self.country.upper()}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Merchant:
    """The card acceptor: one terminal of one merchant at one acquirer.

    ``terminal_id`` (DE 41, ans8) and ``merchant_id`` (DE 42, ans15) are
    space-filled on the right when shorter; ``mcc`` is DE 18; ``name``,
    ``city``, ``country`` make the default DE 43; ``acquirer_id`` is DE 32.
    """

    terminal_id: str
    merchant_id: str
    mcc: str
    name: str
    city: str
    country: str
    acquirer_id: str

    def __post_init__(self) -> None:
        if not _is_text(self.terminal_id, 1, 8) or not self.terminal_id.strip():
            raise InvalidField("terminal id must be 1-8 printable ASCII characters", field="41")
        if not _is_text(self.merchant_id, 1, 15) or not self.merchant_id.strip():
            raise InvalidField("merchant id must be 1-15 printable ASCII characters", field="42")
        if not _is_digits(self.mcc, 4, 4):
            raise InvalidField("MCC must be 4 digits", field="18")
        if not _is_digits(self.acquirer_id, 1, 11):
            raise InvalidField("acquiring institution id must be 1-11 digits", field="32")
        Descriptor(self.name, self.city, self.country)  # validates now, not at the first send

    @property
    def descriptor(self) -> Descriptor:
        """The default DE 43 when an operation brings no dynamic descriptor."""
        return Descriptor(self.name, self.city, self.country)


@dataclass(frozen=True, slots=True, repr=False)
class Card:
    """A card as the cardholder gave it. ``repr`` masks the PAN and hides the CVV.

    ``expiry_month`` is 1-12, ``expiry_year`` 2 or 4 digits (int or digit
    string, as the REST API sends either). Expiry may be left out for
    operations that do not carry DE 14 (capture, reversal, refund, credit).
    ``holder`` is kept for the caller; no field of our dialect carries it.
    """

    pan: str
    expiry_month: int | str | None = None
    expiry_year: int | str | None = None
    cvv: str | None = None
    holder: str | None = None

    def __post_init__(self) -> None:
        if not _is_digits(self.pan, 12, 19):
            n = len(self.pan) if isinstance(self.pan, str) else 0
            raise InvalidCard(f"PAN must be 12-19 digits (got {n} characters)", field="2")
        if (self.expiry_month is None) != (self.expiry_year is None):
            raise InvalidCard("expiry needs both month and year", field="14")
        self._expiry()  # validates month/year now
        if self.cvv is not None and not _is_digits(self.cvv, 3, 4):
            raise InvalidCard("CVV must be 3 or 4 digits", field="120")

    @property
    def expiry(self) -> str | None:
        """DE 14, ``YYMM``, or None when no expiry was given."""
        return self._expiry()

    def _expiry(self) -> str | None:
        if self.expiry_month is None or self.expiry_year is None:
            return None
        month = _as_int(self.expiry_month, 1, 2)
        if month is None or not 1 <= month <= 12:
            raise InvalidCard("expiry month must be 1-12", field="14")
        year = _as_int(self.expiry_year, 2, 4)
        if year is not None and year < 100:
            year += 2000
        if year is None or not 2000 <= year <= 2099:
            raise InvalidCard("expiry year must be YY or 20YY", field="14")
        return f"{year % 100:02d}{month:02d}"

    def __repr__(self) -> str:
        return f"Card(pan={mask_pan(self.pan)!r}, expiry={self.expiry!r}, cvv={self.cvv is not None})"


def _as_int(value: int | str, min_digits: int, max_digits: int) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _is_digits(value, min_digits, max_digits) and len(value) != 3:
        return int(value)
    return None


@dataclass(frozen=True, slots=True)
class ThreeDSecure:
    """3-D Secure results: ECI (DE 121), CAVV/AAV (DE 122), XID or 3DS2 DS transaction id (DE 123).

    ``eci`` None: none is sent (a wallet token without an ``eciIndicator``).
    """

    eci: str | None
    cavv: str | None = None
    xid: str | None = None

    def __post_init__(self) -> None:
        if self.eci is not None and not _is_digits(self.eci, 2, 2):
            raise InvalidField("ECI must be 2 digits", field="121")
        if self.cavv is not None and not _is_text(self.cavv, 1, 40):
            raise InvalidField("CAVV must be 1-40 printable ASCII characters", field="122")
        if self.xid is not None and not _is_text(self.xid, 1, 40):
            raise InvalidField("XID / DS transaction id must be 1-40 printable ASCII characters", field="123")

    def _fields(self) -> Message:
        out = {"121": self.eci} if self.eci is not None else {}
        if self.cavv is not None:
            out["122"] = self.cavv
        if self.xid is not None:
            out["123"] = self.xid
        return out


class Initiator(StrEnum):
    """Who starts a stored-credential transaction (DE 124, first character)."""

    CARDHOLDER = "C"
    MERCHANT = "M"


class CredentialReason(StrEnum):
    """Why the credential is used (DE 124, second character)."""

    FIRST = "F"  # cardholder-initiated, credential stored now
    RECURRING = "R"
    INSTALMENT = "I"
    UNSCHEDULED = "U"


@dataclass(frozen=True, slots=True)
class StoredCredential:
    """DE 124: initiator + reason, then the first transaction's reference when merchant-initiated.

    The reference is the network trace id of the first transaction when the
    merchant gave one (``trace_id``: Mastercard's Trace ID, Visa's
    Transaction ID), else its RRN (``first_rrn``).

    >>> StoredCredential(Initiator.MERCHANT, CredentialReason.RECURRING, "431822000001").field124()
    'MR431822000001'
    >>> StoredCredential(Initiator.MERCHANT, CredentialReason.UNSCHEDULED, trace_id="MCC8454300719").field124()
    'MUMCC8454300719'
    """

    initiator: Initiator
    reason: CredentialReason
    first_rrn: str | None = None
    trace_id: str | None = None

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "initiator", Initiator(self.initiator))
            object.__setattr__(self, "reason", CredentialReason(self.reason))
        except ValueError:
            raise InvalidField("stored credential initiator must be C|M and reason F|R|I|U", field="124") from None
        if self.initiator is Initiator.MERCHANT:
            if self.reason is CredentialReason.FIRST:
                raise InvalidField("a merchant-initiated transaction cannot be the first one", field="124")
            if self.first_rrn is None and self.trace_id is None:
                raise InvalidField(
                    "a merchant-initiated transaction needs the first transaction's RRN or trace id", field="124"
                )
            if self.first_rrn is not None:
                _check_rrn(self.first_rrn, field="124")
            if self.trace_id is not None and not (_is_text(self.trace_id, 1, 38) and self.trace_id.isalnum()):
                raise InvalidField("trace id must be 1-38 letters or digits", field="124")
        elif self.first_rrn is not None or self.trace_id is not None:
            raise InvalidField(
                "only merchant-initiated transactions carry the first transaction's reference", field="124"
            )

    @property
    def from_file(self) -> bool:
        """True when the PAN comes from the merchant's file rather than the cardholder now."""
        return self.reason is not CredentialReason.FIRST

    def field124(self) -> str:
        return f"{self.initiator}{self.reason}{self.trace_id or self.first_rrn or ''}"


class Channel(Enum):
    """How the card was presented: DE 25, POS condition code."""

    ECOMMERCE = "59"
    MOTO = "08"
    NORMAL = "00"


# -- the original of a capture, reversal or refund -------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class OriginalRef:
    """What a later message needs of an earlier one: DE 90 parts, RRN, auth code, amount.

    ``transmission_time`` is the original's DE 7 (``MMDDhhmmss``), ``amount``
    its minor units, ``acquirer_id`` its DE 32. Make it with
    :meth:`from_exchange` rather than by hand.
    """

    mti: str
    stan: str
    transmission_time: str
    rrn: str
    auth_code: str | None
    amount: int
    currency: Currency
    acquirer_id: str
    processing_code: str = _PURCHASE

    def __post_init__(self) -> None:
        if not _is_digits(self.mti, 4, 4):
            raise InvalidField("original MTI must be 4 digits", field="90")
        if not _is_digits(self.stan, 6, 6):
            raise InvalidField("original STAN must be 6 digits", field="90")
        if not _is_digits(self.transmission_time, 10, 10):
            raise InvalidField("original transmission time must be 10 digits MMDDhhmmss", field="90")
        _check_rrn(self.rrn)
        if self.auth_code is not None and not _is_text(self.auth_code, 6, 6):
            raise InvalidField("original auth code must be 6 characters", field="38")
        _check_amount(self.amount, 0)
        if not _is_digits(self.acquirer_id, 1, 11):
            raise InvalidField("original acquiring institution id must be 1-11 digits", field="90")
        if not _is_digits(self.processing_code, 6, 6):
            raise InvalidField("original processing code must be 6 digits", field="3")

    @classmethod
    def from_exchange(cls, request: Mapping[str, str], response: Mapping[str, str] | None = None) -> OriginalRef:
        """From a request as sent (with the link's DE 11) and its response, if any.

        Without a response (timeout, lost link: the reversal case) everything
        comes from the request. With one, the auth code and amount come from
        the response first (the 0220 of a capture carries the auth code in
        the request, a partial approval the approved amount in the response);
        every other part from the request first, the response's echo filling
        in what the request lacks.
        """
        resp: Mapping[str, str] = response or {}

        def pick(key: str, first: Mapping[str, str], second: Mapping[str, str]) -> str | None:
            value = first.get(key)
            return value if value is not None else second.get(key)

        parts: dict[str, str] = {}
        for key, name in (("t", "MTI"), ("11", "STAN"), ("7", "DE 7"), ("37", "RRN"), ("32", "DE 32"), ("49", "DE 49")):
            value = request.get(key) if key == "t" else pick(key, request, resp)
            if value is None:
                raise InvalidField(f"original has no {name}", field="90")
            parts[key] = value
        amount = pick("4", resp, request)
        if amount is None or not _is_digits(amount, 1, 12):
            raise InvalidField("original has no numeric amount", field="4")
        auth = pick("38", resp, request)
        if auth is not None and not auth.strip():
            auth = None
        return cls(
            mti=parts["t"],
            stan=parts["11"],
            transmission_time=parts["7"],
            rrn=parts["37"],
            auth_code=auth,
            amount=int(amount),
            currency=currency(parts["49"]),
            acquirer_id=parts["32"],
            processing_code=request.get("3", _PURCHASE),
        )

    def field90(self) -> str:
        """DE 90: MTI (4) + STAN (6) + DE 7 (10) + DE 32 zero-filled (11) + forwarding id (11 zeros).

        >>> ref = OriginalRef(mti="0100", stan="000123", transmission_time="1117220509", rrn="431822000001",
        ...                   auth_code="AUTH12", amount=999, currency=currency("USD"), acquirer_id="412345")
        >>> ref.field90()
        '010000012311172205090000041234500000000000'
        """
        return f"{self.mti}{self.stan}{self.transmission_time}{self.acquirer_id:0>11}{_NO_FORWARDER}"


# -- dates ------------------------------------------------------------------


def _times(now: datetime) -> tuple[str, str, str]:
    """DE 7 (UTC ``MMDDhhmmss``), DE 12 (``hhmmss``), DE 13 (``MMDD``) of one instant."""
    if not isinstance(now, datetime) or now.utcoffset() is None:
        raise TranslationError("now must be a timezone-aware datetime (UTC)")
    return _times_of_second(int(now.timestamp()))


# Many messages share a second at load; formatting the times once per second (and
# the acceptor once per merchant, in requests.py) halves the cost of build().
@functools.lru_cache(maxsize=8)
def _times_of_second(second: int) -> tuple[str, str, str]:
    u = datetime.fromtimestamp(second, UTC)
    mmdd = f"{u.month:02d}{u.day:02d}"
    hms = f"{u.hour:02d}{u.minute:02d}{u.second:02d}"
    return mmdd + hms, hms, mmdd
