"""Typed requests of the orders service: what a caller asks for, already in the switch's terms.

The REST front builds these from validated JSON (``http_front.orders.parse``);
a test or another adapter can build them directly. Shapes are checked by
whoever builds them; rules that need an order or a project (the currency of
a follow-up, minor units of an amount, the status table) are the service's,
and it raises :class:`~switch.orders.errors.InvalidInput` or
:class:`~switch.orders.errors.Rejected` for them.

Amounts are the decimal the caller wrote (``Decimal("9.99")``): how many
minor units that is depends on the currency, which for a follow-up is the
order's. ``currency`` None means the project's (new orders) or the order's
(follow-ups).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from switch.money import Currency
from switch.translate import Card, Channel, CredentialReason, Descriptor, Initiator, ThreeDSecure

__all__ = [
    "AmountRequest",
    "AuthorizeRequest",
    "CreateRequest",
    "CreditRequest",
    "Details",
    "DynamicDescriptor",
    "Oneclick",
    "OperationsQuery",
    "OrdersQuery",
    "PageOptions",
    "RebillRequest",
    "Recurring",
    "SecureData",
    "TokenPayRequest",
]


@dataclass(frozen=True, slots=True)
class Details:
    """What an order keeps of the request besides money and card (echoed by the views)."""

    client: dict[str, Any] = field(default_factory=dict)
    location: dict[str, Any] = field(default_factory=dict)
    custom_fields: dict[str, Any] = field(default_factory=dict)
    description: str | None = None
    merchant_order_id: str | None = None
    segment: str | None = None
    invoice_id: str | None = None


@dataclass(frozen=True, slots=True)
class DynamicDescriptor:
    descriptor: Descriptor  # DE 43
    shown: str  # the order's "descriptor" field: "BOOKSTORE LTD>Moscow"


@dataclass(frozen=True, slots=True)
class SecureData:
    """3-D Secure a merchant ran itself (an external MPI), or a wallet's cryptogram (DSRP, ``tokenized``)."""

    three_ds: ThreeDSecure  # DE 121-123
    shown: dict[str, Any]  # the order's "secure3d" (no CAVV: a cryptogram is never kept)
    tokenized: bool = False  # DSRP / wallet token: DE 22 810, no CVV or holder needed


@dataclass(frozen=True, slots=True)
class Recurring:
    """``options.exemption_mit`` and ``recurring_details``: the stored-credential data (DE 124).

    ``indicator`` is the merchant's (initiator, reason) when it named them;
    ``parent_order_id`` (an order of the project) or ``trace_id`` (the
    network's id of the series' first transaction) is the reference a
    merchant-initiated payment carries.
    """

    exemption_mit: bool = False
    parent_order_id: str | None = None
    trace_id: str | None = None
    indicator: tuple[Initiator, CredentialReason] | None = None


@dataclass(frozen=True, slots=True)
class Oneclick:
    """``extra_fields.oneclick``: the merchant's customer, whether to keep the card, which kept card to pay with."""

    customer_id: str  # 1-40 letters and digits
    bind: bool = True  # prechecked (default on): keep the card for the customer once authorized
    card_id: str | None = None  # pay with this kept card (no pan): else the customer's most recent one


@dataclass(frozen=True, slots=True)
class AuthorizeRequest:
    """A new order: 2-stage, or 1-stage (authorize + charge) with ``auto_charge``.

    ``card`` None: the card is the oneclick customer's kept card (``oneclick``), with ``cvv`` if given.
    """

    amount: Decimal
    card: Card | None
    currency: Currency | None = None
    details: Details = field(default_factory=Details)
    descriptor: DynamicDescriptor | None = None
    secure3d: SecureData | None = None
    recurring: bool = False
    auto_charge: bool | None = None  # None: the project's setting
    notification_url: str | None = None  # options.notification_url: the order's events are POSTed there too
    terminal: str | None = None  # options.terminal: DE 41 among the project's terminals
    stored: Recurring | None = None
    oneclick: Oneclick | None = None
    cvv: str | None = None  # with a kept card (oneclick): the CVV the customer typed now
    test_mode: bool = False  # a test-mode invoice's order: to the test destination ([routing] test)
    # How the card came: e-commerce (DE 25 59), or MOTO (DE 25 08: the portal's virtual terminal, a card keyed for
    # a phone or mail order; DE 22 stays 010, manual key entry). A MOTO order's source is "moto".
    channel: Channel = Channel.ECOMMERCE


