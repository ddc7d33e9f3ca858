"""Request bodies of the orders API as the service's typed requests, or a validation error.

The bodies have already passed their JSON Schemas (``http_front.validation``);
this is the second half: values that need the switch's tables (currency
codes, DE formats, the dynamic descriptor's length rules) become
:mod:`switch.orders.requests` values, and anything they refuse becomes an
:class:`~switch.orders.errors.InvalidInput` whose problem names the attribute
(``card/cvv``; the 422 body shows it as ``#/card/cvv``). No message ever
carries the card data. Minor units are the service's: a follow-up's
currency is its order's.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from http_front.orders.choices import (
    indicator_of,
    kept_card_cvv,
    merchant_initiated,
    oneclick_of,
    recurring_of,
    terminal_of,
    trace_id_of,
    waived,
)
from http_front.orders.fields import check_cvv, flag, section, text, translation_error, validation
from switch.errors import TranslationError
from switch.money import Currency, currency, decimal_of
from switch.orders.errors import InvalidInput, Problem
from switch.orders.pages import parse_timeout
from switch.orders.requests import (
    AmountRequest,
    AuthorizeRequest,
    CreateRequest,
    CreditRequest,
    Details,
    DynamicDescriptor,
    PageOptions,
    RebillRequest,
    SecureData,
    TokenPayRequest,
)
from switch.orders.wallet import dsrp_data
from switch.store.projects import PAGE_TEMPLATES, ProjectSettings
from switch.translate import Card, CredentialReason, Descriptor, Initiator, InvalidField, ThreeDSecure
from switch.webhooks.policy import UrlRefused, check_form

__all__ = [
    "amount_request",
    "authorize_request",
    "card_of",
    "create_request",
    "credit_request",
    "descriptor_of",
    "rebill_request",
    "secure3d_of",
    "token_pay_request",
    "waived",
]

# seeds/003, Dynamic descriptor: merchant <= 22, merchant + city <= 37.
MAX_DESCRIPTOR_MERCHANT = 22
MAX_DESCRIPTOR_TOTAL = 37


def currency_of(body: Mapping[str, Any]) -> Currency | None:
    """``currency``, None when absent (the service takes the project's or the order's)."""
    raw = body.get("currency")
    if raw is None:
        return None
    try:
        return currency(raw)
    except TranslationError:
        raise validation("Unknown currency", "currency") from None


def amount_of(body: Mapping[str, Any], *, required: bool = True) -> Decimal | None:
    """``amount`` as the decimal the client wrote: a decimal string, or a JSON number as the doc's examples send."""
    raw = body.get("amount")
    if raw is None:
        if required:
            raise InvalidInput.required("amount")
        return None
    if isinstance(raw, bool):
        raise validation("Must be a decimal amount", "amount")
    if isinstance(raw, float):
        # A JSON number parsed as float: its shortest repr is the text the client wrote.
        raw = Decimal(repr(raw))
    if not isinstance(raw, str | int | Decimal):
        raise validation("Must be a decimal amount", "amount")
    try:
        return decimal_of(raw)
    except TranslationError as e:
        raise translation_error(e, "amount") from None


def card_of(
    body: Mapping[str, Any], *, need_expiry: bool = True, need_cvv: bool = False, need_holder: bool = False
) -> Card:
    """``pan`` and ``card{cvv, holder, expiration_month, expiration_year}`` as a translate Card."""
    pan = body.get("pan")
    if pan is None:
        raise InvalidInput.required("pan")
    if isinstance(pan, int) and not isinstance(pan, bool):
        pan = str(pan)
    if not isinstance(pan, str):
        raise validation("Must be a string of digits", "pan")
    card = section(body, "card")
    month, year = card.get("expiration_month"), card.get("expiration_year")
    if need_expiry:
        for name, value in (("expiration_month", month), ("expiration_year", year)):
            if value is None:
                raise InvalidInput.required(f"card/{name}")
    cvv = card.get("cvv")
    if need_cvv and cvv is None:
        raise InvalidInput.required("card/cvv")
    if need_holder and card.get("holder") is None:
        raise InvalidInput.required("card/holder")
    return make_card(pan, month, year, cvv, card.get("holder"), cvv_field="card/cvv")


