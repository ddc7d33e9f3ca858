"""The cardholder books of the simulated issuer: balances, holds and postings.

Amounts are integer minor units of whatever currency DE 49 names. The ledger
is currency-agnostic on purpose: it never converts, so a card used in two
currencies simply sums their minor units. Tests use one currency per card.

Per card::

    available = balance - held
    balance   = opening_balance - captured - sold + refunded + credited

where ``held`` is the sum of holds still ``held`` and the four totals are net
of reversals, so the second line is an identity the books must satisfy.

Every answered request (0800 aside) leaves a :class:`Record`, found again by
its key (DE 41, MTI class, DE 11, DE 7) for repeats and for the DE 90 of a
later capture or reversal, or by DE 37 + DE 38. Only the newest
``max_records`` are kept; a forgotten hold that is still held is released as
if it had expired (status ``expired``), the totals stay exact.

>>> led = Ledger(lambda pan: 10_000)
>>> acct = led.account("4111111111111111")
>>> hold = Record("hold", ("T1", "010", "000001", "0101120000"), acct, 2_500, "840", "512345000001", "A1B2C3", "00")
>>> led.authorize(hold)
>>> acct.available, acct.balance
(7500, 10000)
>>> cap = Record("capture", ("T1", "022", "000002", "0101120100"), acct, 2_000, "840", "512345000001", "A1B2C3", "00")
>>> led.capture(hold, cap)
>>> acct.available, acct.balance, hold.status
(8000, 8000, 'captured')
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from acquirer_sim.pan import mask_pan

__all__ = ["CardAccount", "Ledger", "Record", "RecordKey"]

#: (DE 41 terminal, MTI class such as ``"010"``, DE 11 STAN, DE 7 time)
RecordKey = tuple[str | None, str, str | None, str | None]

AMOUNT_UNIT = "integer minor units of each message's DE 49 currency; never converted"


class CardAccount:
    """One card's books. ``records`` holds what had an effect, oldest first."""

    __slots__ = (
        "pan",
        "opening_balance",
        "balance",
        "held",
        "captured",
        "sold",
        "refunded",
        "credited",
        "reversals",
        "records",
    )

    def __init__(self, pan: str, opening_balance: int) -> None:
        self.pan = pan
        self.opening_balance = opening_balance
        self.balance = opening_balance
        self.held = 0
        self.captured = 0
        self.sold = 0
        self.refunded = 0
        self.credited = 0
        self.reversals = 0
        self.records: deque[Record] = deque()

    @property
    def available(self) -> int:
        return self.balance - self.held

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready view with the PAN masked."""
        lists: dict[str, list[dict[str, Any]]] = {
            "holds": [],
            "captures": [],
            "sales": [],
            "refunds": [],
            "credits": [],
            "reversals": [],
        }
        for rec in self.records:
            lists[_LIST_OF[rec.kind]].append(rec.snapshot())
        return {
            "pan": mask_pan(self.pan),
            "opening_balance": self.opening_balance,
            "balance": self.balance,
            "available": self.available,
            "held": self.held,
            "totals": {
                "captured": self.captured,
                "sold": self.sold,
                "refunded": self.refunded,
                "credited": self.credited,
                "reversals": self.reversals,
            },
            **lists,
        }


_LIST_OF = {
    "hold": "holds",
    "capture": "captures",
    "sale": "sales",
    "refund": "refunds",
    "credit": "credits",
    "reversal": "reversals",
}


class Record:
    """One answered request and, when approved, its effect on the books.

    ``kind`` is ``hold`` (0100), ``sale``/``refund``/``credit`` (0200),
    ``capture`` (0220), ``reversal`` (0400/0420) or ``other`` (answered
    without effect: format errors, unsupported requests).
    """

    __slots__ = (
        "kind",
        "key",
        "account",
        "amount",
        "currency",
        "rrn",
        "auth_code",
        "code",
        "status",
        "captured",
        "reversed",
        "link",
        "mti",
    )

    def __init__(
        self,
        kind: str,
        key: RecordKey,
        account: CardAccount | None,
        amount: int,
        currency: str | None,
        rrn: str | None,
        auth_code: str | None,
        code: str,
        mti: str = "",
    ) -> None:
        self.kind = kind
        self.key = key
        self.account = account
        self.amount = amount
        self.currency = currency
        self.rrn = rrn
        self.auth_code = auth_code
        self.code = code
        #: hold: held / captured / released / expired; others: posted or declined
        self.status = "declined" if code != "00" else "posted"
        self.captured = 0
        self.reversed = False
        #: hold -> its capture; capture -> its hold; reversal -> its original
        self.link: Record | None = None
        self.mti = mti

    def snapshot(self) -> dict[str, Any]:
        terminal, _cls, stan, tx_time = self.key
        out: dict[str, Any] = {
            "rrn": self.rrn,
            "stan": stan,
            "terminal": terminal,
            "transmitted": tx_time,
            "auth_code": self.auth_code,
            "amount": self.amount,
            "currency": self.currency,
        }
        kind = self.kind
        if kind == "hold":
            out["status"] = self.status
            out["captured"] = self.captured
        elif kind == "reversal":
            orig = self.link
            out["mti"] = self.mti
            if orig is not None:
                out["original"] = {"kind": orig.kind, "stan": orig.key[2], "rrn": orig.rrn, "mti_class": orig.key[1]}
            out["effect"] = self.status
        else:
            out["reversed"] = self.reversed
            if kind == "capture" and self.link is not None:
                out["hold_stan"] = self.link.key[2]
        return out


class Ledger:
    """Accounts plus the record index. Not thread-safe: one event loop owns it."""

    __slots__ = ("_opening", "max_records", "accounts", "_by_key", "_by_auth", "_fifo", "dropped")

    def __init__(self, opening_balance: Callable[[str], int], max_records: int = 500_000) -> None:
        if max_records < 1:
            raise ValueError("max_records must be >= 1")
        self._opening = opening_balance
        self.max_records = max_records
        self.accounts: dict[str, CardAccount] = {}
        self._by_key: dict[RecordKey, Record] = {}
        self._by_auth: dict[tuple[str, str], Record] = {}
        self._fifo: deque[Record] = deque()
        self.dropped = 0

    @property
    def records(self) -> int:
        """How many answered requests are remembered now."""
        return len(self._fifo)

    # -- lookups --------------------------------------------------------
    def account(self, pan: str) -> CardAccount:
        acct = self.accounts.get(pan)
        if acct is None:
            acct = self.accounts[pan] = CardAccount(pan, self._opening(pan))
        return acct

    def find(self, key: RecordKey) -> Record | None:
        """The record a request with this key left (a repeat, or DE 90's original)."""
        return self._by_key.get(key)

    def find_by_auth(self, rrn: str, auth_code: str) -> Record | None:
        """The approved 0100/0200 with this DE 37 + DE 38."""
        return self._by_auth.get((rrn, auth_code))

    # -- bookkeeping ----------------------------------------------------
    def add(self, rec: Record, *, listed: bool) -> None:
        """Remember ``rec``; ``listed`` puts it in its card's history too."""
        self._by_key[rec.key] = rec
        if rec.auth_code is not None and rec.kind in _AUTH_INDEXED and rec.rrn is not None:
            self._by_auth[(rec.rrn, rec.auth_code)] = rec
        if listed and rec.account is not None:
            rec.account.records.append(rec)
        self._fifo.append(rec)
        if len(self._fifo) > self.max_records:
            self._evict()

    def _evict(self) -> None:
        old = self._fifo.popleft()
        self.dropped += 1
        if self._by_key.get(old.key) is old:
            del self._by_key[old.key]
        if old.rrn is not None and old.auth_code is not None and self._by_auth.get((old.rrn, old.auth_code)) is old:
            del self._by_auth[(old.rrn, old.auth_code)]
        acct = old.account
        if acct is not None and acct.records and acct.records[0] is old:
            # Both deques are in arrival order, so a listed record evicted from
            # the global one is the oldest of its card's.
            acct.records.popleft()
        if old.kind == "hold" and old.status == "held" and acct is not None:
            old.status = "expired"
            acct.held -= old.amount
        # A hold and its capture point at each other: break the cycle so the
        # pair is freed by reference counting, with no full GC pass needed.
        old.link = None

    def authorize(self, rec: Record) -> None:
        """Approved 0100: hold the amount."""
        acct = rec.account
        assert acct is not None
        rec.status = "held"
        acct.held += rec.amount
        self.add(rec, listed=True)

    def post(self, rec: Record) -> None:
        """Approved 0200: debit a sale, credit a refund or an OCT credit."""
        acct = rec.account
        assert acct is not None
        kind = rec.kind
        if kind == "sale":
            acct.balance -= rec.amount
            acct.sold += rec.amount
        elif kind == "refund":
            acct.balance += rec.amount
            acct.refunded += rec.amount
        else:
            acct.balance += rec.amount
            acct.credited += rec.amount
        self.add(rec, listed=True)

    def capture(self, hold: Record, cap: Record) -> None:
        """Approved 0220 of ``cap.amount`` <= the hold: debit it, release the rest."""
        acct = hold.account
        assert acct is not None
        acct.held -= hold.amount
        acct.balance -= cap.amount
        acct.captured += cap.amount
        hold.status = "captured"
        hold.captured = cap.amount
        hold.link = cap
        cap.link = hold
        cap.account = acct
        self.add(cap, listed=True)

    def reverse(self, orig: Record, rev: Record) -> None:
        """Undo what ``orig`` did, once: the caller checked ``orig.reversed``."""
        orig.reversed = True
        rev.link = orig
        acct = orig.account
        rev.account = acct
        effect = "none"
        amount = 0
        if orig.code == "00" and acct is not None:
            kind = orig.kind
            if kind == "hold":
                cap = orig.link
                if orig.status == "captured" and cap is not None and not cap.reversed:
                    # A reversed authorization takes everything it led to with it.
                    self._uncapture(acct, orig, cap)
                    effect = "released_and_uncaptured"
                    amount = cap.amount
                elif orig.status == "held":
                    acct.held -= orig.amount
                    effect = "released"
                    amount = orig.amount
                if orig.status in ("held", "captured"):
                    orig.status = "released"
            elif kind == "capture":
                hold = orig.link
                if hold is not None:
                    self._uncapture(acct, hold, orig)
                    if self._by_key.get(hold.key) is hold:
                        # The authorization stands again; it may be captured anew.
                        hold.status = "held"
                        acct.held += hold.amount
                    else:
                        hold.status = "expired"  # forgotten: it could never be released
                    effect = "uncaptured"
                    amount = orig.amount
            elif kind == "sale":
                acct.balance += orig.amount
                acct.sold -= orig.amount
                effect, amount = "sale_undone", orig.amount
            elif kind in ("refund", "credit"):
                acct.balance -= orig.amount
                if kind == "refund":
                    acct.refunded -= orig.amount
                else:
                    acct.credited -= orig.amount
                effect, amount = f"{kind}_undone", orig.amount
        rev.status = effect
        rev.amount = amount
        if effect != "none" and acct is not None:
            acct.reversals += 1
            self.add(rev, listed=True)
        else:
            self.add(rev, listed=False)

    @staticmethod
    def _uncapture(acct: CardAccount, hold: Record, cap: Record) -> None:
        acct.balance += cap.amount
        acct.captured -= cap.amount
        cap.reversed = True
        hold.captured = 0

    # -- reporting ------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """JSON-ready books of every card seen, PANs masked."""
        return {
            "amount_unit": AMOUNT_UNIT,
            "records": self.records,
            "records_dropped": self.dropped,
            "max_records": self.max_records,
            "cards": [a.snapshot() for a in self.accounts.values()],
        }


_AUTH_INDEXED = frozenset({"hold", "sale", "refund", "credit"})
