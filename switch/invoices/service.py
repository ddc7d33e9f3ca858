"""Invoices (seeds/002): created by the merchant, paid by the cardholder on the hosted page.

An invoice owns an order made through the same service (DESIGN.md, "Invoices
and the portal"): creating one writes a waiting order (status ``new``) and a
hosted payment page of kind ``invoice`` for it; paying the page pays the
order. The invoice's status is read from its order (:mod:`switch.invoices.model`).
"""

from __future__ import annotations

from switch.invoices.services import PaymentServices

__all__ = ["Invoices"]


class Invoices:
    """The invoice service: payment services as data, and (below) the invoices themselves."""

    def __init__(self, services: PaymentServices) -> None:
        self.services = services