def make_card(pan: str, month: object, year: object, cvv: object, holder: object, *, cvv_field: str) -> Card:
    for name, value in (("expiration_month", month), ("expiration_year", year)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | str)):
            raise validation("Must be a number", f"card/{name}")
    if cvv is not None and (isinstance(cvv, bool) or not isinstance(cvv, str | int)):
        raise validation("Must be a string of 3 or 4 digits", cvv_field)
    if holder is not None and not isinstance(holder, str):
        raise validation("Must be a string", "card/holder")
    try:
        return Card(
            pan,
            expiry_month=month,  # type: ignore[arg-type]
            expiry_year=year,  # type: ignore[arg-type]
            cvv=None if cvv is None else str(cvv),
            holder=holder,
        )
    except TranslationError as e:
        raise translation_error(e, cvv_field if isinstance(e, InvalidField) and e.field == "120" else None) from None


def descriptor_of(body: Mapping[str, Any]) -> DynamicDescriptor | None:
    """``extra_fields.dynamic_descriptor`` {merchant, city, country} under the doc's length rules."""
    dd = section(section(body, "extra_fields"), "dynamic_descriptor")
    if not dd:
        return None
    base = "extra_fields/dynamic_descriptor"
    merchant, city, country = dd.get("merchant"), dd.get("city", ""), dd.get("country")
    for name, value in (("merchant", merchant), ("country", country)):
        if value is None:
            raise InvalidInput.required(f"{base}/{name}")
    if not isinstance(merchant, str) or not isinstance(city, str) or not isinstance(country, str):
        raise validation("Must be strings", base)
    if len(merchant) > MAX_DESCRIPTOR_MERCHANT:
        raise validation(f"Must be at most {MAX_DESCRIPTOR_MERCHANT} characters", f"{base}/merchant")
    if len(merchant) + len(city) > MAX_DESCRIPTOR_TOTAL:
        raise validation(f"merchant and city together must be at most {MAX_DESCRIPTOR_TOTAL} characters", base)
    try:
        descriptor = Descriptor(merchant, city, country)
    except TranslationError as e:
        raise translation_error(e, base) from None
    return DynamicDescriptor(descriptor, f"{merchant}>{city}" if city else merchant)


