"""The front's metrics: ``GET /metrics`` and ``GET /health`` (no credentials), and the request middleware.

:func:`metrics_middleware` is the outermost layer: it sees the status the
client gets, error mapping included. Each request is counted in
``isoswitch_http_requests_total{route,method,status}`` and timed in
``isoswitch_http_request_duration_seconds{route,method}``, where ``route`` is
the matched route's template (``/orders/{order_id}/charge``; ``unmatched``
when the router found none: 404, 405), never the path, so an order id or a
scanner's made-up URL cannot create series. A request whose client went away
before the answer (cancelled) is not counted. The requests in flight are a
plain integer, read when the metrics are flushed.

``/metrics`` first refreshes the store-and-forward gauges from
``runtime.saf_counts()``, the webhook outbox's from ``runtime.webhook_counts()``
and the mail outbox's from ``runtime.mail_counts()`` -- each one query at a
time per runtime however many scrapers ask, waited for at most
:data:`SAF_TIMEOUT` seconds so a slow database cannot hang a scrape (the
gauges then keep their last values) -- then answers
:func:`switch.metrics.render` (every worker's sum in multi-process mode).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any, TypeVar

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from http_front.keys import RUNTIME
from http_front.ports import MailCountsPort, SafCountsPort, WebhookCountsPort
from switch import metrics

__all__ = ["SAF_TIMEOUT", "health", "metrics_handler", "metrics_middleware"]

log = logging.getLogger("isoswitch.http")

T = TypeVar("T")

#: Seconds a scrape waits for the store-and-forward counts before answering without them.
SAF_TIMEOUT = 1.0

# Methods with a label of their own; a client may send any token as a method.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class _Route:
    """The cells of one (route, method): the duration histogram and a counter per status."""

    __slots__ = ("_status", "duration", "method", "route")

    def __init__(self, route: str, method: str) -> None:
        self.route = route
        self.method = method
        self.duration = metrics.histogram("isoswitch_http_request_duration_seconds", route, method)
        self._status: dict[int, metrics.Count] = {}

    def status(self, code: int) -> metrics.Count:
        cell = self._status.get(code)
        if cell is None:
            cell = self._status[code] = metrics.counter("isoswitch_http_requests", self.route, self.method, str(code))
        return cell


class _InFlight:
    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


_in_flight = _InFlight()  # every app of this process: the gauge is per process
_routes: dict[str, dict[str, _Route]] = {}  # route template -> method -> cells


def _in_flight_sample() -> list[metrics.Sample]:
    return [("isoswitch_http_requests_in_flight", (), float(_in_flight.n))]


metrics.add_sampler(_in_flight_sample)


def _cells(request: web.Request) -> _Route:
    info = request.match_info
    resource = info.route.resource if info.http_exception is None else None
    if resource is not None:
        route, method = resource.canonical, info.route.method  # our own registrations: bounded
    else:
        route, method = "unmatched", request.method if request.method in _METHODS else "other"
    by_method = _routes.get(route)
    if by_method is None:
        by_method = _routes[route] = {}
    cells = by_method.get(method)
    if cells is None:
        cells = by_method[method] = _Route(route, method)
    return cells


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    start = perf_counter()
    _in_flight.n += 1
    status = 500  # what aiohttp answers for an exception that gets past the error middleware
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = 0  # the client went away: nothing was answered
        raise
    finally:
        _in_flight.n -= 1
        if status:
            cells = _cells(request)
            cells.duration.observe(perf_counter() - start)
            cells.status(status).inc()


async def health(request: web.Request) -> web.Response:
    """Liveness: the process serves HTTP (no database or link is checked)."""
    return web.json_response({"status": "ok"})


_reads: dict[tuple[int, str], asyncio.Task[Any]] = {}  # (id(runtime), what) -> the read in progress


def _read_done(key: tuple[int, str], task: asyncio.Task[Any]) -> None:
    if _reads.get(key) is task:
        del _reads[key]
    if not task.cancelled():
        task.exception()  # retrieved: every scraper may have stopped waiting for it


async def _read_once(runtime: object, what: str, read: Callable[[], Awaitable[T]]) -> T | None:
    """``read()``'s value, one read at a time per runtime and ``what``, waited for at most ``SAF_TIMEOUT``;
    None (logged) when it failed or took longer: the gauges then keep their last values."""
    key = (id(runtime), what)
    task = _reads.get(key)
    if task is None or task.get_loop() is not asyncio.get_running_loop():
        task = asyncio.ensure_future(read())
        _reads[key] = task
        task.add_done_callback(lambda t: _read_done(key, t))
    try:
        # Shielded: one scraper giving up must not cancel the read the others wait for.
        value: T = await asyncio.wait_for(asyncio.shield(task), SAF_TIMEOUT)
    except TimeoutError:
        log.warning("%s not read within %.1f s; metrics keep the last ones", what, SAF_TIMEOUT)
        return None
    except Exception as e:
        log.warning("%s not read (%s); metrics keep the last ones", what, e.__class__.__name__)
        return None
    return value


async def _refresh_saf(runtime: object) -> None:
    if not isinstance(runtime, SafCountsPort):
        return  # a runtime without store-and-forward (the app's unit tests run over small fakes)
    counts = await _read_once(runtime, "store-and-forward counts", runtime.saf_counts)
    if counts is not None:
        metrics.set_saf(counts.pending, counts.manual, counts.oldest_pending_seconds)


async def _refresh_webhooks(runtime: object) -> None:
    if not isinstance(runtime, WebhookCountsPort) or getattr(runtime, "webhooks", None) is None:
        return  # a runtime without the webhook worker
    counts = await _read_once(runtime, "webhook outbox counts", runtime.webhook_counts)
    if counts is not None:
        metrics.set_webhook_depth(*counts)


async def _refresh_mail(runtime: object) -> None:
    if not isinstance(runtime, MailCountsPort) or getattr(runtime, "_mail", None) is None:
        return  # a runtime without the mail outbox
    counts = await _read_once(runtime, "mail outbox counts", runtime.mail_counts)
    if counts is not None:
        metrics.set_mail_depth(*counts)


async def metrics_handler(request: web.Request) -> web.Response:
    """Prometheus text format: this process's metrics, or every worker's in multi-process mode."""
    runtime = request.app[RUNTIME]
    await asyncio.gather(_refresh_saf(runtime), _refresh_webhooks(runtime), _refresh_mail(runtime))
    body, content_type = metrics.render()
    return web.Response(body=body, headers={hdrs.CONTENT_TYPE: content_type})
