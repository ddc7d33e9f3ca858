"""Issuer rules: BIN ranges, per-card behaviour and fault injection, from TOML.

The built-in rules live in ``default_rules.toml`` next to this module. A rules
file given by the operator is merged over them: ``[issuer]`` keys override
one by one, ``[[cards]]`` entries replace the default entry with the same
``pan`` (others are kept), and a ``faults`` key, when present, replaces the
default fault list as a whole (so ``faults = []`` clears it). ``[[secure3d]]``
entries (what the simulated directory server and ACS do with a card, see
``acs.py``) replace the default entry with the same ``pan``, as cards do.

>>> rules = default_rules()
>>> rules.issuer.bin_prefixes
('2', '4', '5')
>>> rules.card_table()["4276990011343663"].response
'05'
>>> rules.secure3d_for("4276838748917319").v1, rules.secure3d_for("4999999999999996").v2
('not_enrolled', 'frictionless')
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, cast

from acquirer_sim.errors import RulesError
from acquirer_sim.pan import mask_pan

__all__ = [
    "FAULT_ACTIONS",
    "CardRule",
    "FaultAction",
    "FaultRule",
    "IssuerSettings",
    "Rules",
    "SECURE3D_V1",
    "SECURE3D_V2",
    "Secure3dRule",
    "default_rules",
    "load_rules",
    "parse_rules",
]

FaultAction = Literal["delay", "no_reply", "close", "garbage"]
FAULT_ACTIONS: tuple[str, ...] = ("delay", "no_reply", "close", "garbage")

_AUTH_CODE_STYLES = ("digits", "alnum")
_CODE_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _fail(where: str, msg: str) -> RulesError:
    return RulesError(f"{where}: {msg}")


def _check_keys(where: str, doc: Mapping[str, Any], allowed: Iterable[str]) -> None:
    # Unknown keys are refused rather than ignored: a typo such as `balence`
    # would otherwise silently fall back to a default and mislead a test.
    extra = sorted(set(doc) - set(allowed))
    if extra:
        raise _fail(where, f"unknown key(s) {', '.join(extra)}")


def _int(where: str, key: str, value: Any, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(where, f"{key} must be an integer >= {minimum}")
    return value


def _digits(where: str, key: str, value: Any, lengths: range) -> str:
    if not isinstance(value, str) or not value.isascii() or not value.isdigit() or len(value) not in lengths:
        raise _fail(where, f"{key} must be a string of {lengths.start}..{lengths.stop - 1} digits")
    return value


@dataclass(frozen=True, slots=True)
class IssuerSettings:
    """How the simulated issuer treats every card without an entry of its own."""

    #: PANs starting with one of these are the issuer's; any other PAN answers 14.
    bin_prefixes: tuple[str, ...] = ("2", "4", "5")
    #: Opening balance of a card without a ``balance`` of its own, in minor units.
    default_balance: int = 100_000_000
    #: DE 38 alphabet: ``digits`` (``"012345"``) or ``alnum`` (digits + A-Z).
    auth_code: str = "digits"
    #: When true, a request missing any field MESSAGES.md lists as required
    #: answers 30; when false only the fields the simulator needs are required.
    strict: bool = False
    #: A completion (0220) may exceed its authorization by this percentage (an issuer's over-capture
    #: tolerance); beyond it, or with 0, it answers 13.
    overcapture_percent: int = 0

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any]) -> IssuerSettings:
        where = "[issuer]"
        _check_keys(where, doc, ("bin_prefixes", "default_balance", "auth_code", "strict", "overcapture_percent"))
        d = cls()
        prefixes = doc.get("bin_prefixes", list(d.bin_prefixes))
        if not isinstance(prefixes, list | tuple) or not prefixes:
            raise _fail(where, "bin_prefixes must be a non-empty list of digit strings")
        bins = tuple(_digits(where, "bin_prefixes", p, range(1, 12)) for p in prefixes)
        style = doc.get("auth_code", d.auth_code)
        if style not in _AUTH_CODE_STYLES:
            raise _fail(where, f"auth_code must be one of {', '.join(_AUTH_CODE_STYLES)}")
        strict = doc.get("strict", d.strict)
        if not isinstance(strict, bool):
            raise _fail(where, "strict must be true or false")
        return cls(
            bin_prefixes=bins,
            default_balance=_int(where, "default_balance", doc.get("default_balance", d.default_balance)),
            auth_code=style,
            strict=strict,
            overcapture_percent=_int(where, "overcapture_percent", doc.get("overcapture_percent", 0)),
        )


@dataclass(frozen=True, slots=True)
class CardRule:
    """One card with behaviour of its own. Unset fields fall back to the issuer's."""

    pan: str
    #: ``00`` follows the normal checks; any other code is the fixed answer to
    #: authorizations and sales (``A1`` is waived when 3-D Secure data is present).
    response: str = "00"
    #: Opening balance in minor units; None = the issuer's default_balance.
    balance: int | None = None
    #: Expected CVV2 (DE 120); None = any CVV2 is accepted.
    cvv: str | None = None
    #: The card's real expiry ``YYMM``: when set it is checked instead of DE 14.
    expiry: str | None = None
    #: Free text for humans (shown nowhere on the wire).
    note: str = ""

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any], index: int = 0) -> CardRule:
        where = f"[[cards]] #{index + 1}"
        _check_keys(where, doc, ("pan", "response", "balance", "cvv", "expiry", "note"))
        pan = _digits(where, "pan", doc.get("pan"), range(12, 20))
        where = f"[[cards]] {mask_pan(pan)}"
        response = doc.get("response", "00")
        if not isinstance(response, str) or len(response) != 2 or not set(response) <= _CODE_CHARS:
            raise _fail(where, "response must be a 2-character response code such as 05 or A1")
        balance = doc.get("balance")
        cvv = doc.get("cvv")
        expiry = doc.get("expiry")
        note = doc.get("note", "")
        if expiry is not None:
            expiry = _digits(where, "expiry", expiry, range(4, 5))
            if not 1 <= int(expiry[2:]) <= 12:
                raise _fail(where, "expiry must be YYMM with month 01..12")
        if not isinstance(note, str):
            raise _fail(where, "note must be a string")
        return cls(
            pan=pan,
            response=response,
            balance=None if balance is None else _int(where, "balance", balance),
            # The message names the key but never echoes the value: it is a CVV.
            cvv=None if cvv is None else _digits(where, "cvv", cvv, range(3, 5)),
            expiry=expiry,
            note=note,
        )


