"""The simulated 3-D Secure directory server (DS) and issuer ACS, served on the admin HTTP app.

Server to server (the switch, JSON):

=======  ========================  ===============================================================
POST     /ds/3ds1/enrol            ``{"pan", ...}`` -> ``{"enrolled": Y|N|U, "acs_url"?, "acct_id"?}``
POST     /ds/3ds2/prepare          ``{"pan"}`` -> ``{"supported", "method_url", "message_version"}``
POST     /ds/3ds2/authenticate     the AReq -> ``{"ares": JWS}``
GET      /ds/public-key            the ACS's public key (PEM), for tests and tools only
=======  ========================  ===============================================================

The cardholder's browser (HTML forms): ``/acs/3ds1`` (GET or POST ``PaReq, MD, TermUrl``) and its
``/acs/3ds1/submit``; ``/acs/3ds2/method``; ``/acs/3ds2/challenge`` (``creq, threeDSSessionData``) and its
``/acs/3ds2/challenge/submit``. Formats: ``switch/wire/threeds.py`` and the README's "3-D Secure"; what a card
does: the rules' ``[[secure3d]]`` entries.

What the ACS remembers between messages (card ids, challenges) lives in this process's memory, bounded and
expiring: a restart of the simulator forgets challenges in progress, as an ACS outage would.
"""

from __future__ import annotations

import base64
import logging
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import aiohttp
import orjson
from aiohttp import web
from yarl import URL

from acquirer_sim import acs_pages
from acquirer_sim.pan import mask_pan
from acquirer_sim.rules import Rules
from switch.wire.threeds import MessageError, Signer, decode_json, eci_for, fingerprint

__all__ = ["OTP", "Acs", "add_routes"]

log = logging.getLogger("isoswitch.sim.acs")

OTP = "1234"
MESSAGE_VERSION = "2.2.0"
# How long the ACS remembers a card id or a challenge: the life of a signed message.
TTL = 600.0
MAX_PENDING = 10_000
# The RReq must reach the 3DS server before the cardholder is sent on with the CRes.
RREQ_TIMEOUT = 10.0

T = TypeVar("T")


class _Expiring(Generic[T]):
    """A bounded dict whose entries expire ``ttl`` seconds after they were put (oldest first out)."""

    def __init__(self, ttl: float = TTL, maxlen: int = MAX_PENDING) -> None:
        self._ttl, self._maxlen = ttl, maxlen
        self._items: OrderedDict[str, tuple[float, T]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def _evict(self, now: float) -> None:
        # One TTL for all: insertion order is expiry order, so only the head needs looking at.
        while self._items:
            key, (deadline, _) = next(iter(self._items.items()))
            if deadline > now and len(self._items) <= self._maxlen:
                break
            del self._items[key]

    def put(self, key: str, value: T) -> None:
        now = time.monotonic()
        self._items[key] = (now + self._ttl, value)
        self._evict(now)

    def get(self, key: str) -> T | None:
        self._evict(time.monotonic())
        item = self._items.get(key)
        return None if item is None else item[1]

    def pop(self, key: str) -> T | None:
        self._evict(time.monotonic())
        item = self._items.pop(key, None)
        return None if item is None else item[1]


@dataclass(frozen=True, slots=True)
class _Challenge1:
    """A 3DS1 challenge shown to the cardholder, waiting for the code."""

    xid: str
    pan: str
    amount: Any
    currency: str
    merchant: str
    md: str
    term_url: str


@dataclass(frozen=True, slots=True)
class _Transaction2:
    """A 3DS2 transaction the ACS decided to challenge (by acsTransID)."""

    server_trans_id: str
    ds_trans_id: str
    pan: str
    amount: Any
    currency: str
    merchant: str
    notification_url: str
    server_url: str


@dataclass(slots=True)
class Acs:
    """The DS and ACS state: rules, the signing key, what is remembered between messages."""

    rules: Rules
    signer: Signer
    #: Base URL browsers reach the admin port at; None = the scheme and Host of each request.
    public_url: str | None = None
    otp: str = OTP
    accounts: _Expiring[str] = field(default_factory=_Expiring)
    challenges1: _Expiring[_Challenge1] = field(default_factory=_Expiring)
    challenges2: _Expiring[_Transaction2] = field(default_factory=_Expiring)
    session: aiohttp.ClientSession | None = None

    @classmethod
    def create(cls, rules: Rules, key_path: str | None = None, public_url: str | None = None) -> Acs:
        if key_path is not None:
            signer = Signer.load(key_path)
        else:
            signer = Signer.generate()
            log.warning(
                "no --acs-key: signing 3-D Secure messages with an ephemeral key, public key fingerprint %s "
                "(GET /ds/public-key)",
                fingerprint(signer.public_pem()),
            )
        return cls(rules, signer, public_url.rstrip("/") if public_url else None)

    def base(self, request: web.Request) -> str:
        return self.public_url or f"{request.scheme}://{request.host}"

    def sign(self, message_type: str, claims: Mapping[str, Any]) -> str:
        return self.signer.sign({"messageType": message_type, **claims})


ACS: web.AppKey[Acs] = web.AppKey("acs", Acs)


class _Bad(Exception):
    """A request the DS/ACS refuses (400): JSON for the switch, an error page for a browser."""


def _cavv() -> str:
    # A CAVV/AAV is 20 bytes, base64 (28 characters), as the schemes carry it.
    return base64.b64encode(secrets.token_bytes(20)).decode("ascii")


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _html(page: acs_pages.Page) -> web.Response:
    return web.Response(text=page.text, status=page.status, content_type="text/html", headers=page.headers)


def _str(doc: Mapping[str, Any], key: str, *, limit: int = 256, required: bool = True) -> str:
    value = doc.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value or len(value) > limit:
        raise _Bad(f"{key} must be a non-empty string of at most {limit} characters")
    return value


def _pan(doc: Mapping[str, Any]) -> str:
    pan = doc.get("pan")
    if not isinstance(pan, str) or not pan.isascii() or not pan.isdigit() or not 12 <= len(pan) <= 19:
        raise _Bad("pan must be a string of 12..19 digits")
    return pan


def _url(doc: Mapping[str, Any], key: str) -> str:
    value = _str(doc, key, limit=2048)
    url = URL(value)
    if url.scheme not in ("http", "https") or not url.host:
        raise _Bad(f"{key} must be an absolute http(s) URL")
    return value


def _amount(doc: Mapping[str, Any]) -> Any:
    # Shown to the cardholder and echoed in the signed answers as given (the switch compares it).
    amount = doc.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int | str) or not str(amount) or len(str(amount)) > 24:
        raise _Bad("amount must be a number or a decimal string")
    return amount


