"""Options of the orders API that choose how a payment goes on the wire: terminal, stored credential, oneclick.

``options.terminal`` (DE 41), ``options.exemption_mit`` and ``recurring_details``
(DE 124), ``extra_fields.oneclick`` (a kept card), and what a project or a
body waives of the authorize schema's required fields (cvv, holder, the card).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from http_front.orders.fields import check_cvv, flag, section, text, validation
from switch.orders.errors import InvalidInput
from switch.orders.requests import Oneclick, Recurring
from switch.store.projects import ProjectSettings
from switch.translate import CredentialReason, Initiator

__all__ = [
    "indicator_of",
    "kept_card_cvv",
    "merchant_initiated",
    "oneclick_of",
    "recurring_of",
    "terminal_of",
    "trace_id_of",
    "waived",
]

_CUSTOMER_ID = re.compile(r"[A-Za-z0-9]{1,40}", re.ASCII)
_KEPT_CARD = ("#/pan", "#/card", "#/card/expiration_month", "#/card/expiration_year", "#/card/holder")


def waived(settings: ProjectSettings, body: object) -> frozenset[str]:
    """What the authorize schema requires that this project or this body does not (``RequestSchemas.check``'s
    ``optional``): cvv and holder by the project's settings, both for DSRP, the card for a oneclick payment."""
    out: set[str] = set()
    if not settings.cvv_required:
        out.add("#/card/cvv")
    if not settings.holder_required:
        out.add("#/card/holder")
    if not isinstance(body, dict):
        return frozenset(out)
    s3 = body.get("secure3d")
    if isinstance(s3, dict) and flag(s3.get("dsrp")):
        out.update(("#/card/cvv", "#/card/holder"))  # seeds/003, DSRP: "not contained in the token"
    options, details = body.get("options"), body.get("recurring_details")
    indicator = details.get("indicator") if isinstance(details, dict) else None
    if (isinstance(options, dict) and flag(options.get("exemption_mit"))) or (
        isinstance(indicator, str) and indicator.strip().upper().startswith("M")
    ):
        out.add("#/card/cvv")  # a merchant-initiated payment has no cardholder to give one
    extra = body.get("extra_fields")
    oneclick = extra.get("oneclick") if isinstance(extra, dict) else None
    if isinstance(oneclick, dict) and oneclick.get("customer_id") is not None and "pan" not in body:
        out.update(_KEPT_CARD)
    return frozenset(out)


def merchant_initiated(stored: Recurring | None) -> bool:
    """Whether the payment is merchant-initiated: ``exemption_mit``, or an indicator for the merchant."""
    if stored is None:
        return False
    return stored.exemption_mit or (stored.indicator is not None and stored.indicator[0] is Initiator.MERCHANT)


def terminal_of(options: Mapping[str, Any]) -> str | None:
    """``options.terminal`` (empty: the project's default, as the seed's example sends ``""``)."""
    return text(options.get("terminal"), "options/terminal", limit=32) or None


# The card networks' MIT/CIT indicators (Mastercard DE 48 SE 22 SF 5, the form of the seed's example "m101"):
# their category as DE 124's reason. 1xx are credential-on-file kinds; M2xx are industry practices
# (partial shipment, delayed charge, no-show, resubmission), unscheduled to the issuer.
_NETWORK_INDICATORS = {
    "101": CredentialReason.UNSCHEDULED,  # credential on file, ad hoc
    "102": CredentialReason.RECURRING,  # standing order (variable amount and frequency)
    "103": CredentialReason.RECURRING,  # subscription (fixed amount and frequency)
    "104": CredentialReason.INSTALMENT,
}
_INDUSTRY_PRACTICE = frozenset({"205", "206", "207", "208"})


def indicator_of(value: object) -> tuple[Initiator, CredentialReason]:
    """``recurring_details.indicator``: a network MIT/CIT code (``M101``, ``C103``...; the seed's ``m101``) or
    DE 124's own pair (``MR``: merchant, recurring)."""
    text = value.strip().upper() if isinstance(value, str) else ""
    if len(text) == 4 and text[0] in "CM" and text[1:].isdigit():
        code = text[1:]
        if code in _NETWORK_INDICATORS:
            return Initiator(text[0]), _NETWORK_INDICATORS[code]
        if text[0] == "M" and code in _INDUSTRY_PRACTICE:
            return Initiator.MERCHANT, CredentialReason.UNSCHEDULED
    elif len(text) == 2 and text[0] in "CM" and text[1] in "FRIU":
        return Initiator(text[0]), CredentialReason(text[1])
    raise validation(
        "Must be a network MIT/CIT indicator (C101-C104, M101-M104, M205-M208) or DE 124's initiator C|M and"
        " reason F|R|I|U (e.g. MR: merchant, recurring)",
        "recurring_details/indicator",
    )


def trace_id_of(value: object) -> str | None:
    if value is None:
        return None
    if not (isinstance(value, str) and value.isascii() and value.isalnum() and 1 <= len(value) <= 38):
        raise validation("Must be 1-38 letters or digits", "recurring_details/trace_id")
    return value


def recurring_of(body: Mapping[str, Any]) -> Recurring | None:
    """``options.exemption_mit`` and ``recurring_details``; None when neither is there."""
    mit = flag(section(body, "options").get("exemption_mit"))
    details = section(body, "recurring_details")
    if not mit and not any(v is not None for v in details.values()):
        return None
    parent = text(details.get("parent_order_id"), "recurring_details/parent_order_id", limit=20)
    if parent is not None and not (parent.isascii() and parent.isdigit()):
        raise validation("Must be an order id", "recurring_details/parent_order_id")
    indicator = indicator_of(details["indicator"]) if details.get("indicator") is not None else None
    return Recurring(mit, parent, trace_id_of(details.get("trace_id")), indicator)


def oneclick_of(body: Mapping[str, Any]) -> Oneclick | None:
    """``extra_fields.oneclick {customer_id, prechecked, card_id}``."""
    oc = section(section(body, "extra_fields"), "oneclick")
    if not oc:
        return None
    base = "extra_fields/oneclick"
    customer = oc.get("customer_id")
    if customer is None:
        raise InvalidInput.required(f"{base}/customer_id")
    if isinstance(customer, int) and not isinstance(customer, bool):
        customer = str(customer)
    if not isinstance(customer, str) or _CUSTOMER_ID.fullmatch(customer) is None:
        raise validation("Must be 1-40 letters or digits", f"{base}/customer_id")
    card_id = oc.get("card_id")
    if card_id is not None:
        card_id = str(card_id) if isinstance(card_id, int) and not isinstance(card_id, bool) else card_id
        if not (isinstance(card_id, str) and card_id.isascii() and card_id.isdigit() and len(card_id) <= 18):
            raise validation("Must be the id of a kept card", f"{base}/card_id")
    bind = flag(oc["prechecked"]) if oc.get("prechecked") is not None else True
    return Oneclick(customer, bind, card_id)


def kept_card_cvv(body: Mapping[str, Any], need_cvv: bool) -> str | None:
    """The body of a payment with a kept card: no card data but the CVV."""
    card = section(body, "card")
    for name in ("expiration_month", "expiration_year", "holder"):
        if card.get(name) is not None:
            raise validation("Comes from the kept card: send only card.cvv", f"card/{name}")
    cvv = card.get("cvv")
    if cvv is None:
        if need_cvv:
            raise InvalidInput.required("card/cvv")
        return None
    check_cvv(cvv, "card/cvv")
    return str(cvv)
