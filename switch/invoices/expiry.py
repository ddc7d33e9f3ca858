"""The expiry of invoices: when an invoice's ``expires`` passes, its waiting order is closed and its ``expired``
callback written, once, whatever restarts.

Durable by construction: what is due is a query on ``payment_invoices.expires``
(:meth:`OrderRepo.expire_invoice_orders`, over the index of schemas/sql/023), not a timer kept in memory, so a
process that stops loses nothing: the next sweep of any serving process finds the same rows. Like the 3-D
Secure sweep (:mod:`switch.secure3d.sweep`) it runs in every serving process; each round claims at most
``batch`` orders with ``FOR UPDATE SKIP LOCKED``, so processes share the work and never close one twice.

An expired order becomes ``rejected`` with no operation (the gateway closed it; the issuer never saw it), and
its event is written in the same statement: the invoice's ``process_failed`` / ``expired`` callback
(:mod:`switch.webhooks.events`; 022's unique index keeps it to one).

Never both paid and expired: the page attaches the card only to a waiting order without one, and a waiting
order's first operation is added only while the order still waits (taking its row: :meth:`OrderRepo.add_operation`);
the close, holding the row, takes it only as those left it. So a cardholder paying at the
same instant either pays (the sweep finds a card just attached and leaves the order) or finds the page expired
(nothing sent). An attempt whose card went on more than ``abandoned_after`` seconds ago with nothing after it
(its process stopped) is closed too: should it wake up, its first operation is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from switch.background import CLOSE_TIMEOUT, Periodic
from switch.orders.repo import OrderRepo

__all__ = ["CLOSE_TIMEOUT", "ExpiryConfig", "InvoiceExpiry"]

log = logging.getLogger("isoswitch.invoices")


@dataclass(frozen=True, slots=True)
class ExpiryConfig:
    """How often invoices' expiries are swept (seconds) and how many orders one round closes at most.

    An invoice lives 14 minutes at least (seeds/002), so a sweep every 10 s makes its ``expired`` callback at
    most that late; the page refuses payment from ``expires`` on whether or not the sweep has run.
    """

    interval: float = 10.0
    batch: int = 100
    # Seconds after which a payment attempt (a card on the order, nothing sent, no 3-D Secure started) counts as
    # abandoned: longer than any attempt takes (the directory server's answer included).
    abandoned_after: float = 600.0

    def __post_init__(self) -> None:
        if self.interval <= 0 or self.batch < 1 or self.abandoned_after <= 0:
            raise ValueError("invoice expiry: need interval > 0, batch >= 1 and abandoned_after > 0")


class InvoiceExpiry(Periodic):
    """Closes the waiting orders of expired invoices every ``interval`` seconds (or when kicked)."""

    def __init__(self, orders: OrderRepo, clock: Callable[[], datetime], config: ExpiryConfig | None = None) -> None:
        """``clock``: the engine's (what ``expires`` is checked against; tests move it)."""
        # A failed sweep changed nothing (the database may be restarting): the next round finds the same rows.
        super().__init__(log=log, failed="sweep of expired invoices failed", interval=lambda: self.config.interval)
        self._orders = orders
        self._clock = clock
        self.config = config or ExpiryConfig()
        self.expired = 0  # orders this process closed

    async def close(self, *, timeout: float | None = None) -> None:
        """A running round gets ``timeout`` seconds, never more than ``CLOSE_TIMEOUT`` (its transaction rolls back
        when cancelled: nothing lost)."""
        await super().close(timeout=CLOSE_TIMEOUT if timeout is None else min(timeout, CLOSE_TIMEOUT))

    def more_due(self, done: int) -> bool:
        return done >= self.config.batch

    async def work_once(self) -> int:
        """One round: the due invoices' orders closed, their callbacks written; how many."""
        now = self._clock()
        abandoned = now - timedelta(seconds=self.config.abandoned_after)
        closed = await self._orders.expire_invoice_orders(now, self.config.batch, abandoned)
        self.expired += len(closed)
        if closed:
            log.info("expired invoices closed", extra={"count": len(closed)})
        return len(closed)