@dataclass(frozen=True, slots=True)
class PageOptions:
    """How the hosted payment page of a created order looks and ends (seeds/003, Order creation options)."""

    expiration: timedelta | None = None  # None: the configured default; bounded by the service
    language: str = "en"
    template: str | None = None  # the merchant's layout id, kept (one layout is served today)
    mobile: bool = False
    return_url: str | None = None  # http(s) only; where the cardholder goes when the payment is done
    force3d: bool = False  # the page's payment goes through 3-D Secure
    terminal: str | None = None  # options.terminal: DE 41 among the project's terminals (None: the default)


@dataclass(frozen=True, slots=True)
class CreateRequest:
    """``POST /orders/create``: a new order (status new) that the cardholder pays on the hosted page."""

    amount: Decimal
    currency: Currency | None = None
    details: Details = field(default_factory=Details)
    descriptor: DynamicDescriptor | None = None
    recurring: bool = False
    auto_charge: bool | None = None  # None: the project's setting
    page: PageOptions = field(default_factory=PageOptions)
    notification_url: str | None = None  # options.notification_url
    oneclick: Oneclick | None = None  # extra_fields.oneclick: the page offers to keep the card (bind: prechecked)
    test_mode: bool = False  # a test-mode invoice's order: to the test destination ([routing] test)


@dataclass(frozen=True, slots=True)
class TokenPayRequest:
    """``POST /orders/token_pay``: a wallet token (``dsrp.token`` of ``dsrp.type``) instead of card data."""

    amount: Decimal
    token: str
    wallet_type: str  # apple_pay | google_pay
    currency: Currency | None = None
    details: Details = field(default_factory=Details)
    descriptor: DynamicDescriptor | None = None
    recurring: bool = False
    auto_charge: bool | None = None
    terminal: str | None = None


@dataclass(frozen=True, slots=True)
class RebillRequest:
    """A new order on a parent order's stored card, merchant-initiated."""

    amount: Decimal
    currency: Currency | None = None
    details: Details = field(default_factory=Details)
    descriptor: DynamicDescriptor | None = None
    recurring: bool = False  # or the parent's
    auto_charge: bool | None = None
    notification_url: str | None = None  # options.notification_url
    terminal: str | None = None  # options.terminal
    trace_id: str | None = None  # recurring_details.trace_id: DE 124's reference instead of the first RRN
    reason: CredentialReason | None = None  # recurring_details.indicator's (initiator M)


@dataclass(frozen=True, slots=True)
class CreditRequest:
    """A payout (OCT): to ``card``, or (``card`` None) to the card of the order it is made on."""

    amount: Decimal
    card: Card | None = None
    currency: Currency | None = None
    details: Details = field(default_factory=Details)
    descriptor: DynamicDescriptor | None = None
    terminal: str | None = None  # options.terminal


@dataclass(frozen=True, slots=True)
class AmountRequest:
    """Charge, refund or cancel: ``amount`` of the order (None: all that is left)."""

    amount: Decimal | None = None


@dataclass(frozen=True, slots=True)
class OrdersQuery:
    """``GET /orders/``: a page and every filter of seeds/003 (empty tuple / None: not filtered).

    Lists match exactly; ``client_name``, ``client_email`` and ``issuer_title``
    find a part, case-insensitively. ``created_from`` is inclusive,
    ``created_before`` exclusive.
    """

    page: int = 1
    page_size: int = 100
    status: tuple[str, ...] = ()
    created_from: datetime | None = None
    created_before: datetime | None = None
    merchant_order_id: tuple[str, ...] = ()
    card_type: tuple[str, ...] = ()
    card_subtype: tuple[str, ...] = ()
    location_ip: tuple[str, ...] = ()
    client_name: str | None = None
    client_email: str | None = None
    issuer_country: tuple[str, ...] = ()
    issuer_bin: tuple[str, ...] = ()
    issuer_title: str | None = None
    invoice_id: tuple[str, ...] = ()
    # Beyond seeds/003 (issue 13's portal filters, accepted by GET /orders/ too): ISO 4217 alpha codes, and the
    # order's amount in minor units, both bounds inclusive.
    currency: tuple[str, ...] = ()
    amount_min: int | None = None
    amount_max: int | None = None


@dataclass(frozen=True, slots=True)
class OperationsQuery:
    """``GET /operations/``: a page, statuses, types and a creation period."""

    page: int = 1
    page_size: int = 100
    status: tuple[str, ...] = ()
    type: tuple[str, ...] = ()
    created_from: datetime | None = None
    created_before: datetime | None = None
