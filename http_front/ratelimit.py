"""Rate limits: per project after authentication, per client address for failed authentications.

Token buckets in memory, one set per worker process (``--workers N`` gives
each worker its own: the limit a project sees is up to N times the
configured one; a shared limit would need a shared store, and the point
here is to stop one project or one guesser from taking a worker's time).

Two middlewares, placed around the authentication middleware:

* :func:`auth_guard_middleware` (outside it): an address whose failed
  authentications spent its bucket gets 429 *before* its password is
  checked, so a guesser cannot keep the scrypt workers busy; each 401 takes
  a token.
* :func:`project_limit_middleware` (inside it): each authenticated request
  takes a token of its project's bucket.

A refusal is 429 in the failure shape, ``failure_type`` ``rejected`` (the
request is well formed but refused by policy, as a status-table refusal is;
it did nothing and may be sent again), ``failure_message`` "Too many
requests", with ``Retry-After`` in whole seconds.

>>> b = TokenBuckets(rate=1.0, burst=2, clock=iter([0.0, 0.0, 0.0, 0.5]).__next__)
>>> b.take("p"), b.take("p"), b.take("p"), round(b.wait("p"), 2)
(0.0, 0.0, 1.0, 0.5)
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from http_front.failures import HttpFailure
from http_front.keys import PROJECT

__all__ = ["TokenBuckets", "auth_guard_middleware", "project_limit_middleware", "too_many_requests"]


class TokenBuckets:
    """A token bucket per key: ``rate`` tokens a second, at most ``burst`` saved.

    At most ``max_keys`` buckets are kept (least recently used dropped first;
    a dropped bucket comes back full, which only errs on the side of the
    client), so a flood from many addresses cannot grow memory without bound.
    """

    __slots__ = ("_buckets", "_clock", "burst", "max_keys", "rate")

    def __init__(
        self, rate: float, burst: int, *, max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._clock = clock
        # key -> (tokens, at); LRU order.
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()

    def _level(self, key: Hashable) -> tuple[float, float]:
        now = self._clock()
        got = self._buckets.get(key)
        if got is None:
            return float(self.burst), now
        tokens, at = got
        return min(float(self.burst), tokens + (now - at) * self.rate), now

    def wait(self, key: Hashable) -> float:
        """Seconds until ``key`` has a whole token (0.0: it has one now); takes nothing."""
        tokens, _ = self._level(key)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def take(self, key: Hashable) -> float:
        """Take a token: 0.0 when there was one, else the seconds to wait (nothing taken)."""
        tokens, now = self._level(key)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            self._buckets.move_to_end(key)
            return (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens - 1.0, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return 0.0

    def __len__(self) -> int:
        return len(self._buckets)


def too_many_requests(wait: float) -> HttpFailure:
    # Retry-After is whole seconds (RFC 9110); at least 1 so clients do not spin.
    return HttpFailure(429, "rejected", "Too many requests", headers={hdrs.RETRY_AFTER: str(max(1, math.ceil(wait)))})


def _client(request: web.Request) -> str:
    # The peer address, not X-Forwarded-For: a header a client writes itself
    # would let it pick a fresh bucket per request.
    return request.remote or "?"


def auth_guard_middleware(rate: float, burst: int) -> Middleware:
    """429 before authentication for an address that failed it too often; each 401 takes a token."""
    buckets = TokenBuckets(rate, burst)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if rate <= 0:
            return await handler(request)
        client = _client(request)
        wait = buckets.wait(client)
        if wait > 0:
            raise too_many_requests(wait)
        try:
            response = await handler(request)
        except HttpFailure as e:
            if e.status == 401:
                buckets.take(client)
            raise
        if response.status == 401:
            buckets.take(client)
        return response

    return guard


def project_limit_middleware(rate: float, burst: int) -> Middleware:
    """429 once the authenticated project's bucket is empty (requests without a project pass)."""
    buckets = TokenBuckets(rate, burst)

    @web.middleware
    async def limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        if rate > 0:
            project = request.get(PROJECT)
            if project is not None:
                wait = buckets.take(project.id)
                if wait > 0:
                    raise too_many_requests(wait)
        return await handler(request)

    return limit