#: What the ACS does with a 3-D Secure 1 enrolment and PaReq.
SECURE3D_V1 = ("challenge", "attempt", "not_enrolled", "unavailable")
#: What the ACS answers an AReq (``challenge``: always; ``frictionless``: Y unless challengeIndicator 04).
SECURE3D_V2 = ("frictionless", "challenge", "rejected", "attempt", "unavailable", "not_supported")


@dataclass(frozen=True, slots=True)
class Secure3dRule:
    """What the simulated DS/ACS does with one card; a card without an entry gets the defaults."""

    pan: str
    #: 3DS1: ``challenge`` (enrolled, one-time code), ``attempt`` (enrolled, PaRes A at once),
    #: ``not_enrolled`` (enrolment N), ``unavailable`` (enrolment U).
    v1: str = "challenge"
    #: 3DS2: ``frictionless`` (Y; C when the AReq's challengeIndicator is 04), ``challenge`` (always C),
    #: ``rejected`` (N), ``attempt`` (A), ``unavailable`` (U), ``not_supported`` (prepare: supported false).
    v2: str = "frictionless"
    #: Whether the card has a 3DS Method URL (prepare's ``method_url``); never with ``not_supported``.
    method: bool = True
    note: str = ""

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any], index: int = 0) -> Secure3dRule:
        where = f"[[secure3d]] #{index + 1}"
        _check_keys(where, doc, ("pan", "v1", "v2", "method", "note"))
        pan = _digits(where, "pan", doc.get("pan"), range(12, 20))
        where = f"[[secure3d]] {mask_pan(pan)}"
        v1, v2 = doc.get("v1", "challenge"), doc.get("v2", "frictionless")
        if v1 not in SECURE3D_V1:
            raise _fail(where, f"v1 must be one of {', '.join(SECURE3D_V1)}")
        if v2 not in SECURE3D_V2:
            raise _fail(where, f"v2 must be one of {', '.join(SECURE3D_V2)}")
        method = doc.get("method", v2 != "not_supported")
        if not isinstance(method, bool):
            raise _fail(where, "method must be true or false")
        note = doc.get("note", "")
        if not isinstance(note, str):
            raise _fail(where, "note must be a string")
        return cls(pan=pan, v1=v1, v2=v2, method=method and v2 != "not_supported", note=note)


