"""Reconciliation: the switch's books against the issuer simulator's ledger.

The switch keeps orders, their operations and the store-and-forward queue
(``saf``: a reversal it owes or delivered); the simulator's admin API
(``GET /ledger``) lists, per card, every hold, capture, sale, refund, credit
and reversal that had an effect. Both sides know a financial message by
what went out: DE 41 (terminal), the MTI class (``010``, ``020``, ``022``),
DE 11 (STAN) and DE 7 (transmission time) -- the simulator's record key and
the columns of ``operations`` -- so records are matched on that, then
compared (amount, currency, what became of them):

==========================  ================================================
switch                      issuer
==========================  ================================================
authorize success           a hold of that amount: ``held``; ``captured``
                            (for the charged amount) after a charge;
                            ``released`` after a reversal
charge / refund / credit    a capture / refund / credit of that amount, not
success                     reversed (reversed when its reversal went out)
any operation failed,       nothing, or an undone record (hold released,
error or declined           capture/refund reversed) when a reversal was
                            delivered (``saf`` row ``done``)
a success with a ``saf``    a difference, whatever the issuer shows: the
row of its own              merchant was told "approved" and the switch
                            reversed it
pending operation           a difference (nothing may stay in flight)
nothing                     every issuer record must match one operation;
                            a reversal must undo an operation the switch
                            reversed (merchant reverse or ``saf`` row)

A ``reverse`` operation undoes the last approved authorization or charge
before it: the merchant's authorization, or an ISO peer's sale or capture.
==========================  ================================================

A hold the simulator ``expired`` (forgot) is accepted in any case. Each
difference is one line without card data (order id, operation, STAN, RRN,
amounts); ``isoswitch reconcile`` (the ``isoswitch`` command package) prints them and
exits with status 1 when there is any.

>>> d = Difference("1", 2, "charge", "approved by the switch, no capture at the issuer")
>>> str(d)
'order 1 op 2 charge: approved by the switch, no capture at the issuer'
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from switch.money import currency

__all__ = ["Books", "Difference", "Report", "compare", "fetch_ledger", "load_books", "reconcile"]

DEFAULT_SIM_ADMIN = "http://127.0.0.1:8584"

# Issuer record kind of each switch operation type (a reverse shows as the hold's release).
_KIND = {"authorize": "hold", "charge": "capture", "refund": "refund", "credit": "credit"}
_LISTS = {"holds": "hold", "captures": "capture", "sales": "sale", "refunds": "refund", "credits": "credit"}
_CLASS = {"hold": "010", "capture": "022", "sale": "020", "refund": "020", "credit": "020"}

#: (DE 41 without padding, MTI class, DE 11, DE 7)
Key = tuple[str, str, str, str]


@dataclass(frozen=True, slots=True)
class Difference:
    """One line of the report; ``order_id`` None for an issuer record the switch does not know."""

    order_id: str | None
    operation_id: int | None
    what: str  # operation type, or the issuer record's kind
    detail: str

    def __str__(self) -> str:
        if self.order_id is None:
            return f"issuer {self.what}: {self.detail}"
        return f"order {self.order_id} op {self.operation_id} {self.what}: {self.detail}"


@dataclass(slots=True)
class Report:
    differences: list[Difference] = field(default_factory=list)
    orders: int = 0
    operations: int = 0
    issuer_records: int = 0
    matched: int = 0
    expired: int = 0  # holds the simulator forgot (accepted whatever the switch says)
    records_dropped: int = 0  # the simulator's forgotten records: old operations cannot be checked

    def summary(self) -> str:
        return (
            f"reconcile: {self.orders} orders, {self.operations} operations, {self.issuer_records} issuer records, "
            f"{self.matched} matched, {self.expired} expired holds, {len(self.differences)} differences"
            + (f" (issuer forgot {self.records_dropped} records)" if self.records_dropped else "")
        )


@dataclass(frozen=True, slots=True)
class Books:
    """The switch's side: operations (dicts of the columns below) and saf states per operation."""

    operations: list[dict[str, Any]]
    saf: dict[tuple[str, int], str]  # (order id, operation id) -> pending / manual / done


_OPERATIONS = """
SELECT op.order_id, op.id, op.type, op.status, op.amount, op.currency, op.rrn, op.mti, op.stan,
       op.transmission_time, op.terminal_id, op.processing_code
FROM operations op JOIN orders o ON o.id = op.order_id
WHERE ($1::timestamptz IS NULL OR o.created >= $1)
ORDER BY op.order_id, op.id
"""


