"""What an authorization's options choose on the wire: the terminal (DE 41), the stored credential (DE 124), the card.

- ``options.terminal``: DE 41 among the project's terminals
  (``ProjectSettings.terminal_id`` and ``terminals``); any other is a 422.
- ``options.exemption_mit`` and ``recurring_details``: DE 124. Without an
  ``indicator``, ``exemption_mit`` makes the payment merchant-initiated
  (``M`` + ``R`` when ``options.recurring``, else ``U``); its reference is the
  first transaction of the series: ``parent_order_id``'s (an order of the
  project), or the network ``trace_id`` the merchant gives. An ``indicator``
  (``MR``, ``CU`` ...) names initiator and reason itself. What cannot apply
  is refused: a reference on a cardholder-initiated payment, an MIT without
  one, an indicator for the cardholder with ``exemption_mit``.
- Without those, ``options.recurring`` or a card about to be kept (oneclick)
  is ``CF`` (credential stored now), a kept card paying now ``CU``.
- ``extra_fields.oneclick`` without a PAN: the customer's kept card
  (:mod:`switch.orders.oneclick`), the CVV typed now; a merchant-initiated
  payment on it refers to the order the card was kept from, unless it names
  its own reference.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from switch.errors import TranslationError
from switch.orders.cards import OrderCards
from switch.orders.engine import merchant_of
from switch.orders.errors import InvalidInput
from switch.orders.model import OperationType, Order
from switch.orders.oneclick import OneclickCards
from switch.orders.repo import OrderRepo
from switch.orders.requests import AuthorizeRequest, Oneclick
from switch.orders.verdicts import reached_issuer
from switch.store.projects import Project, ProjectSettings
from switch.translate import Card, CredentialReason, Initiator, Merchant, StoredCredential

__all__ = ["Series", "kept_card", "merchant_for", "sent_to_issuer", "series_of"]

_FIRST = frozenset({OperationType.AUTHORIZE, OperationType.CREDIT})


def sent_to_issuer(order: Order) -> bool:
    """``order``'s authorization (or OCT) reached the issuer: its RRN names a transaction the network saw.

    A 3-D Secure order that never got to its 0100 (failed or rejected authentication, expired), or one
    whose 0100 failed fast (not sent), is no series' first transaction.
    """
    return any(op.type in _FIRST and reached_issuer(op) for op in order.operations)


def merchant_for(settings: ProjectSettings, terminal: str | None) -> Merchant:
    """The project's acceptor on ``options.terminal`` (None: its default terminal)."""
    merchant = merchant_of(settings)
    try:
        chosen = settings.terminal(terminal)
    except LookupError:
        raise InvalidInput.one("Unknown terminal", "options/terminal") from None
    return merchant if chosen is None else dataclasses.replace(merchant, terminal_id=chosen)


@dataclass(frozen=True, slots=True)
class Series:
    """DE 124 of a new order, and the series it continues (its parent and the first RRN) if any."""

    stored: StoredCredential | None = None
    parent_id: str | None = None
    first_rrn: str | None = None


_CIT = Initiator.CARDHOLDER
_MIT = Initiator.MERCHANT


async def series_of(repo: OrderRepo, project: Project, req: AuthorizeRequest, kept_from: Order | None = None) -> Series:
    """The stored-credential data of an authorization (module doc); a database read only for a parent order.

    ``kept_from``: the order whose card a oneclick payment uses; a merchant-initiated one refers to it
    when the request names no parent order nor trace id.
    """
    kept = req.card is None
    binds = req.oneclick is not None and req.oneclick.bind and not kept
    r = req.stored
    if r is None:
        if kept:
            return Series(StoredCredential(_CIT, CredentialReason.UNSCHEDULED))
        if req.recurring or binds:
            return Series(StoredCredential(_CIT, CredentialReason.FIRST))
        return Series()
    if r.indicator is not None:
        initiator, reason = r.indicator
        if r.exemption_mit and initiator is _CIT:
            raise InvalidInput.one(
                "Conflicts with options.exemption_mit (merchant-initiated)", "recurring_details/indicator"
            )
    else:
        initiator = _MIT if r.exemption_mit else _CIT
        reason = CredentialReason.RECURRING if req.recurring else CredentialReason.UNSCHEDULED
    if initiator is _CIT:
        for name, value in (("parent_order_id", r.parent_order_id), ("trace_id", r.trace_id)):
            if value is not None:
                raise InvalidInput.one(
                    "Applies only to a merchant-initiated payment (options.exemption_mit)", f"recurring_details/{name}"
                )
        return Series(_stored(_CIT, reason, None, None))
    parent_id = first_rrn = None
    if r.parent_order_id is None and r.trace_id is None and kept_from is not None:
        parent_id, first_rrn = kept_from.id, kept_from.initial_rrn or kept_from.rrn
    if r.parent_order_id is not None:
        parent = await repo.get(project.id, r.parent_order_id)
        if parent is None:
            raise InvalidInput.one("Order not found", "recurring_details/parent_order_id")
        if not sent_to_issuer(parent):
            raise InvalidInput.one(
                "Order has no transaction that reached the issuer", "recurring_details/parent_order_id"
            )
        parent_id, first_rrn = parent.id, parent.initial_rrn or parent.rrn
    if first_rrn is None and r.trace_id is None:
        where = "options/exemption_mit" if r.exemption_mit else "recurring_details/indicator"
        raise InvalidInput.one(
            "A merchant-initiated payment needs recurring_details.parent_order_id (with a transaction) or trace_id",
            where,
        )
    return Series(_stored(_MIT, reason, first_rrn, r.trace_id), parent_id, first_rrn)


def _stored(
    initiator: Initiator, reason: CredentialReason, first_rrn: str | None, trace_id: str | None
) -> StoredCredential:
    try:
        return StoredCredential(initiator, reason, first_rrn, trace_id)
    except TranslationError as e:
        raise InvalidInput.of_translation(e, "recurring_details/indicator") from None


async def kept_card(
    store: OneclickCards, repo: OrderRepo, cards: OrderCards, project: Project, oneclick: Oneclick, cvv: str | None
) -> tuple[Card, Order]:
    """The customer's kept card (with the CVV typed now) and the order it was kept from; 422 when there is none."""
    kept = await store.find(project.id, oneclick.customer_id, oneclick.card_id)
    source = None if kept is None else await repo.get(project.id, kept.order_id)
    if source is None:
        where = "card_id" if oneclick.card_id is not None else "customer_id"
        raise InvalidInput.one("No kept card for this customer", f"extra_fields/oneclick/{where}")
    card = cards.card(source)
    try:
        return dataclasses.replace(card, cvv=cvv), source
    except TranslationError as e:
        raise InvalidInput.of_translation(e, "card/cvv") from None