@dataclass(frozen=True, slots=True)
class FaultRule:
    """A misbehaviour applied to the requests it matches.

    Every condition given must match (PAN, DE 4 amount in minor units, MTI);
    a matching rule then fires with probability ``rate``. ``times`` caps how
    often it fires (None = forever). The first rule that fires wins.
    """

    action: FaultAction
    pan: str | None = None
    amount: int | None = None
    mti: str | None = None
    rate: float = 1.0
    delay_ms: int = 0
    times: int | None = None

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any], index: int = 0) -> FaultRule:
        where = f"fault #{index + 1}"
        if not isinstance(doc, Mapping):
            raise _fail(where, "must be a table/object")
        _check_keys(where, doc, ("action", "pan", "amount", "mti", "rate", "delay_ms", "times"))
        action = doc.get("action")
        if action not in FAULT_ACTIONS:
            raise _fail(where, f"action must be one of {', '.join(FAULT_ACTIONS)}")
        pan = doc.get("pan")
        amount = doc.get("amount")
        mti = doc.get("mti")
        rate = doc.get("rate", 1.0)
        times = doc.get("times")
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
            raise _fail(where, "rate must be a number in 0..1")
        return cls(
            action=cast(FaultAction, action),
            pan=None if pan is None else _digits(where, "pan", pan, range(12, 20)),
            amount=None if amount is None else _int(where, "amount", amount),
            mti=None if mti is None else _digits(where, "mti", mti, range(4, 5)),
            rate=float(rate),
            delay_ms=_int(where, "delay_ms", doc.get("delay_ms", 0)),
            times=None if times is None else _int(where, "times", times, minimum=1),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; the PAN is masked (the admin API shows this)."""
        out: dict[str, Any] = {"action": self.action, "rate": self.rate}
        if self.pan is not None:
            out["pan"] = mask_pan(self.pan)
        if self.amount is not None:
            out["amount"] = self.amount
        if self.mti is not None:
            out["mti"] = self.mti
        if self.action == "delay":
            out["delay_ms"] = self.delay_ms
        if self.times is not None:
            out["times"] = self.times
        return out


@dataclass(frozen=True, slots=True)
class Rules:
    """Everything the rules file says: issuer settings, cards, faults."""

    issuer: IssuerSettings = field(default_factory=IssuerSettings)
    cards: tuple[CardRule, ...] = ()
    faults: tuple[FaultRule, ...] = ()
    secure3d: tuple[Secure3dRule, ...] = ()

    def card_table(self) -> dict[str, CardRule]:
        """PAN -> rule, for the one dict lookup a request costs."""
        return {c.pan: c for c in self.cards}

    def secure3d_for(self, pan: str) -> Secure3dRule:
        """The card's 3-D Secure rule, or the defaults (enrolled, challenge; method URL, frictionless)."""
        for rule in self.secure3d:  # a handful of entries, asked once per 3-D Secure message
            if rule.pan == pan:
                return rule
        return Secure3dRule(pan)


def parse_rules(doc: Mapping[str, Any]) -> Rules:
    """Rules from a parsed document (the TOML shape), without the defaults."""
    _check_keys("rules", doc, _SECTIONS)
    issuer = doc.get("issuer", {})
    cards = doc.get("cards", [])
    faults = doc.get("faults", [])
    if not isinstance(issuer, Mapping):
        raise _fail("rules", "[issuer] must be a table")
    if not isinstance(cards, list) or not all(isinstance(c, Mapping) for c in cards):
        raise _fail("rules", "cards must be an array of tables ([[cards]])")
    if not isinstance(faults, list):
        raise _fail("rules", "faults must be an array of tables ([[faults]])")
    table: dict[str, CardRule] = {}
    for i, c in enumerate(cards):
        rule = CardRule.from_mapping(c, i)
        if rule.pan in table:
            raise _fail("rules", f"card {mask_pan(rule.pan)} is listed twice")
        table[rule.pan] = rule
    secure3d = doc.get("secure3d", [])
    if not isinstance(secure3d, list) or not all(isinstance(c, Mapping) for c in secure3d):
        raise _fail("rules", "secure3d must be an array of tables ([[secure3d]])")
    s3d: dict[str, Secure3dRule] = {}
    for i, c in enumerate(secure3d):
        entry = Secure3dRule.from_mapping(c, i)
        if entry.pan in s3d:
            raise _fail("rules", f"[[secure3d]] {mask_pan(entry.pan)} is listed twice")
        s3d[entry.pan] = entry
    return Rules(
        issuer=IssuerSettings.from_mapping(issuer),
        cards=tuple(table.values()),
        faults=tuple(FaultRule.from_mapping(f, i) for i, f in enumerate(faults)),
        secure3d=tuple(s3d.values()),
    )


_SECTIONS = ("issuer", "cards", "faults", "secure3d")


def _merge_by_pan(base: list[Any], over: Any, name: str) -> list[Any]:
    if not isinstance(over, list) or not all(isinstance(c, Mapping) for c in over):
        raise _fail("rules", f"{name} must be an array of tables ([[{name}]])")
    entries: dict[Any, Any] = {c.get("pan"): c for c in base}
    for c in over:
        entries.pop(c.get("pan"), None)  # re-insert so the file's order wins for its entries
        entries[c.get("pan")] = c
    return list(entries.values())


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    _check_keys("rules", over, _SECTIONS)
    merged: dict[str, Any] = dict(base)
    issuer = over.get("issuer", {})
    if not isinstance(issuer, Mapping):
        raise _fail("rules", "[issuer] must be a table")
    merged["issuer"] = {**base.get("issuer", {}), **issuer}
    merged["cards"] = _merge_by_pan(base.get("cards", []), over.get("cards", []), "cards")
    merged["secure3d"] = _merge_by_pan(base.get("secure3d", []), over.get("secure3d", []), "secure3d")
    if "faults" in over:
        merged["faults"] = over["faults"]
    return merged


def _default_doc() -> dict[str, Any]:
    text = resources.files("acquirer_sim").joinpath("default_rules.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def default_rules() -> Rules:
    """The built-in rules (``acquirer_sim/default_rules.toml``)."""
    return parse_rules(_default_doc())


def load_rules(path: str | Path | None = None) -> Rules:
    """The built-in rules, with the TOML file at ``path`` merged over them."""
    base = _default_doc()
    if path is None:
        return parse_rules(base)
    try:
        with open(path, "rb") as f:
            over = tomllib.load(f)
    except OSError as e:
        raise RulesError(f"cannot read rules file {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise RulesError(f"rules file {path} is not valid TOML: {e}") from None
    return parse_rules(_merge(base, over))