async def load_books(pool: asyncpg.Pool, since: datetime | None = None) -> Books:
    """Operations of the orders created at or after ``since`` (all when None), and every saf row's state."""
    ops = [dict(r) for r in await pool.fetch(_OPERATIONS, since)]
    rows = await pool.fetch("SELECT order_id, operation_id, state FROM saf")
    saf = {(r["order_id"], r["operation_id"]): r["state"] for r in rows}
    return Books(ops, saf)


async def fetch_ledger(url: str, *, timeout: float = 30.0) -> dict[str, Any]:
    """``GET {url}/ledger`` of the simulator's admin API."""
    import aiohttp

    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
        session.get(url.rstrip("/") + "/ledger") as resp,
    ):
        resp.raise_for_status()
        body: dict[str, Any] = await resp.json()
        return body


async def reconcile(pool: asyncpg.Pool, sim_admin: str, since: datetime | None = None) -> Report:
    """Load both sides and :func:`compare` them."""
    books = await load_books(pool, since)
    return compare(books, await fetch_ledger(sim_admin))


def _op_key(op: Mapping[str, Any]) -> Key | None:
    if not (op["mti"] and op["stan"] and op["transmission_time"]):
        return None
    return ((op["terminal_id"] or "").rstrip(), op["mti"][:3], op["stan"], op["transmission_time"])


def _record_key(kind: str, rec: Mapping[str, Any]) -> Key:
    return ((rec.get("terminal") or "").rstrip(), _CLASS[kind], rec.get("stan") or "", rec.get("transmitted") or "")


def _undone(kind: str, rec: Mapping[str, Any]) -> bool:
    """The record no longer moves money (a released or forgotten hold, a reversed posting)."""
    if kind == "hold":
        return rec.get("status") in ("released", "expired")
    return bool(rec.get("reversed"))


def _cite(rec: Mapping[str, Any]) -> str:
    return f"stan {rec.get('stan')} rrn {rec.get('rrn')} amount {rec.get('amount')}"


def compare(books: Books, ledger: Mapping[str, Any]) -> Report:
    """Every difference between the switch's books and the issuer's ledger (module doc)."""
    report = Report(records_dropped=int(ledger.get("records_dropped") or 0))
    issuer: dict[Key, tuple[str, dict[str, Any]]] = {}
    reversals: list[dict[str, Any]] = []
    for card in ledger.get("cards", []):
        for name, kind in _LISTS.items():
            for rec in card.get(name, []):
                issuer[_record_key(kind, rec)] = (kind, rec)
        reversals.extend(card.get("reversals", []))
    report.issuer_records = len(issuer) + len(reversals)

    by_order: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for op in books.operations:
        by_order[op["order_id"]].append(op)
    report.orders = len(by_order)
    report.operations = len(books.operations)

    matched: set[Key] = set()
    # Operations the switch reversed (or owes a reversal of), by (order, op): the saf state or "merchant".
    reversed_by: dict[tuple[str, int], str] = {}
    by_class_stan: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for order_id, ops in by_order.items():
        # What a reverse undoes: the last approved authorization or charge before it (a merchant reverses
        # an authorization; an ISO peer also reverses its sale or capture, the order's "charge").
        undoable: dict[str, Any] | None = None
        for op in ops:
            state = books.saf.get((order_id, op["id"]))
            target = undoable if op["type"] == "reverse" else op
            if op["type"] in ("authorize", "charge") and op["status"] == "success":
                undoable = op
            if target is None:
                continue
            if op["type"] == "reverse" and op["status"] == "success":
                reversed_by[(order_id, target["id"])] = "merchant"
            elif state is not None:
                reversed_by.setdefault((order_id, target["id"]), state)
            key = _op_key(op)
            if key is not None:
                by_class_stan[(key[1], key[2])].append(op)

    for ops in by_order.values():
        for op in ops:
            report.differences.extend(_check(op, ops, issuer, matched, reversed_by, report))
            # The switch queues a reversal only for an operation whose outcome it did not know, and marks
            # that operation error: a success with one is an approval the merchant was given and the
            # switch then took back (whatever the issuer shows).
            saf_state = books.saf.get((op["order_id"], op["id"]))
            if op["status"] == "success" and saf_state is not None:
                report.differences.append(
                    Difference(
                        op["order_id"],
                        op["id"],
                        op["type"],
                        f"approved in the switch's books, yet the switch reversed it (saf {saf_state})",
                    )
                )

    for key, (kind, rec) in issuer.items():
        if key not in matched:
            state = "undone" if _undone(kind, rec) else "in effect"
            report.differences.append(
                Difference(None, None, kind, f"{_cite(rec)} ({state}): no operation in the switch")
            )
    report.matched = len(matched)

    report.differences.extend(_unexplained_reversals(reversals, by_class_stan, reversed_by, books.saf))
    return report


