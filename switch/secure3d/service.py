"""3-D Secure 1 and 2 in front of an authorization: enrolment, the ACS's signed answers, the 0100 with ECI/CAVV/XID.

The flow (ISSUE11.md, "The switch's side"):

* :meth:`Secure3D.begin` asks the directory server (3DS1 enrolment, 3DS2
  support). A card to authenticate leaves the order ``prepared`` with a
  session row and answers a :class:`~switch.secure3d.model.Challenge` (the
  form for the ACS) or, 3DS2 with a method URL, a
  :class:`~switch.secure3d.model.MethodStep`. A card that is not enrolled or
  whose enrolment cannot be verified goes on to the 0100 at once with the
  no-authentication ECI.
* 3DS2: :meth:`method_done` (the ACS's method page came back), then
  :meth:`resume` sends the AReq; frictionless Y/A authorizes, C answers a
  challenge, N/R declines without a 0100. During a challenge the ACS posts its
  :meth:`rreq` server to server.
* :meth:`complete_pares` / :meth:`complete_cres`: signature, ids and amount
  checked first (a forged or foreign message changes nothing), then the
  session is taken exactly once (:meth:`SessionRepo.take`), and the 0100
  carries DE 121-123. A failed authentication ends the order ``declined``
  without a 0100.

A waiting order's CVV is kept in this process's memory only, for the
session's lifetime: a completion that lands on another process sends the
0100 without CVV2 (the issuer then decides without it).

Over 500 lines on purpose: both versions share the session, the take and
the 0100, and reading one flow top to bottom is worth more than two files.
"""

from __future__ import annotations

import base64
import functools
import logging
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

import asyncpg

from switch import metrics
from switch.money import currency, from_minor, to_minor
from switch.orders.credentials import merchant_for, series_of
from switch.orders.engine import Engine, Step, merchant_of
from switch.orders.errors import Declined, InvalidInput, IssuerError, OrderError, OrderNotFound, Rejected
from switch.orders.model import OperationType, Order, OrderStatus
from switch.orders.requests import AuthorizeRequest
from switch.orders.service import OrdersService, _fill  # a new order's details, as authorize fills them
from switch.secure3d.carry import carried, descriptor_of, merchant_of_session, stored_of
from switch.secure3d.config import Secure3DConfig
from switch.secure3d.model import Callbacks, Challenge, Completion, Form3d, MethodStep, Secure3DRequest
from switch.secure3d.ports import DirectoryError, DirectoryPort
from switch.secure3d.sessions import Session, SessionRepo, token_hash
from switch.secure3d.sweep import ExpirySweep
from switch.store.projects import Project, Projects
from switch.translate import Authorize, Card, ThreeDSecure
from switch.wire.threeds import MessageError, Verifier, decode_json, eci_for, encode_json

__all__ = ["AlreadyCompleted", "Secure3D"]

log = logging.getLogger("isoswitch.secure3d")

T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")

Outcome = Order | Challenge | MethodStep

# Scenarios shown in the order's secure3d.scenario (seeds/003 shows "unknown" while waiting, "full" after).
_SCENARIO = {"Y": "full", "A": "attempt", "U": "unable_to_verify", "N": "failed", "R": "rejected"}
_AUTHENTICATED = frozenset({"Y", "A"})


class AlreadyCompleted(Rejected):
    """A second completion of one order (seeds/003: "Order already completed")."""


# isoswitch_secure3d_refused{reason}: why a completion (PaRes, CRes, RReq, resume) was refused, by the start
# of the messages raised in this module (a forged, expired or wrong-type message is "signature").
_REFUSALS = (
    ("Invalid ", "signature"),
    ("PaRes does not belong", "mismatch"),
    ("PaRes amount does not match", "mismatch"),
    ("CRes does not", "mismatch"),
    ("3-D Secure session expired", "expired"),
    ("No RReq result", "no_rreq"),
    ("RReq matches no challenge", "unknown_session"),
)