def _merchant_name(merchant: Any) -> str:
    if isinstance(merchant, Mapping):
        name = merchant.get("name") or merchant.get("id")
        if isinstance(name, str) and name:
            return name[:80]
    return "the merchant"


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        doc = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise _Bad("body is not JSON") from None
    if not isinstance(doc, dict):
        raise _Bad("body must be a JSON object")
    return doc


async def _form(request: web.Request) -> Mapping[str, str]:
    if request.method == "GET":
        return request.query
    form = await request.post()
    return {k: v for k, v in form.items() if isinstance(v, str)}


# -- the directory server ------------------------------------------------------------------------------


async def _public_key(request: web.Request) -> web.Response:
    return web.Response(body=request.app[ACS].signer.public_pem(), content_type="application/x-pem-file")


async def _enrol(request: web.Request) -> web.Response:
    acs = request.app[ACS]
    pan = _pan(await _body(request))
    rule = acs.rules.secure3d_for(pan)
    if rule.v1 == "not_enrolled":
        return _json({"enrolled": "N"})
    if rule.v1 == "unavailable":
        return _json({"enrolled": "U"})
    acct_id = secrets.token_urlsafe(18)
    acs.accounts.put(acct_id, pan)
    return _json({"enrolled": "Y", "acs_url": f"{acs.base(request)}/acs/3ds1", "acct_id": acct_id})


async def _prepare(request: web.Request) -> web.Response:
    acs = request.app[ACS]
    rule = acs.rules.secure3d_for(_pan(await _body(request)))
    supported = rule.v2 != "not_supported"
    method_url = f"{acs.base(request)}/acs/3ds2/method" if supported and rule.method else None
    return _json({"supported": supported, "method_url": method_url, "message_version": MESSAGE_VERSION})


# ARes outcome of a v2 rule that needs no cardholder: (transStatus, transStatusReason)
# (reasons, EMVCo: 01 card authentication failed, 14 transaction timed out at the ACS, 08 no card record)
_FRICTIONLESS = {
    "rejected": ("N", "01"),
    "attempt": ("A", None),
    "unavailable": ("U", "14"),
    "not_supported": ("U", "08"),
}