def _eci(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not (value.isascii() and value.isdigit() and 1 <= len(value) <= 2):
        raise validation("Must be 1 or 2 digits", "secure3d/eci")
    return value


def _dsrp_of(s: Mapping[str, Any]) -> SecureData:
    """``secure3d{dsrp: 1, xid, cavv, eci?, dsrp_type?, dsrp_wallet_id?}``: a wallet token the merchant decrypted."""
    for name in ("xid", "cavv"):
        if not s.get(name):
            raise InvalidInput.required(f"secure3d/{name}")
    if s.get("ds_trans_id") is not None:
        raise validation("Not used with DSRP: the token's transaction id is xid", "secure3d/ds_trans_id")
    kind = s.get("dsrp_type") or "apple_pay"  # seeds/003: "If the type ... is not specified, the default is ApplePay"
    wallet_id = s.get("dsrp_wallet_id")
    if wallet_id is not None and kind != "masterpass":
        raise validation("Applies only to dsrp_type masterpass", "secure3d/dsrp_wallet_id")
    eci = _eci(s["eci"]) if s.get("eci") is not None else None
    try:
        return dsrp_data(kind, eci, s["cavv"], s["xid"], None if wallet_id is None else str(wallet_id))
    except TranslationError as e:
        raise translation_error(e) from None


def secure3d_of(body: Mapping[str, Any]) -> SecureData | None:
    """``secure3d{eci, cavv, xid, ds_trans_id}`` of a merchant that ran 3-D Secure itself (an external MPI),
    or ``secure3d{dsrp: 1, ...}`` (DSRP)."""
    s = section(body, "secure3d")
    if not s:
        return None
    if flag(s.get("dsrp")):
        return _dsrp_of(s)
    for name in ("dsrp_type", "dsrp_wallet_id"):
        if s.get(name) is not None:
            raise validation("Applies only with secure3d.dsrp 1", f"secure3d/{name}")
    if s.get("eci") is None:
        if any(s.get(name) for name in ("cavv", "xid", "ds_trans_id")):
            raise InvalidInput.required("secure3d/eci")  # an authentication result without its ECI means nothing
        return None
    eci = _eci(s["eci"])
    ident = s.get("ds_trans_id") or s.get("xid")
    try:
        three_ds = ThreeDSecure(eci.zfill(2), cavv=s.get("cavv"), xid=ident)
    except TranslationError as e:
        raise translation_error(e) from None
    shown: dict[str, Any] = {"eci": str(int(eci)), "scenario": "external"}
    if s.get("xid"):
        shown["xid"] = s["xid"]
    if s.get("ds_trans_id"):
        shown["ds_trans_id"] = s["ds_trans_id"]
        shown["version"] = "2"
    return SecureData(three_ds, shown)


def _scalars(obj: dict[str, Any], field: str) -> dict[str, Any]:
    """An object of scalars as the doc echoes them: numbers become strings (``"zip": 152589`` -> ``"152589"``)."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if value is None or isinstance(value, str):
            out[key] = value
        elif isinstance(value, bool):
            out[key] = "1" if value else "0"
        elif isinstance(value, int | float | Decimal):
            out[key] = str(value)
        else:
            raise validation("Must be a string", f"{field}/{key}")
    return out


def details_of(body: Mapping[str, Any]) -> Details:
    custom = section(body, "custom_fields")
    attributes = section(section(body, "extra_fields"), "attributes")
    return Details(
        client=_scalars(section(body, "client"), "client"),
        location=_scalars(section(body, "location"), "location"),
        custom_fields=dict(custom),
        description=text(body.get("description"), "description", limit=1024),
        merchant_order_id=text(body.get("merchant_order_id"), "merchant_order_id"),
        segment=text(body.get("segment"), "segment"),
        invoice_id=text(attributes.get("invoice_id"), "extra_fields/attributes/invoice_id"),
    )


def _auto_charge(options: Mapping[str, Any]) -> bool | None:
    return flag(options["auto_charge"]) if options.get("auto_charge") is not None else None


def notification_url_of(options: Mapping[str, Any]) -> str | None:
    """``options.notification_url``: an http(s) URL (whether its address is allowed is checked at delivery)."""
    raw = options.get("notification_url")
    if raw is None:
        return None
    try:
        check_form(raw)
    except UrlRefused as e:
        raise validation(str(e), "options/notification_url") from None
    return str(raw)


def authorize_request(body: Mapping[str, Any], settings: ProjectSettings | None = None) -> AuthorizeRequest:
    """``POST /orders/authorize``; ``settings`` (the project's) say whether cvv and holder are required."""
    options = section(body, "options")
    cur = currency_of(body)
    amount = amount_of(body)
    assert amount is not None
    secure = secure3d_of(body)
    oneclick = oneclick_of(body)
    dsrp = secure is not None and secure.tokenized
    stored = recurring_of(body)
    # Neither a wallet token nor a merchant-initiated payment has a CVV to give (and none is sent for a MIT).
    need_cvv = settings is not None and settings.cvv_required and not dsrp and not merchant_initiated(stored)
    need_holder = settings is not None and settings.holder_required and not dsrp
    card: Card | None = None
    cvv = None
    if body.get("pan") is None and oneclick is not None:
        if dsrp:
            raise validation("A kept card (oneclick) is not a wallet token", "secure3d/dsrp")
        cvv = kept_card_cvv(body, need_cvv)
    else:
        card = card_of(body, need_cvv=need_cvv, need_holder=need_holder)
        if oneclick is not None and oneclick.card_id is not None:
            raise validation("Pays with a kept card: send no pan", "extra_fields/oneclick/card_id")
    return AuthorizeRequest(
        amount=amount,
        card=card,
        currency=cur,
        details=details_of(body),
        descriptor=descriptor_of(body),
        secure3d=secure,
        recurring=flag(options.get("recurring")),
        auto_charge=_auto_charge(options),
        terminal=terminal_of(options),
        stored=stored,
        oneclick=oneclick,
        cvv=cvv,
        notification_url=notification_url_of(options),
    )


# Options of /orders/create that would change the page in ways it does not offer: refused when on, never ignored.
_UNOFFERED = {
    "apple_pay_enabled": "Apple Pay is not offered on the payment page",
    "google_pay_enabled": "Google Pay is not offered on the payment page",
    "static_link": "Static links are not enabled for this project",
}


def page_options(options: Mapping[str, Any]) -> PageOptions:
    """The hosted page's options of ``POST /orders/create`` (shapes already checked by schemas/rest/create.json)."""
    for name, message in _UNOFFERED.items():
        if flag(options.get(name)):
            raise validation(message, f"options/{name}")
    timeout = None
    if options.get("expiration_timeout") is not None:
        timeout = parse_timeout(options["expiration_timeout"])
        if timeout is None:
            raise validation("Must be seconds, or a number with s, m, h or d (30m)", "options/expiration_timeout")
    template = options.get("template")
    if template not in (None, "") and template not in PAGE_TEMPLATES:
        # seeds/003's options.template names the page's layout: ours are the project's templates, none other.
        raise validation(f"Must be one of {', '.join(PAGE_TEMPLATES)}", "options/template")
    return PageOptions(
        expiration=timeout,
        language=str(options.get("language") or "en"),
        template=None if template is None or template == "" else str(template),
        mobile=flag(options.get("mobile")),
        return_url=options.get("return_url") or None,
        force3d=flag(options.get("force3d")),
        terminal=options.get("terminal") or None,
    )


# What create accepts in its schema (seeds/003 lists them) but cannot apply to a page the cardholder pays on.
_PAGE_REFUSED = (
    "Not applicable to a payment page: the cardholder pays on it (cardholder-initiated, no series to refer to)"
)


def _page_refusals(body: Mapping[str, Any]) -> None:
    """422 naming each of ``options.exemption_mit`` (on), ``options.secure3d20_return_url`` (set) and
    ``recurring_details.*`` (any): accepted by the schema, they cannot apply to the page's payment."""
    options, details = section(body, "options"), section(body, "recurring_details")
    problems = []
    if flag(options.get("exemption_mit")):
        problems.append(Problem(_PAGE_REFUSED, "options/exemption_mit"))
    if options.get("secure3d20_return_url"):
        problems.append(
            Problem(
                "Not applicable to a payment page: it sends the cardholder to options.return_url",
                "options/secure3d20_return_url",
            )
        )
    sent = sorted(name for name, value in details.items() if value is not None)
    problems.extend(Problem(_PAGE_REFUSED, f"recurring_details/{name}") for name in sent)
    if problems:
        raise InvalidInput(problems=problems)


def create_request(body: Mapping[str, Any]) -> CreateRequest:
    """``POST /orders/create``: an order the cardholder pays on the hosted page."""
    _page_refusals(body)
    options = section(body, "options")
    cur = currency_of(body)
    amount = amount_of(body)
    assert amount is not None
    return CreateRequest(
        amount=amount,
        currency=cur,
        details=details_of(body),
        recurring=flag(options.get("recurring")),
        auto_charge=_auto_charge(options),
        page=page_options(options),
        notification_url=notification_url_of(options),
        oneclick=oneclick_of(body),
    )


def _not_applicable(body: Mapping[str, Any], what: str, names: tuple[str, ...]) -> None:
    """422 for each option of ``names`` that is on (a flag) or set (a URL): it cannot apply to ``what``."""
    options = section(body, "options")
    for name in names:
        value = options.get(name)
        on = bool(value) if name in _URL_OPTIONS else flag(value)
        if on:
            raise validation(f"Not applicable to {what}", f"options/{name}")


_URL_OPTIONS = frozenset({"return_url", "secure3d20_return_url"})
_THREE_DS_OPTIONS = ("force3d", "return_url", "secure3d20_return_url")


def rebill_request(body: Mapping[str, Any], order_id: str | None = None) -> RebillRequest:
    """``POST /orders/:id/rebill``: its ``cvv`` is checked for form and not kept (a MIT carries none).

    A rebill is merchant-initiated: ``exemption_mit`` 0 and an indicator for the cardholder are refused,
    as is 3-D Secure (nobody is there to authenticate); ``recurring_details.parent_order_id`` must be
    the order rebilled; ``trace_id`` is DE 124's reference, the indicator's reason DE 124's reason.
    """
    if body.get("cvv") is not None:
        check_cvv(body["cvv"], "cvv")
    options = section(body, "options")
    _not_applicable(body, "a rebill (merchant-initiated)", _THREE_DS_OPTIONS)
    if options.get("exemption_mit") is not None and not flag(options["exemption_mit"]):
        raise validation("A rebill is merchant-initiated", "options/exemption_mit")
    details = section(body, "recurring_details")
    parent = details.get("parent_order_id")
    if parent is not None and order_id is not None and str(parent) != order_id:
        raise validation("Must be the order rebilled", "recurring_details/parent_order_id")
    reason = None
    if details.get("indicator") is not None:
        initiator, reason = indicator_of(details["indicator"])
        if initiator is not Initiator.MERCHANT or reason is CredentialReason.FIRST:
            raise validation("A rebill is merchant-initiated: MR, MI or MU", "recurring_details/indicator")
    cur = currency_of(body)
    amount = amount_of(body)
    assert amount is not None
    return RebillRequest(
        amount=amount,
        currency=cur,
        details=details_of(body),
        descriptor=descriptor_of(body),
        recurring=flag(options.get("recurring")) or reason is CredentialReason.RECURRING,
        auto_charge=_auto_charge(options),
        notification_url=notification_url_of(options),
        terminal=terminal_of(options),
        trace_id=trace_id_of(details.get("trace_id")),
        reason=reason,
    )


def credit_request(body: Mapping[str, Any], *, with_card: bool) -> CreditRequest:
    """``POST /orders/credit`` (``with_card``: ``pan`` and ``card`` from the body) or ``/orders/:id/credit``.

    Of authorize's options a credit (OCT) takes ``terminal``; the others cannot apply and are refused,
    as is a CVV (an OCT carries none).
    """
    what = "a credit (OCT)"
    _not_applicable(body, what, (*_THREE_DS_OPTIONS, "auto_charge", "recurring", "exemption_mit"))
    details = section(body, "recurring_details")
    for name, value in details.items():
        if value is not None:
            raise validation(f"Not applicable to {what}", f"recurring_details/{name}")
    if section(body, "card").get("cvv") is not None:
        raise validation(f"Not sent with {what}", "card/cvv")
    card = card_of(body, need_expiry=False) if with_card else None
    cur = currency_of(body)
    amount = amount_of(body)
    assert amount is not None
    return CreditRequest(
        amount=amount,
        card=card,
        currency=cur,
        details=details_of(body),
        descriptor=descriptor_of(body),
        terminal=terminal_of(section(body, "options")),
    )


def token_pay_request(body: Mapping[str, Any]) -> TokenPayRequest:
    """``POST /orders/token_pay``: ``dsrp {type, token}`` and authorize's options but the card's and 3-D Secure's."""
    dsrp = section(body, "dsrp")
    for name in ("type", "token"):
        if dsrp.get(name) is None:
            raise InvalidInput.required(f"dsrp/{name}")
    kind, token = dsrp["type"], dsrp["token"]
    if kind not in ("apple_pay", "google_pay"):
        raise validation("Not in enum list: apple_pay, google_pay", "dsrp/type")
    if not isinstance(token, str) or not token:
        raise validation("Must be a string", "dsrp/token")
    options = section(body, "options")
    if flag(options.get("exemption_mit")):
        raise validation("A wallet payment is cardholder-initiated", "options/exemption_mit")
    for name, value in section(body, "recurring_details").items():
        if value is not None:
            raise validation("Not applicable to a wallet payment (cardholder-initiated)", f"recurring_details/{name}")
    cur = currency_of(body)
    amount = amount_of(body)
    assert amount is not None
    return TokenPayRequest(
        amount=amount,
        token=token,
        wallet_type=kind,
        currency=cur,
        details=details_of(body),
        descriptor=descriptor_of(body),
        recurring=flag(options.get("recurring")),
        auto_charge=_auto_charge(options),
        terminal=terminal_of(options),
    )


def amount_request(body: Mapping[str, Any] | None) -> AmountRequest:
    """Charge, refund, cancel: an optional ``amount``."""
    return AmountRequest(amount_of(body or {}, required=False))
