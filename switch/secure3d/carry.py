"""What a direct authorize decides from its request and a 3-D Secure one must still send after the wait.

``POST /orders/authorize`` builds its 0100 at once; with 3-D Secure the 0100
leaves minutes later, from another request (the TermUrl, a CRes, /resume),
maybe on another process. What the request chose is decided (and refused, in
the seed's 422 shape) before the order waits, exactly as the direct path does,
then kept in the session row's ``extra`` (jsonb, ``schemas/sql/011``):

* ``terminal``: DE 41 as chosen among the project's terminals (``options.terminal``);
* ``stored``: DE 124 (``options.exemption_mit``, ``recurring_details.*``, ``recurring``,
  a card about to be kept) as initiator, reason and the series' reference;
* ``descriptor``: DE 43 of ``extra_fields.dynamic_descriptor`` (name, city, country);
* ``oneclick``: the customer the card is kept for once authorized;
* ``auto_charge``: the 1-stage choice.

None of it is card data: never a PAN, CVV or CAVV (011's check refuses such keys).
What the order itself keeps (notification URL, parent order, first RRN, client,
location, custom fields) is on the order before it is written.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from switch.orders.engine import merchant_of
from switch.orders.requests import AuthorizeRequest
from switch.store.projects import ProjectSettings
from switch.translate import CredentialReason, Descriptor, Initiator, Merchant, StoredCredential

__all__ = ["carried", "descriptor_of", "merchant_of_session", "stored_of"]


def carried(
    req: AuthorizeRequest, terminal_id: str, stored: StoredCredential | None, customer_id: str | None
) -> dict[str, Any]:
    """The session's ``extra`` for an authorize's later 0100 (module doc); JSON only, no card data."""
    extra: dict[str, Any] = {"auto_charge": req.auto_charge, "terminal": terminal_id}
    extra["stored"] = None if stored is None else _stored_json(stored)
    d = req.descriptor.descriptor if req.descriptor is not None else None
    if d is not None:
        extra["descriptor"] = {"name": d.name, "city": d.city, "country": d.country}
    if customer_id is not None:
        extra["oneclick"] = customer_id
    return extra


def _stored_json(s: StoredCredential) -> dict[str, Any]:
    return {"initiator": s.initiator.value, "reason": s.reason.value, "first_rrn": s.first_rrn, "trace_id": s.trace_id}


def merchant_of_session(settings: ProjectSettings, extra: dict[str, Any]) -> Merchant:
    """The acceptor of the later 0100: the terminal chosen when the order was taken (checked then)."""
    merchant = merchant_of(settings)
    terminal = extra.get("terminal")
    if isinstance(terminal, str) and terminal and terminal != merchant.terminal_id:
        return dataclasses.replace(merchant, terminal_id=terminal)
    return merchant


def stored_of(extra: dict[str, Any], recurring: bool) -> StoredCredential | None:
    """DE 124 of the later 0100. A session without ``stored`` (a hosted page's order) is what such an
    order always sent: credential stored now (``CF``) when recurring, else none."""
    if "stored" not in extra:
        return StoredCredential(Initiator.CARDHOLDER, CredentialReason.FIRST) if recurring else None
    s = extra["stored"]
    if not isinstance(s, dict):
        return None
    initiator, reason = Initiator(s["initiator"]), CredentialReason(s["reason"])
    return StoredCredential(initiator, reason, s.get("first_rrn"), s.get("trace_id"))


def descriptor_of(extra: dict[str, Any]) -> Descriptor | None:
    """DE 43 of ``extra_fields.dynamic_descriptor``; None: the project's own."""
    d = extra.get("descriptor")
    if not isinstance(d, dict):
        return None
    return Descriptor(str(d["name"]), str(d["city"]), str(d["country"]))
