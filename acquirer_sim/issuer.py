"""The issuer's decisions: one decoded request in, one response dict out.

No sockets and no bytes here, so every rule can be tested by calling
:meth:`Issuer.handle` with a dict. The per-message path is a handful of dict
lookups: it runs 20,000 times a second on the server's event loop.

>>> from acquirer_sim.rules import default_rules
>>> issuer = Issuer(default_rules(), seed=1)
>>> req = {"t": "0100", "2": "4276990011343663", "3": "000000", "4": "000000001000",
...        "7": "0101120000", "11": "000001", "41": "TERM0001", "49": "840"}
>>> resp = issuer.handle(req)
>>> resp["t"], resp["39"], "38" in resp
('0110', '05', False)
"""

from __future__ import annotations

import calendar
import random
import time
from collections.abc import Callable

from acquirer_sim.ledger import Ledger, Record, RecordKey
from acquirer_sim.rules import CardRule, Rules
from switch.wire.cards import luhn_ok
from switch.wire.codec import Message

__all__ = ["Issuer", "response_mti"]

# Never echoed: PIN block and MACs are the sender's, 120..124 are private
# request data (CVV2 above all) that a response must not carry back.
_STRIP = ("52", "64", "120", "121", "122", "123", "124", "128")

# ECI values of a 3-D Secure authentication (full or attempted): they waive
# an A1 "SCA required" soft decline.
_SCA_ECI = frozenset({"05", "02", "06", "01"})

_NETWORK_CODES = frozenset({"001", "002", "301"})  # sign-on, sign-off, echo

_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

_FINANCIAL_KIND = {"00": "sale", "20": "refund", "26": "credit"}

# MESSAGES.md's required fields, checked only when [issuer] strict = true.
_COMMON = frozenset("2 3 4 7 11 12 13 18 22 25 32 37 41 42 43 49".split())
_STRICT: dict[str, frozenset[str]] = {
    "010": _COMMON | {"14"},
    "sale": _COMMON | {"14"},
    "refund": _COMMON - {"18"},
    "credit": _COMMON - {"18"},
    "022": frozenset("2 3 4 7 11 12 13 32 37 38 41 42 49 90".split()),
    "040": frozenset("2 3 4 7 11 32 37 41 42 49 90".split()),
    "042": frozenset("2 3 4 7 11 32 37 41 42 49 90".split()),
    "080": frozenset({"7", "11", "70"}),
}

_RESPONSE_MTI: dict[str, str] = {}


def response_mti(mti: str) -> str:
    """The response MTI of a request MTI; repeats answer like originals.

    >>> response_mti("0100"), response_mti("0421"), response_mti("0800")
    ('0110', '0430', '0810')
    """
    resp = _RESPONSE_MTI.get(mti)
    if resp is None:
        resp = _RESPONSE_MTI[mti] = f"{mti[:2]}{int(mti[2]) + 1}0"
    return resp


def _answer(msg: Message, code: str, auth_code: str | None = None) -> Message:
    resp = msg.copy()  # shallow: the strings are shared, nothing is mutated
    for k in _STRIP:
        if k in resp:
            del resp[k]
    resp["t"] = response_mti(msg["t"])
    resp["39"] = code
    if auth_code is not None:
        resp["38"] = auth_code
    return resp