async def _authenticate(request: web.Request) -> web.Response:
    acs = request.app[ACS]
    doc = await _body(request)
    pan = _pan(doc)
    server_trans_id = _str(doc, "threeDSServerTransID", limit=64)
    amount, currency = _amount(doc), _str(doc, "currency", limit=3)
    merchant = doc.get("merchant")
    if not isinstance(merchant, Mapping) or not isinstance(doc.get("browser"), Mapping):
        raise _Bad("merchant and browser must be objects")
    if doc.get("threeDSCompInd", "U") not in ("Y", "N", "U"):
        raise _Bad("threeDSCompInd must be Y, N or U")
    indicator = doc.get("challengeIndicator", "01")
    if indicator not in ("01", "02", "03", "04"):
        raise _Bad("challengeIndicator must be 01..04")
    notification_url, server_url = _url(doc, "notificationURL"), _url(doc, "threeDSServerURL")
    rule = acs.rules.secure3d_for(pan)
    claims: dict[str, Any] = {
        "messageVersion": MESSAGE_VERSION,
        "threeDSServerTransID": server_trans_id,
        "acsTransID": str(uuid.uuid4()),
        "dsTransID": str(uuid.uuid4()),
    }
    if rule.v2 == "challenge" or (rule.v2 == "frictionless" and indicator == "04"):
        acs.challenges2.put(
            claims["acsTransID"],
            _Transaction2(
                server_trans_id,
                claims["dsTransID"],
                pan,
                amount,
                currency,
                _merchant_name(merchant),
                notification_url,
                server_url,
            ),
        )
        claims |= {"transStatus": "C", "acsChallengeMandated": "Y", "acsURL": f"{acs.base(request)}/acs/3ds2/challenge"}
    else:
        status, reason = _FRICTIONLESS.get(rule.v2, ("Y", None))
        claims |= {"transStatus": status, "eci": eci_for(pan, status)}
        if status in ("Y", "A"):
            claims["authenticationValue"] = _cavv()
        if reason is not None:
            claims["transStatusReason"] = reason
    log.info("AReq %s: transStatus %s", mask_pan(pan), claims["transStatus"])
    return _json({"ares": acs.sign("ARes", claims)})


# -- the ACS, 3-D Secure 1 -----------------------------------------------------------------------------


def _pares(acs: Acs, c: _Challenge1, status: str) -> acs_pages.Page:
    claims: dict[str, Any] = {
        "version": "1.0.2",
        "xid": c.xid,
        "status": status,
        "eci": eci_for(c.pan, status),
        "amount": c.amount,
        "currency": c.currency,
    }
    if status in ("Y", "A"):
        claims["cavv"] = _cavv()
    log.info("PaRes %s: status %s", mask_pan(c.pan), status)
    fields = {"PaRes": acs.sign("PaRes", claims), "MD": c.md}
    return acs_pages.autopost(c.term_url, fields, title="Payment verified" if status in ("Y", "A") else "Not verified")


async def _acs1(request: web.Request) -> web.Response:
    acs = request.app[ACS]
    form = await _form(request)
    try:
        pareq = decode_json(form.get("PaReq", ""))
    except MessageError:
        raise _Bad("PaReq is not a valid request") from None
    if pareq.get("messageType") != "PaReq":
        raise _Bad("PaReq is not a valid request")
    term_url = _url(form, "TermUrl")
    md = _str(form, "MD", limit=4096, required=False)
    pan = acs.accounts.get(_str(pareq, "acct_id", limit=64))
    if pan is None:
        raise _Bad("unknown or expired card reference (acct_id)")
    c = _Challenge1(
        _str(pareq, "xid", limit=64),
        pan,
        _amount(pareq),
        _str(pareq, "currency", limit=3),
        _merchant_name(pareq.get("merchant")),
        md,
        term_url,
    )
    if acs.rules.secure3d_for(pan).v1 == "attempt":
        return _html(_pares(acs, c, "A"))  # the issuer takes the attempt: no cardholder step
    challenge_id = secrets.token_urlsafe(18)
    acs.challenges1.put(challenge_id, c)
    page = acs_pages.challenge(
        "/acs/3ds1/submit",
        {"challenge": challenge_id},
        merchant=c.merchant,
        amount=f"{c.amount} {c.currency}",
        card=f"•••• {pan[-4:]}",
    )
    return _html(page)


def _code_matches(code: str, otp: str) -> bool:
    """The one-time code, compared in constant time as bytes (compare_digest refuses non-ASCII str)."""
    return secrets.compare_digest(code.encode("utf-8", "surrogatepass"), otp.encode("utf-8", "surrogatepass"))


async def _acs1_submit(request: web.Request) -> web.Response:
    acs = request.app[ACS]
    form = await _form(request)
    c = acs.challenges1.pop(form.get("challenge", ""))
    if c is None:
        raise _Bad("this verification has already been answered or has expired")
    return _html(_pares(acs, c, "Y" if _code_matches(form.get("code", ""), acs.otp) else "N"))


# -- the ACS, 3-D Secure 2 -----------------------------------------------------------------------------


async def _method(request: web.Request) -> web.Response:
    form = await _form(request)
    data = form.get("threeDSMethodData", "")
    try:
        doc = decode_json(data)
    except MessageError:
        raise _Bad("threeDSMethodData is not valid") from None
    _str(doc, "threeDSServerTransID", limit=64)
    notification_url = _url(doc, "threeDSMethodNotificationURL")
    # A real ACS fingerprints the browser here; the simulator only hands the data back.
    page = acs_pages.autopost(notification_url, {"threeDSMethodData": data}, title="One moment", message="…")
    return _html(page)