def _unexplained_reversals(
    reversals: Iterable[Mapping[str, Any]],
    by_class_stan: Mapping[tuple[str, str], list[dict[str, Any]]],
    reversed_by: Mapping[tuple[str, int], str],
    saf: Mapping[tuple[str, int], str],
) -> list[Difference]:
    """The issuer's reversals that no operation of the switch explains (its own, a merchant's, or one it owes)."""
    out: list[Difference] = []
    for rev in reversals:
        orig = rev.get("original") or {}
        own = ((rev.get("terminal") or "").rstrip(), "040", rev.get("stan") or "", rev.get("transmitted") or "")
        candidates = by_class_stan.get((str(orig.get("mti_class")), str(orig.get("stan"))), [])
        candidates = [c for c in candidates if orig.get("rrn") in (None, c["rrn"])] or candidates
        known = any((c["order_id"], c["id"]) in reversed_by or (c["order_id"], c["id"]) in saf for c in candidates)
        merchant = any(_op_key(op) == own for op in by_class_stan.get(("040", own[2]), []))
        if not (known or merchant):
            out.append(
                Difference(
                    None,
                    None,
                    "reversal",
                    f"of stan {orig.get('stan')} rrn {orig.get('rrn')} "
                    f"({rev.get('effect')}): the switch reversed no such operation",
                )
            )
    return out


def _last_approved(ops: Iterable[Mapping[str, Any]], kind: str) -> dict[str, Any] | None:
    found = None
    for op in ops:
        if op["type"] == kind and op["status"] == "success":
            found = op
    return dict(found) if found is not None else None


def _check(
    op: Mapping[str, Any],
    ops: Sequence[Mapping[str, Any]],
    issuer: Mapping[Key, tuple[str, dict[str, Any]]],
    matched: set[Key],
    reversed_by: Mapping[tuple[str, int], str],
    report: Report,
) -> list[Difference]:
    order_id, op_id, typ, status = op["order_id"], op["id"], op["type"], op["status"]

    def diff(detail: str) -> list[Difference]:
        return [Difference(order_id, op_id, typ, detail)]

    if status == "pending":
        return diff("still pending")
    kind = _KIND.get(typ)
    if op["mti"] == "0200" and (op["processing_code"] or "").startswith("00"):
        kind = "sale"
    if kind is None:
        return []  # a merchant reverse: checked as its authorization's release
    key = _op_key(op)
    found = issuer.get(key) if key is not None else None
    if found is not None and key is not None:
        matched.add(key)
    rec = found[1] if found is not None else None
    reversal = reversed_by.get((order_id, op_id))
    if status != "success":
        if rec is None or _undone(kind, rec):
            return []
        if reversal is None:
            return diff(f"{status} in the switch, approved at the issuer ({_cite(rec)})")
        if reversal != "done":
            return diff(f"reversal not delivered yet (saf {reversal}); the issuer's {kind} is in effect")
        return diff(f"reversal delivered, the issuer's {kind} still in effect ({_cite(rec)})")
    if rec is None:
        return diff(f"approved by the switch (stan {op['stan']}), no {kind} at the issuer")
    out: list[Difference] = []
    if int(rec.get("amount") or 0) != op["amount"]:
        out += diff(f"amount {op['amount']} in the switch, {rec.get('amount')} at the issuer")
    numeric = currency(op["currency"]).numeric
    if rec.get("currency") not in (None, numeric):
        out += diff(f"currency {numeric} in the switch, {rec.get('currency')} at the issuer")
    if kind == "hold":
        if rec.get("status") == "expired":
            report.expired += 1
            return out
        held_as = rec.get("status")
        if reversal is not None:  # the merchant reversed it, or the switch owes / delivered its reversal
            if held_as != "released":
                out += diff(
                    f"reversal not delivered yet (saf {reversal}); the issuer's hold is {held_as}"
                    if reversal in ("pending", "manual")
                    else f"hold is {held_as} at the issuer, released in the switch's books"
                )
            return out
        charge = _last_approved(ops, "charge")
        want = "captured" if charge is not None and (order_id, charge["id"]) not in reversed_by else "held"
        if held_as != want:
            out += diff(f"hold is {held_as} at the issuer, {want} in the switch's books")
        elif charge is not None and want == "captured" and int(rec.get("captured") or 0) != charge["amount"]:
            out += diff(f"charged {charge['amount']} in the switch, captured {rec.get('captured')} at the issuer")
        return out
    undone = bool(rec.get("reversed"))
    if undone and reversal is None:
        out += diff(f"reversed at the issuer, in effect in the switch ({_cite(rec)})")
    elif not undone and reversal is not None:
        out += diff(f"reversal owed (saf {reversal}), the issuer's {kind} is in effect")
    return out