class Issuer:
    """Card rules + ledger + repeat detection. One event loop owns it."""

    __slots__ = (
        "rules",
        "ledger",
        "repeats",
        "_cards",
        "_prefixes",
        "_default_balance",
        "_strict",
        "_rng",
        "_alnum",
        "_clock",
        "_yymm",
        "_month_from",
        "_month_until",
        "_known",
        "_handlers",
    )

    def __init__(
        self,
        rules: Rules,
        *,
        max_records: int = 500_000,
        seed: int | str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rules = rules
        self._cards: dict[str, CardRule] = rules.card_table()
        self._prefixes = rules.issuer.bin_prefixes
        self._default_balance = rules.issuer.default_balance
        self._strict = rules.issuer.strict
        self.ledger = Ledger(self._opening_balance, max_records)
        #: requests answered from the record of an earlier identical request
        self.repeats = 0
        self._rng = random.Random(seed)
        self._alnum = rules.issuer.auth_code == "alnum"
        self._clock = clock
        self._yymm = ""
        self._month_from = 0.0
        self._month_until = 0.0
        # PAN -> passes format, Luhn and BIN checks; a bench reuses few PANs
        # and the Luhn loop is the costliest check.
        self._known: dict[str, bool] = {}
        self._handlers: dict[str, Callable[[Message, RecordKey], Message]] = {
            "010": self._authorize,
            "020": self._financial,
            "022": self._capture,
            "040": self._reverse,
            "042": self._reverse,
        }

    def _opening_balance(self, pan: str) -> int:
        card = self._cards.get(pan)
        if card is not None and card.balance is not None:
            return card.balance
        return self._default_balance

    # -- entry point ----------------------------------------------------
    def handle(self, msg: Message) -> Message | None:
        """The response to ``msg`` (not modified), or None when nothing is owed.

        Nothing is owed to a message of a response class (0110, 0810, ...) or
        an MTI that is not four digits.
        """
        mti = msg["t"]
        if not mti.isdigit() or mti[2] in "13579":
            return None
        cls = mti[:3]
        if cls == "080":
            return self._network(msg)
        handler = self._handlers.get(cls)
        if handler is None:
            return _answer(msg, "12")
        key: RecordKey = (msg.get("41"), cls, msg.get("11"), msg.get("7"))
        rec = self.ledger.find(key)
        if rec is not None:
            # A resend (same DE 41, 11, 7, MTI class): same answer, no effect.
            self.repeats += 1
            return _answer(msg, rec.code, rec.auth_code if rec.code == "00" else None)
        return handler(msg, key)

    # -- card checks ----------------------------------------------------
    def _pan_known(self, pan: str) -> bool:
        ok = self._known.get(pan)
        if ok is None:
            ok = 12 <= len(pan) <= 19 and luhn_ok(pan) and pan.startswith(self._prefixes)
            if len(self._known) >= 100_000:
                self._known.clear()
            self._known[pan] = ok
        return ok

    def _current_yymm(self) -> str:
        now = self._clock()
        if not self._month_from <= now < self._month_until:
            t = time.gmtime(now)
            self._yymm = f"{t.tm_year % 100:02d}{t.tm_mon:02d}"
            nxt = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
            self._month_from = calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0))
            self._month_until = calendar.timegm((*nxt, 1, 0, 0, 0))
        return self._yymm

    def _check_card(self, msg: Message, pan: str) -> str | None:
        """The decline code for an authorization or sale, None to go on to the balance."""
        if not self._pan_known(pan):
            return "14"
        card = self._cards.get(pan)
        expiry = card.expiry if card is not None and card.expiry is not None else msg.get("14")
        if expiry is not None:
            if len(expiry) != 4 or not expiry.isdigit():
                return "30"
            # YYMM strings compare like dates within one century.
            if not "01" <= expiry[2:] <= "12" or expiry < self._current_yymm():
                return "54"
        if card is None:
            return None
        if card.cvv is not None:
            cvv = msg.get("120")
            if cvv is not None and cvv != card.cvv:
                return "N7"
        fixed = card.response
        if fixed == "00" or (fixed == "A1" and msg.get("121") in _SCA_ECI):
            return None
        return fixed

    def _new_auth_code(self) -> str:
        if self._alnum:
            return "".join(self._rng.choices(_ALNUM, k=6))
        return f"{self._rng.randrange(1_000_000):06d}"

    def _missing(self, msg: Message, required: str) -> bool:
        return self._strict and not _STRICT[required] <= msg.keys()

    def _remember(self, msg: Message, key: RecordKey, code: str, kind: str = "other") -> Message:
        """Answer ``code`` with no effect, and answer a resend the same way."""
        rrn = msg.get("37")
        self.ledger.add(Record(kind, key, None, 0, msg.get("49"), rrn, None, code, msg["t"]), listed=False)
        return _answer(msg, code)

    # -- handlers -------------------------------------------------------
    def _network(self, msg: Message) -> Message:
        code = msg.get("70")
        if code is None or self._missing(msg, "080"):
            return _answer(msg, "30")
        return _answer(msg, "00" if code in _NETWORK_CODES else "12")

    def _amount(self, msg: Message) -> int | None:
        """DE 4 when the request carries the basics (2, 4, 11, 41), else None."""
        amount = msg.get("4")
        if amount is None or not amount.isdigit() or "11" not in msg or "41" not in msg:
            return None
        return int(amount)

    def _authorize(self, msg: Message, key: RecordKey) -> Message:
        amount = self._amount(msg)
        pan = msg.get("2")
        if amount is None or pan is None or self._missing(msg, "010"):
            return _answer(msg, "30")
        if not msg.get("3", "000000").startswith("00"):
            return _answer(msg, "12")
        return self._debit(msg, key, "hold", pan, amount)

    def _financial(self, msg: Message, key: RecordKey) -> Message:
        amount = self._amount(msg)
        pan = msg.get("2")
        kind = _FINANCIAL_KIND.get(msg.get("3", "000000")[:2])
        if amount is None or pan is None:
            return _answer(msg, "30")
        if kind is None:
            return _answer(msg, "12")
        if self._missing(msg, kind):
            return _answer(msg, "30")
        if kind == "sale":
            return self._debit(msg, key, kind, pan, amount)
        # Refunds and credits only need a card of ours: the money goes to it.
        code = "00" if self._pan_known(pan) else "14"
        acct = self.ledger.account(pan) if code == "00" else None
        rec = Record(kind, key, acct, amount, msg.get("49"), msg.get("37"), None, code, msg["t"])
        if code != "00":
            self.ledger.add(rec, listed=False)
            return _answer(msg, code)
        rec.auth_code = self._new_auth_code()
        self.ledger.post(rec)
        return _answer(msg, code, rec.auth_code)

    def _debit(self, msg: Message, key: RecordKey, kind: str, pan: str, amount: int) -> Message:
        """Authorization (hold) or sale (debit): every card check, then the balance."""
        code = self._check_card(msg, pan)
        acct = None
        if code is None:
            acct = self.ledger.account(pan)
            code = "00" if amount <= acct.available else "51"
        rec = Record(kind, key, acct, amount, msg.get("49"), msg.get("37"), None, code, msg["t"])
        if code != "00":
            self.ledger.add(rec, listed=False)
            resp = _answer(msg, code)
            resp.pop("38", None)
            return resp
        rec.auth_code = self._new_auth_code()
        if kind == "hold":
            self.ledger.authorize(rec)
        else:
            self.ledger.post(rec)
        return _answer(msg, code, rec.auth_code)

    def _original(self, msg: Message) -> Record | None:
        de90 = msg.get("90")
        if de90 is not None:
            # DE 90: original MTI (4) + STAN (6) + DE 7 (10) + ...
            return self.ledger.find((msg.get("41"), de90[:3], de90[4:10], de90[10:20]))
        rrn = msg.get("37")
        auth = msg.get("38")
        if rrn is not None and auth is not None:
            return self.ledger.find_by_auth(rrn, auth)
        return None

    def _capture(self, msg: Message, key: RecordKey) -> Message:
        amount = self._amount(msg)
        if amount is None or self._missing(msg, "022"):
            return _answer(msg, "30")
        hold = self._original(msg)
        if hold is None:
            return self._remember(msg, key, "25")
        if hold.kind != "hold" or hold.code != "00":
            return self._remember(msg, key, "12")
        if hold.status == "captured":
            # A second completion for one authorization (a SAF resend with a
            # new STAN, say) is acknowledged but captures nothing more.
            return self._remember(msg, key, "00")
        if hold.status != "held":
            return self._remember(msg, key, "12")  # released or expired
        if amount > hold.amount + hold.amount * self.rules.issuer.overcapture_percent // 100:
            return self._remember(msg, key, "13")
        cap = Record("capture", key, hold.account, amount, msg.get("49"), hold.rrn, hold.auth_code, "00", msg["t"])
        self.ledger.capture(hold, cap)
        return _answer(msg, "00", None if "38" in msg else hold.auth_code)

    def _reverse(self, msg: Message, key: RecordKey) -> Message:
        if "11" not in msg or "41" not in msg or self._missing(msg, key[1]):
            return _answer(msg, "30")
        orig = self._original(msg)
        if orig is None:
            return self._remember(msg, key, "25")
        auth = None if "38" in msg else orig.auth_code
        if orig.reversed:
            # 0421 after 0420, or 0400 after 0420: the same answer, no effect.
            self.ledger.add(
                Record("other", key, None, 0, msg.get("49"), msg.get("37"), auth, "00", msg["t"]), listed=False
            )
            return _answer(msg, "00", auth)
        rev = Record("reversal", key, None, 0, orig.currency, orig.rrn, orig.auth_code, "00", msg["t"])
        self.ledger.reverse(orig, rev)
        return _answer(msg, "00", auth)
