"""Logging of the front: the request id, an access log without queries or headers, card numbers scrubbed.

Each request gets an id (the caller's ``X-Request-Id`` when it is sane, else a
new one), answered in ``X-Request-Id`` and set in :data:`switch.logs.REQUEST_ID`
for every log line written while the request is served: the orders service's,
the link's, the writer's, and the access log's.

Client-side failures (a peer that disconnects mid-body, sends a malformed or
over-long request line or header, or is too slow) are the client's fault, not
ours, and cost an attacker nothing to repeat: :class:`ClientFailureLog` writes
each as ONE WARNING line without a traceback on ``isoswitch.http.client``, at
most ``rate`` lines a second per worker, and then one line counting the lines
it left out. :class:`ServerLog` routes aiohttp's own ERROR tracebacks for such
failures (``aiohttp.server``: "Error handling request") there.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
import traceback
from collections.abc import Callable, MutableMapping
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler

from switch.logs import REQUEST_ID, new_request_id
from switch.wire.cards import scrub

__all__ = [
    "ACCESS_LOGGER",
    "CLIENT_FAILURES",
    "CLIENT_LOGGER",
    "REQUEST_ID_HEADER",
    "AccessLog",
    "ClientFailureLog",
    "ServerLog",
    "SlowClient",
    "body_failure",
    "client_failure_kind",
    "log_client_failure",
    "format_exception",
    "request_id_middleware",
    "scrub",
]

REQUEST_ID_HEADER = "X-Request-Id"
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_RID = web.RequestKey("request_id", str)

ACCESS_LOGGER = logging.getLogger("isoswitch.http.access")
CLIENT_LOGGER = logging.getLogger("isoswitch.http.client")


def format_exception(exc: BaseException) -> str:
    """The traceback of ``exc``, scrubbed: a third-party message may quote a value."""
    return scrub("".join(traceback.format_exception(exc)))


# A payment page's token is its only credential: the access log keeps 6 of its 43 characters (and of a payment
# link's 32-character slug, which makes invoices for whoever holds it, and of a portal recovery link's token).
_PAGE_TOKEN = re.compile(
    r"(/pay/)([A-Za-z0-9_-]{6})[A-Za-z0-9_-]{37}|(/link/)([A-Za-z0-9_-]{6})[A-Za-z0-9_-]{26}"
    r"|(/portal/recover/)([A-Za-z0-9_-]{6})[A-Za-z0-9_-]{37}"
)


class AccessLog(AbstractAccessLogger):
    """``METHOD /path STATUS bytes ms``: never the query (filters carry e-mails, names) nor headers."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        path = _PAGE_TOKEN.sub(lambda m: f"{m[1] or m[3] or m[5]}{m[2] or m[4] or m[6]}...", scrub(request.path))
        ms = round(time * 1000.0, 1)
        extra = {"method": request.method, "path": path, "status": response.status, "ms": ms}
        rid = request.get(_RID)
        if rid is not None:
            extra["request_id"] = rid  # logged after the handler: the context variable is gone
        self.logger.info(
            "%s %s %s %s %.1fms", request.method, path, response.status, response.body_length, ms, extra=extra
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: every response, errors included, carries the id its log lines carry."""
    rid = request.headers.get(REQUEST_ID_HEADER)
    if rid is None or _SANE_ID.fullmatch(rid) is None or scrub(rid) != rid:
        rid = new_request_id()  # a caller's id that could forge log lines, or a card number, is replaced
    request[_RID] = rid
    token = REQUEST_ID.set(rid)
    try:
        response = await handler(request)
    finally:
        REQUEST_ID.reset(token)
    response.headers[REQUEST_ID_HEADER] = rid
    return response


# -- client-side failures ---------------------------------------------------------------

_LOGGED = "_isoswitch_client_failure_logged"


class SlowClient(ConnectionResetError):
    """The front closed a connection whose client was too slow (:mod:`http_front.conn`).

    A ``ConnectionResetError``, so that aiohttp and handlers treat it as the
    disconnect it is; the handler reading the body meets it in place of aiohttp's
    "Connection lost". Its line is written once, by whoever meets it first.
    """


class ClientFailureLog:
    """One WARNING line per client-side failure, at most ``rate`` a second (burst ``ceil(rate)``).

    A token bucket: a flood of bad requests costs the log a few lines a second,
    not one (with a traceback) per request. What it leaves out it counts, and
    one line a second later says how many (``suppressed`` in its fields).

    >>> t = iter([0.0] * 5 + [1.0] * 2).__next__
    >>> flog = ClientFailureLog(rate=2.0, clock=t)
    >>> [flog.warn("bad request", "10.0.0.1", "LineTooLong") for _ in range(4)]
    [True, True, False, False]
    >>> flog.suppressed, flog.warn("bad request", "10.0.0.1", "LineTooLong"), flog.suppressed
    (2, True, 0)
    """

    __slots__ = ("_at", "_clock", "_flush", "_logger", "_since", "_tokens", "burst", "rate", "suppressed")

    def __init__(
        self,
        rate: float = 10.0,
        *,
        logger: logging.Logger = CLIENT_LOGGER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = max(1, math.ceil(rate))
        self._logger = logger
        self._clock = clock
        self._tokens = float(self.burst)
        self._at = clock()
        self.suppressed = 0
        self._since = 0.0
        self._flush: asyncio.TimerHandle | None = None

    def warn_once(self, kind: str, peer: str | None, exc: BaseException) -> bool:
        """:meth:`warn` for ``exc`` unless a line was already written for it (aiohttp may meet it twice)."""
        if getattr(exc, _LOGGED, False):
            return False
        setattr(exc, _LOGGED, True)
        return self.warn(kind, peer, str(exc) if isinstance(exc, SlowClient) else type(exc).__name__)

    def warn(self, kind: str, peer: str | None, detail: str) -> bool:
        """Log ``kind`` from ``peer`` (``detail``: a class name or our own text, never request bytes).

        True when the line was written, False when it was only counted.
        """
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1.0:
            if self.suppressed == 0:
                self._since = now
                self._schedule_flush()
            self.suppressed += 1
            return False
        self._tokens -= 1.0
        if self.suppressed:
            self.flush()  # no running loop to flush it: the count rides ahead of the next line
        self._logger.warning(
            "client failure: %s from %s (%s)",
            kind,
            peer or "?",
            scrub(detail),
            extra={"client": peer, "failure": kind},
        )
        return True

    def flush(self) -> None:
        """Write the count of the lines left out since the last flush, if any."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        if self.suppressed:
            n, self.suppressed = self.suppressed, 0
            span = max(self._clock() - self._since, 0.0)
            self._logger.warning(
                "client failures: %d more not logged in the last %.1f s (at most %g lines/s)",
                n,
                span,
                self.rate,
                extra={"suppressed": n},
            )

    def _schedule_flush(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._flush = loop.call_later(1.0, self.flush)


#: The limiter of the running server (``start_app`` sets it; the app's error middleware uses it).
CLIENT_FAILURES = web.AppKey("client_failures", ClientFailureLog)


def client_failure_kind(exc: BaseException | None) -> str | None:
    """``"bad request"`` / ``"disconnected"`` for what a client can cause, None for anything else."""
    if isinstance(exc, SlowClient):
        return "timeout"
    if isinstance(exc, HttpProcessingError):
        return "bad request"  # malformed or over-long request line or header, bad chunking or length
    if isinstance(exc, ConnectionError):
        return "disconnected"
    return None


class ServerLog(logging.LoggerAdapter[logging.Logger]):
    """The ``logger`` of aiohttp's request handler (``aiohttp.server``), with client failures moved out.

    aiohttp logs a request it could not parse (an over-long header line, a bad
    request line) with ``logger.exception("Error handling request from %s",
    peer, exc_info=exc)``: an ERROR and a traceback that any client can make.
    Those go to :class:`ClientFailureLog` as one WARNING line; every other
    record (a real bug in aiohttp or a handler) passes through unchanged.
    """

    def __init__(self, failures: ClientFailureLog, logger: logging.Logger | None = None) -> None:
        super().__init__(logger or logging.getLogger("aiohttp.server"), {})
        self.failures = failures

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info")
        kind = client_failure_kind(exc) if isinstance(exc, BaseException) else None
        if level >= logging.ERROR and kind is not None:
            # aiohttp's one-argument ERROR calls name the peer ("... from %s").
            peer = str(args[0]) if len(args) == 1 else None
            self.failures.warn_once(kind, peer, exc)  # type: ignore[arg-type]  # a BaseException: kind is set
            return
        super().log(level, msg, *args, **kwargs)

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        return msg, kwargs


_DEFAULT_FAILURES = ClientFailureLog()  # an app not started by ``start_app`` (aiohttp's test client)


def body_failure(request: web.Request, exc: BaseException) -> bool:
    """True when ``exc`` is the failure of the request's body stream: the client's doing, not a bug.

    aiohttp puts a lost connection (``ConnectionResetError``) and a bad body
    (a wrong length, bad chunking) on the body's stream; a read then raises that
    very exception. An error of the database or the issuer link that happens to
    be a ``ConnectionError`` too is not the stream's, so it stays a bug report.
    """
    stream = request.content.exception()
    return stream is not None and (exc is stream or exc.__cause__ is stream)


def log_client_failure(request: web.Request, exc: BaseException) -> None:
    """One WARNING line (rate-limited) for a client-side failure met while serving ``request``."""
    failures = request.app.get(CLIENT_FAILURES, _DEFAULT_FAILURES)
    failures.warn_once(client_failure_kind(exc) or "bad body", request.remote, exc)