async def _challenge2(request: web.Request) -> web.Response:
    acs = request.app[ACS]
    form = await _form(request)
    try:
        creq = decode_json(form.get("creq", ""))
    except MessageError:
        raise _Bad("creq is not a valid challenge request") from None
    if creq.get("messageType") != "CReq":
        raise _Bad("creq is not a valid challenge request")
    acs_trans_id = _str(creq, "acsTransID", limit=64)
    t = acs.challenges2.get(acs_trans_id)
    if t is None or t.server_trans_id != creq.get("threeDSServerTransID"):
        raise _Bad("unknown, answered or expired transaction")
    fields = {"acsTransID": acs_trans_id, "threeDSSessionData": form.get("threeDSSessionData", "")}
    page = acs_pages.challenge(
        "/acs/3ds2/challenge/submit",
        fields,
        merchant=t.merchant,
        amount=f"{t.amount} {t.currency}",
        card=f"•••• {t.pan[-4:]}",
    )
    return _html(page)


async def _send_rreq(acs: Acs, t: _Transaction2, token: str) -> None:
    if acs.session is None:
        raise RuntimeError("the ACS's HTTP client is not started")
    try:
        timeout = aiohttp.ClientTimeout(total=RREQ_TIMEOUT)
        async with acs.session.post(t.server_url, json={"rreq": token}, timeout=timeout) as resp:
            if resp.status != 200:
                log.warning("RReq to %s answered %d", t.server_url, resp.status)
    except (aiohttp.ClientError, TimeoutError) as exc:
        # The CRes still goes to the browser: the 3DS server, holding no RReq, fails the authentication.
        log.warning("RReq to %s failed: %s", t.server_url, exc)


async def _challenge2_submit(request: web.Request) -> web.Response:
    acs = request.app[ACS]
    form = await _form(request)
    acs_trans_id = form.get("acsTransID", "")
    t = acs.challenges2.pop(acs_trans_id)
    if t is None:
        raise _Bad("this verification has already been answered or has expired")
    status = "Y" if _code_matches(form.get("code", ""), acs.otp) else "N"
    ids = {"messageVersion": MESSAGE_VERSION, "threeDSServerTransID": t.server_trans_id, "acsTransID": acs_trans_id}
    rreq: dict[str, Any] = {**ids, "dsTransID": t.ds_trans_id, "transStatus": status, "eci": eci_for(t.pan, status)}
    if status == "Y":
        rreq["authenticationValue"] = _cavv()
    else:
        rreq["transStatusReason"] = "01"
    await _send_rreq(acs, t, acs.sign("RReq", rreq))
    cres = acs.sign("CRes", {**ids, "transStatus": status, "challengeCompletionInd": "Y"})
    log.info("challenge %s: transStatus %s", mask_pan(t.pan), status)
    fields = {"cres": cres, "threeDSSessionData": form.get("threeDSSessionData", "")}
    title = "Payment verified" if status == "Y" else "Not verified"
    return _html(acs_pages.autopost(t.notification_url, fields, title=title))


# -- wiring --------------------------------------------------------------------------------------------


@web.middleware
async def _refusals(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except _Bad as exc:
        if request.path.startswith("/ds/"):
            return _json({"error": str(exc)}, status=400)
        return _html(acs_pages.error(f"This payment cannot be verified: {exc}."))


async def _client(app: web.Application) -> AsyncIterator[None]:
    acs = app[ACS]
    acs.session = aiohttp.ClientSession()
    try:
        yield
    finally:
        session, acs.session = acs.session, None
        await session.close()


def add_routes(app: web.Application, acs: Acs) -> None:
    """Serve the DS and the ACS of ``acs`` on ``app`` (the simulator's admin application)."""
    app[ACS] = acs
    app.middlewares.append(_refusals)
    app.cleanup_ctx.append(_client)
    app.router.add_get("/ds/public-key", _public_key)
    app.router.add_post("/ds/3ds1/enrol", _enrol)
    app.router.add_post("/ds/3ds2/prepare", _prepare)
    app.router.add_post("/ds/3ds2/authenticate", _authenticate)
    app.router.add_route("GET", "/acs/3ds1", _acs1)
    app.router.add_post("/acs/3ds1", _acs1)
    app.router.add_post("/acs/3ds1/submit", _acs1_submit)
    app.router.add_post("/acs/3ds2/method", _method)
    app.router.add_post("/acs/3ds2/challenge", _challenge2)
    app.router.add_post("/acs/3ds2/challenge/submit", _challenge2_submit)