def _refusal(e: OrderError) -> str | None:
    """The reason label of a refused completion; None for what is no refusal (the DS down, a decline)."""
    if isinstance(e, AlreadyCompleted):
        return "already_completed"
    if isinstance(e, OrderNotFound):
        return "unknown_session"
    if not isinstance(e, Rejected | InvalidInput):
        return None
    text = e.problems[0].message if isinstance(e, InvalidInput) and e.problems else e.message
    for start, reason in _REFUSALS:
        if text.startswith(start):
            return reason
    return "malformed" if isinstance(e, InvalidInput) else "wrong_state"


def _counts_refusals(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """The completion ``method`` with its refusals counted (isoswitch_secure3d_refused{reason})."""

    @functools.wraps(method)
    async def counted(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except OrderError as e:
            reason = _refusal(e)
            if reason is not None:
                metrics.counter("isoswitch_secure3d_refused", reason).inc()
            raise

    return counted


def _count_outcome(order: Order) -> None:
    """isoswitch_secure3d_outcomes{scenario,status} once the order's 3-D Secure result is known."""
    shown = order.secure3d or {}
    status = shown.get("authorization_status")
    metrics.counter(
        "isoswitch_secure3d_outcomes",
        str(shown.get("scenario", "unknown")),
        status if status in ("Y", "A", "N", "U", "R") else "none",
    ).inc()


def _minor(req: AuthorizeRequest, settings_currency: str) -> tuple[int, str]:
    cur = req.currency or currency(settings_currency)
    try:
        return to_minor(req.amount, cur), cur.alpha
    except Exception:
        raise InvalidInput.one("Must be a valid amount of the currency", "amount") from None


def _shown(order: Order) -> str:
    """The amount as the DS, the ACS's page and the PaRes carry it: a decimal string ("9.99")."""
    return from_minor(order.amount, order.currency)


class _CvvKeeper:
    """CVVs of waiting orders, in this process only, each for the session's lifetime (never written anywhere)."""

    def __init__(self, ttl: float, maxlen: int = 100_000) -> None:
        self._ttl, self._maxlen = ttl, maxlen
        self._items: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def put(self, order_id: str, cvv: str | None) -> None:
        now = time.monotonic()
        # Every entry lives as long: the oldest are at the front, so expiry stops at the first live one.
        # Bounded: a flood of abandoned 3-D Secure orders drops the oldest CVVs (their 0100s go without).
        while self._items:
            first = next(iter(self._items.values()))
            if first[1] > now and len(self._items) < self._maxlen:
                break
            self._items.popitem(last=False)
        if cvv is not None:
            self._items[order_id] = (cvv, now + self._ttl)

    def take(self, order_id: str) -> str | None:
        item = self._items.pop(order_id, None)
        return item[0] if item is not None and item[1] > time.monotonic() else None


class Secure3D:
    """3-D Secure around the orders engine; ``directory`` is the DS client, ``verifier`` holds the ACS's key."""

    def __init__(
        self,
        orders: OrdersService,
        projects: Projects,
        pool: asyncpg.Pool,
        directory: DirectoryPort,
        verifier: Verifier,
        config: Secure3DConfig,
    ) -> None:
        """``orders`` (its engine sends the 0100s), ``projects`` (a browser's completion names no project),
        ``pool`` (the sessions), the DS client, the ACS's public key, ``[secure3d]``."""
        self.orders = orders
        self.engine: Engine = orders.engine
        self.projects = projects
        self.directory = directory
        self.verifier = verifier
        self.config = config
        self.sessions = SessionRepo(pool)
        self._cvv = _CvvKeeper(config.session_timeout)
        self.sweep = ExpirySweep(
            self.sessions,
            self.engine.repo,
            self.engine.clock,
            self._cvv.take,
            interval=config.sweep_interval,
            batch=config.sweep_batch,
        )

    def start(self) -> None:
        """The sweep of abandoned sessions, in the background of this (serving) process until :meth:`close`."""
        self.sweep.start()

    async def close(self) -> None:
        await self.sweep.close()
        await self.directory.close()

    # -- entry points ------------------------------------------------------------------

    async def authorize(
        self, project: Project, req: AuthorizeRequest, want: Secure3DRequest, callbacks: Callbacks
    ) -> Outcome:
        """``POST /orders/authorize`` with 3-D Secure (force3d or the project's ``require_3ds``)."""
        engine, settings = self.engine, project.settings
        if req.card is None:  # a oneclick kept card: the front refuses 3-D Secure for it first
            raise InvalidInput.one("3-D Secure with a kept (oneclick) card is not offered", "options/force3d")
        card = req.card
        amount, cur = _minor(req, settings.currency)
        # What the direct path decides (and refuses) from the request, decided now: the 0100 leaves later.
        merchant = merchant_for(settings, req.terminal)
        series = await series_of(engine.repo, project, req)
        binds = req.oneclick.customer_id if req.oneclick is not None and req.oneclick.bind else None
        now = engine.clock()
        order_id = await engine.take(engine.ids.order_id)
        order = engine.cards.new_order(
            project, order_id, card, amount, currency(cur), now, rrn="", recurring=req.recurring
        )
        # The RRN is taken when the 0100 is built (_authorize): an order whose authentication fails
        # never has one, and no later rebill can name a transaction the network never saw.
        order.rrn = None
        order.initial_rrn = series.first_rrn
        order.parent_order_id = series.parent_id
        _fill(order, req.details, settings, req.descriptor)
        order.notification_url = req.notification_url  # before the order is written: order.prepared goes there too
        reason = "force3d" if want.force3d else "require_3ds"
        return await self.begin(
            project,
            order,
            card,
            reason=reason,
            callbacks=callbacks,
            want=want,
            auto_charge=req.auto_charge,
            stored=False,
            carry=carried(req, merchant.terminal_id, series.stored, binds),
        )

    async def begin(
        self,
        project: Project,
        order: Order,
        card: Card,
        *,
        reason: str,
        callbacks: Callbacks,
        want: Secure3DRequest | None = None,
        auto_charge: bool | None = None,
        stored: bool = True,
        carry: dict[str, Any] | None = None,
    ) -> Outcome:
        """3-D Secure for ``order`` paid with ``card`` (its CVV kept in memory while the cardholder is away).

        ``stored``: the order exists already, waiting (status ``new``: the hosted page), with ``card``
        attached; False: a new order only in memory (authorize), written here. ``carry``: what the
        later 0100 must send as a direct authorize would (:mod:`switch.secure3d.carry`). Answers the order
        (authorized: frictionless or not enrolled), a :class:`Challenge` or a :class:`MethodStep`;
        raises the order's failure (declined ...) as :meth:`OrdersService.authorize` does.
        """
        want = want or Secure3DRequest(force3d=True)
        order.secure3d = {"reason": reason, "scenario": "unknown"}
        metrics.counter("isoswitch_secure3d_sessions", "2" if want.browser is not None else "1").inc()
        extra: dict[str, Any] = {**(carry or {}), "auto_charge": auto_charge}
        if want.browser is not None:
            return await self._begin_2(project, order, card, want, callbacks, extra, stored)
        return await self._begin_1(project, order, card, want, callbacks, extra, stored)

    @_counts_refusals
    async def resume(self, project: Project, order_id: str, callbacks: Callbacks) -> Outcome:
        """``POST /orders/:id/resume``: after the 3DS Method, the AReq; frictionless, challenge or declined."""
        order = await self.orders.get_order(project, order_id)
        session = await self.sessions.by_order(order.id)
        if session is None or session.version != 2:
            raise Rejected("Order does not wait for 3-D Secure 2.0", order_id=order.id)
        now = self.engine.clock()
        if not await self.sessions.claim(order.id, ("method",), "pending", now):
            await self._refuse(order, session, now)
        return await self._authenticate(project, order, session, "Y" if session.method_done else "N", callbacks)

    async def method_done(self, method_data: str) -> bool:
        """The ACS's 3DS Method page posted ``threeDSMethodData`` back: the AReq will say threeDSCompInd Y."""
        try:
            trans_id = decode_json(method_data).get("threeDSServerTransID")
        except MessageError:
            return False
        if not isinstance(trans_id, str) or len(trans_id) > 64:
            return False
        return await self.sessions.method_done(trans_id, self.engine.clock())

    @_counts_refusals
    async def rreq(self, token: str) -> None:
        """The ACS's RReq (server to server) during a challenge: its result, kept until the CRes comes."""
        claims = self._verify(token, "RReq")
        trans_id, acs_id = claims.get("threeDSServerTransID"), claims.get("acsTransID")
        status = claims.get("transStatus")
        if not (isinstance(trans_id, str) and isinstance(acs_id, str) and status in ("Y", "A", "N", "U", "R")):
            raise InvalidInput.one("RReq lacks threeDSServerTransID, acsTransID or transStatus", "rreq")
        eci, cavv = claims.get("eci"), claims.get("authenticationValue")
        if status in _AUTHENTICATED and not (isinstance(eci, str) and isinstance(cavv, str)):
            raise InvalidInput.one("RReq lacks eci or authenticationValue", "rreq")
        ok = await self.sessions.store_rreq(
            trans_id,
            acs_id,
            status,
            eci if isinstance(eci, str) else None,
            cavv if status in _AUTHENTICATED else None,
            self.engine.clock(),
        )
        if not ok:
            raise Rejected("RReq matches no challenge in progress")

    @_counts_refusals
    async def complete_pares(
        self, pares: str, *, md: str | None = None, project: Project | None = None, order_id: str | None = None
    ) -> Completion:
        """3DS1: the ACS's PaRes, from the browser (``md``: TermUrl) or the merchant (``project`` + ``order_id``)."""
        claims = self._verify(pares, "PaRes", field="PaRes")
        session, order, project = await self._find(md, project, order_id, by=self.sessions.by_md, version=1)
        if claims.get("xid") != session.trans_id:
            raise Rejected("PaRes does not belong to this order", order_id=order.id)
        self._check_amount(claims, session, order)
        status = claims.get("status")
        if status not in ("Y", "A", "N", "U"):
            raise InvalidInput.one("PaRes status must be Y, A, N or U", "PaRes")
        eci, cavv = claims.get("eci"), claims.get("cavv")
        if status in _AUTHENTICATED and not (isinstance(eci, str) and isinstance(cavv, str)):
            raise InvalidInput.one("PaRes lacks eci or cavv", "PaRes")
        taken, _ = await self._take(order, session)  # 3DS1: the CAVV is the PaRes's own, never stored
        return await self._finish(project, order, taken, status, eci, cavv if status in _AUTHENTICATED else None)

    @_counts_refusals
    async def complete_cres(
        self,
        cres: str | None,
        *,
        session_data: str | None = None,
        project: Project | None = None,
        order_id: str | None = None,
    ) -> Completion:
        """3DS2: the ACS's CRes, from the browser (``session_data``) or the merchant (``project`` + ``order_id``).

        The result is the RReq's (server to server, signed); the CRes must match it and the session.
        Without an RReq yet, the order stays prepared (seeds/003). The merchant may send no CRes at all
        (``cres`` None: seeds/003 lists it as optional): the RReq's result alone completes the order.
        """
        if cres is None and (project is None or order_id is None):
            raise InvalidInput.required("cres")  # the browser's post always carries the CRes
        claims = None if cres is None else self._verify(cres, "CRes", field="cres")
        session, order, project = await self._find(
            session_data, project, order_id, by=self.sessions.by_session_data, version=2
        )
        if claims is not None and (
            claims.get("threeDSServerTransID") != session.trans_id or claims.get("acsTransID") != session.acs_trans_id
        ):
            raise Rejected("CRes does not belong to this order", order_id=order.id)
        if session.state == "challenge" and session.trans_status is None:
            err = InvalidInput.one("No RReq result for this order yet", "cres")
            err.order_id = order.id
            raise err
        if (
            claims is not None
            and session.trans_status is not None
            and claims.get("transStatus") != session.trans_status
        ):
            raise Rejected("CRes does not match the RReq", order_id=order.id)
        taken = await self._take(order, session)
        s, cavv = taken
        return await self._finish(project, order, s, s.trans_status or "N", s.eci, cavv)

    # -- 3DS1 -------------------------------------------------------------------------------

    async def _begin_1(
        self,
        project: Project,
        order: Order,
        card: Card,
        want: Secure3DRequest,
        callbacks: Callbacks,
        extra: dict[str, Any],
        stored: bool,
    ) -> Outcome:
        enrolment = await self._ds(
            self.directory.enrol(card.pan, _shown(order), order.currency, project.settings.merchant_id)
        )
        order.secure3d["version"] = "1"
        if enrolment.enrolled != "Y" or not enrolment.acs_url or not enrolment.acct_id:
            status = "N" if enrolment.enrolled == "N" else "U"
            order.secure3d.update(
                scenario="not_enrolled" if status == "N" else "unable_to_verify", authorization_status=status
            )
            _count_outcome(order)
            # A cardholder not enrolled counts as an attempted authentication in 3-D Secure 1 (Visa ECI 06,
            # Mastercard 01: the merchant tried); an enrolment the directory could not verify is none (07/00).
            eci = eci_for(card.pan, "A" if status == "N" else "U")
            return await self._authorize(project, order, card, eci, None, None, extra, stored)
        xid = base64.b64encode(secrets.token_bytes(20)).decode()  # 28 characters: fits DE 123
        md = secrets.token_urlsafe(24)
        order.secure3d["xid"] = xid
        session = self._session(order, 1, xid, want, extra)
        session.state = "challenge"
        await self._wait(order, card, stored)
        await self.sessions.create(session, md_hash=token_hash(md))
        merchant = merchant_of(project.settings)
        pareq = encode_json(
            {
                "messageType": "PaReq",
                "version": "1.0.2",
                "xid": xid,
                "acct_id": enrolment.acct_id,
                "amount": _shown(order),
                "currency": order.currency,
                "merchant": {"id": merchant.merchant_id, "name": merchant.name},
            }
        )
        fields = (("MD", md), ("PaReq", pareq), ("TermUrl", callbacks.term_url))
        return Challenge(order, Form3d(enrolment.acs_url, "POST", fields))

    # -- 3DS2 -------------------------------------------------------------------------------

    async def _begin_2(
        self,
        project: Project,
        order: Order,
        card: Card,
        want: Secure3DRequest,
        callbacks: Callbacks,
        extra: dict[str, Any],
        stored: bool,
    ) -> Outcome:
        support = await self._ds(self.directory.prepare(card.pan))
        order.secure3d.update(version="2", dsrp="0")
        if not support.supported:
            order.secure3d.update(scenario="not_enrolled", authorization_status="N")
            _count_outcome(order)
            return await self._authorize(project, order, card, eci_for(card.pan, "N"), None, None, extra, stored)
        trans_id = str(uuid.uuid4())
        extra["browser"] = want.browser
        session = self._session(order, 2, trans_id, want, extra)
        session.state = "method" if support.method_url else "pending"
        await self._wait(order, card, stored)
        await self.sessions.create(session)
        if support.method_url:
            data = encode_json(
                {"threeDSServerTransID": trans_id, "threeDSMethodNotificationURL": callbacks.method_done_url}
            )
            return MethodStep(order, support.method_url, data)
        return await self._authenticate(project, order, session, "U", callbacks)

    async def _authenticate(
        self, project: Project, order: Order, session: Session, comp_ind: str, callbacks: Callbacks
    ) -> Outcome:
        """The AReq (session ``pending``): frictionless authorizes or declines, ``C`` answers the challenge."""
        card = self.engine.cards.card(order)
        merchant = merchant_of(project.settings)
        areq = {
            "threeDSServerTransID": session.trans_id,
            "pan": card.pan,
            "amount": _shown(order),
            "currency": order.currency,
            "merchant": {"id": merchant.merchant_id, "name": merchant.name},
            "browser": session.extra.get("browser") or {},
            "threeDSCompInd": comp_ind,
            "challengeIndicator": "04" if session.force_challenge else "01",
            "notificationURL": callbacks.notification_url,
            "threeDSServerURL": callbacks.rreq_url,
        }
        try:
            ares = self._verify(await self._ds(self.directory.authenticate(areq)), "ARes")
        except OrderError:
            await self.sessions.claim(order.id, ("pending",), "method", self.engine.clock())  # /resume may retry
            raise
        if ares.get("threeDSServerTransID") != session.trans_id:
            await self.sessions.claim(order.id, ("pending",), "method", self.engine.clock())  # /resume may retry
            raise IssuerError("The directory server answered for another transaction", order_id=order.id)
        status, ds_id = ares.get("transStatus"), ares.get("dsTransID")
        if isinstance(ds_id, str):
            order.secure3d["ds_trans_id"] = ds_id
        if status == "C":
            return await self._challenge(order, session, ares, ds_id)
        taken = await self.sessions.take(order.id, ("pending",), self.engine.clock())
        if taken is None:
            raise AlreadyCompleted("Order already completed", order_id=order.id)
        s = taken[0]
        s.ds_trans_id = ds_id if isinstance(ds_id, str) else None
        eci, cavv = ares.get("eci"), ares.get("authenticationValue")
        cavv = cavv if status in _AUTHENTICATED else None
        completion = await self._finish(project, order, s, str(status), eci, cavv, frictionless=True)
        if completion.failure is not None:
            raise completion.failure
        return completion.order

    async def _challenge(self, order: Order, session: Session, ares: dict[str, Any], ds_id: Any) -> Challenge:
        acs_url, acs_id = ares.get("acsURL"), ares.get("acsTransID")
        if not (isinstance(acs_url, str) and acs_url.startswith(("http://", "https://")) and isinstance(acs_id, str)):
            raise IssuerError("The directory server asked for a challenge without an ACS", order_id=order.id)
        token = secrets.token_urlsafe(24)
        now = self.engine.clock()
        ds = ds_id if isinstance(ds_id, str) else None
        if not await self.sessions.to_challenge(order.id, acs_id, ds, token_hash(token), now):
            raise AlreadyCompleted("Order already completed", order_id=order.id)
        creq = encode_json(
            {
                "messageType": "CReq",
                "messageVersion": "2.2.0",
                "threeDSServerTransID": session.trans_id,
                "acsTransID": acs_id,
                "challengeWindowSize": "05",
            }
        )
        return Challenge(order, Form3d(acs_url, "POST", (("creq", creq), ("threeDSSessionData", token))))

    # -- the end: the 0100, or a decline without one -----------------------------------------

    async def _finish(
        self,
        project: Project,
        order: Order,
        session: Session,
        status: str,
        eci: Any,
        cavv: str | None,
        *,
        frictionless: bool = False,
    ) -> Completion:
        """The session is taken: authorize (Y, A, U) or decline (N, R) the waiting order.

        A frictionless N is the issuer's rejection; after a challenge it is the cardholder's failure.
        """
        card = self.engine.cards.card(order)
        scenario = "rejected" if frictionless and status in ("N", "R") else _SCENARIO.get(status, "failed")
        order.secure3d.update(scenario=scenario, authorization_status=status, version=str(session.version))
        _count_outcome(order)
        ident = session.trans_id if session.version == 1 else session.ds_trans_id
        if session.version == 1:
            order.secure3d["xid"] = session.trans_id
        elif session.ds_trans_id:
            order.secure3d["ds_trans_id"] = session.ds_trans_id
        extra = dict(session.extra)
        try:
            if status in _AUTHENTICATED or status == "U":
                if status not in _AUTHENTICATED or not isinstance(eci, str):
                    eci = eci_for(card.pan, status)
                cvv = self._cvv.take(order.id)
                card = Card(
                    card.pan,
                    expiry_month=card.expiry_month,
                    expiry_year=card.expiry_year,
                    cvv=cvv,
                    holder=order.card_holder,
                )
                rrns = order.rrn, order.initial_rrn
                try:
                    done = await self._authorize(project, order, card, eci, cavv, ident, extra, True)
                except Exception as e:
                    if order.operations:
                        raise  # its intent was written: the engine's verdict stands
                    order.rrn, order.initial_rrn = rrns  # no 0100 left with it
                    raise await self._unsent(order, e) from None
                return Completion(done, session.browser_return)
            self._cvv.take(order.id)
            await self._end(order, OrderStatus.DECLINED)
            raise Declined("3-D Secure authentication failed", order_id=order.id)
        except OrderError as e:
            return Completion(order, session.browser_return, e)

    async def _unsent(self, order: Order, e: Exception) -> OrderError:
        """The session is taken but the 0100 was never written (the order changed meanwhile, the translator
        refused a field, the database failed): the order ends ``error`` rather than waiting forever for a
        completion every retry would refuse; the merchant's call gets ``e`` (or an issuer error)."""
        if not isinstance(e, OrderError):
            log.error("3-D Secure completion failed before the 0100", extra={"order_id": order.id}, exc_info=e)
        try:
            await self._end(order, OrderStatus.ERROR)
        except Exception:
            log.error(
                "3-D Secure order not ended after a failed completion", extra={"order_id": order.id}, exc_info=True
            )
        if isinstance(e, OrderError):
            e.order_id = e.order_id or order.id
            return e
        return IssuerError("3-D Secure completion failed", order_id=order.id)

    async def _end(self, order: Order, status: OrderStatus) -> None:
        """The waiting order, its session taken and no 0100 sent, ends ``status`` (its webhook fires), even
        when another request changed the order since it was read; unless it no longer waits."""
        repo = self.engine.repo
        for _ in range(3):
            order.status, order.updated = status, self.engine.clock()
            if await repo.save_waiting(order):
                return
            fresh = await repo.get(order.project_id, order.id)
            if fresh is None or fresh.status not in (OrderStatus.NEW, OrderStatus.PREPARED) or fresh.operations:
                return  # ended elsewhere, or an intent is written: that result stands
            order.version = fresh.version
        log.error("3-D Secure order not ended: changed again and again", extra={"order_id": order.id})

    async def _authorize(
        self,
        project: Project,
        order: Order,
        card: Card,
        eci: str,
        cavv: str | None,
        ident: str | None,
        extra: dict[str, Any],
        stored: bool,
    ) -> Order:
        """The 0100 with DE 121-123 for ``order`` (a new one unless ``stored``); raises unless approved."""
        engine, settings = self.engine, project.settings
        order.secure3d["eci"] = str(int(eci))
        now = engine.clock()
        if order.rrn is None:
            order.rrn = await engine.take(lambda: engine.ids.rrn(now))
            order.initial_rrn = order.initial_rrn or order.rrn
        rrn = order.rrn
        msg = engine.translate(
            lambda: Authorize(
                merchant=merchant_of_session(settings, extra),
                card=card,
                amount=order.amount,
                currency=currency(order.currency),
                rrn=rrn,
                three_ds=ThreeDSecure(eci, cavv=cavv, xid=ident),
                stored_credential=stored_of(extra, order.recurring),
                descriptor=descriptor_of(extra),
            ),
            now,
        )
        if stored:
            order.updated = now
            if not await engine.repo.save_waiting(order):  # the result shown, before the 0100 leaves
                raise Rejected("Order was changed by another request, try again", order_id=order.id)
        outcome = await engine.perform(
            project, order, Step(OperationType.AUTHORIZE, order.amount, msg, now, creates=not stored)
        )
        engine.approved(order, outcome)
        customer = extra.get("oneclick")
        if isinstance(customer, str):
            await self.orders.keep_card(project, order, customer)  # as a direct authorize: once approved
        auto_charge = extra.get("auto_charge")
        if (settings.auto_charge if auto_charge is None else auto_charge) and order.amount > 0:
            # The service's own capture step (options.auto_charge): a 1-stage payment after 3-D Secure.
            await self.orders._capture(project, order, order.amount)
        return order

    # -- helpers ------------------------------------------------------------------------------

    def _session(
        self, order: Order, version: int, trans_id: str, want: Secure3DRequest, extra: dict[str, Any]
    ) -> Session:
        now = self.engine.clock()
        return Session(
            order_id=order.id,
            project_id=order.project_id,
            version=version,
            trans_id=trans_id,
            amount=order.amount,
            currency=order.currency,
            reason=str(order.secure3d.get("reason", "force3d")),
            state="pending",
            expires_at=now + timedelta(seconds=self.config.session_timeout),
            created=now,
            updated=now,
            return_url=want.return_url,
            return_url_3ds2=want.return_url_3ds2,
            force_challenge=want.force_challenge,
            extra=extra,
        )

    async def _wait(self, order: Order, card: Card, stored: bool) -> None:
        """The order written (or changed) as ``prepared``, before the session row that references it."""
        order.status = OrderStatus.PREPARED
        if stored:
            order.updated = self.engine.clock()
            if not await self.engine.repo.save_waiting(order):
                raise Rejected("Order was changed by another request, try again", order_id=order.id)
        else:
            await self.engine.repo.create_waiting(order)
        self._cvv.put(order.id, card.cvv)

    async def _find(
        self,
        token: str | None,
        project: Project | None,
        order_id: str | None,
        *,
        by: Callable[[str], Awaitable[Session | None]],
        version: int,
    ) -> tuple[Session, Order, Project]:
        """The session and order a completion names: by the browser's token, or the merchant's own order."""
        if project is not None and order_id is not None:
            order = await self.orders.get_order(project, order_id)  # another project's order: not found
            session = await self.sessions.by_order(order.id)
        else:
            session = await by(token) if isinstance(token, str) and 0 < len(token) <= 128 else None
            if session is None:
                raise OrderNotFound("")
            found = await self.projects.get(session.project_id)
            if found is None:
                raise OrderNotFound(session.order_id)
            project = found
            order = await self.orders.get_order(project, session.order_id)
        if session is None or session.version != version:
            raise Rejected(f"Order does not wait for 3-D Secure {'2.0' if version == 2 else '1'}", order_id=order.id)
        now = self.engine.clock()
        if session.state not in ("challenge",) or session.expires_at <= now:
            await self._refuse(order, session, now)
        return session, order, project

    async def _refuse(self, order: Order, session: Session, now: datetime) -> None:
        """Why a session cannot go on: completed already, expired (the order ends declined), or not there yet."""
        if session.state == "completed":
            raise AlreadyCompleted("Order already completed", order_id=order.id)
        if session.state == "expired" or session.expires_at <= now:
            if await self.sessions.expire(order.id, now):
                self._cvv.take(order.id)
                order.status = OrderStatus.DECLINED
                order.secure3d["scenario"] = "expired"
                _count_outcome(order)
                order.updated = now
                await self.engine.repo.save_waiting(order)
            raise Rejected("3-D Secure session expired", order_id=order.id)
        raise Rejected("Order is not waiting for this step of 3-D Secure", order_id=order.id)

    async def _take(self, order: Order, session: Session) -> tuple[Session, str | None]:
        now = self.engine.clock()
        taken = await self.sessions.take(order.id, ("challenge",), now)
        if taken is None:
            fresh = await self.sessions.by_order(order.id)
            await self._refuse(order, fresh or session, now)
            raise AssertionError("unreachable")  # pragma: no cover
        return taken

    @staticmethod
    def _check_amount(claims: dict[str, Any], session: Session, order: Order) -> None:
        if (
            claims.get("amount") != from_minor(session.amount, session.currency)
            or claims.get("currency") != session.currency
        ):
            raise Rejected("PaRes amount does not match the order", order_id=order.id)

    def _verify(self, token: Any, message_type: str, *, field: str | None = None) -> dict[str, Any]:
        try:
            return self.verifier.verify(token, message_type)
        except MessageError as e:
            raise InvalidInput.one(f"Invalid {message_type}: {e}", field or message_type) from None

    async def _ds(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except DirectoryError as e:
            log.warning("directory server failed", extra={"reason": str(e)})
            raise IssuerError("3-D Secure directory server unavailable") from None
