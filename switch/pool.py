"""Destinations: a pool of links to one host, and BIN routing between pools.

>>> t = RoutingTable([Route("visa", "400000", "499999"), Route("amex", "34", "37")], default="sim")
>>> t.destination("4111111111111111"), t.destination("371449635398431"), t.destination("6011000990139424")
('visa', 'amex', 'sim')

Test mode (seeds/002's ``test_mode`` invoices) goes to one destination whatever the card, ``test`` (the
simulator, say), so a test payment never reaches a live issuer:

>>> t = RoutingTable([Route("visa", "400000", "499999")], default="live", test="sim")
>>> t.destination("4111111111111111"), t.destination("4111111111111111", test_mode=True)
('visa', 'sim')
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from switch.errors import DestinationUnavailable, NoRoute
from switch.link import Link, LinkConfig, LinkState, UnmatchedHandler
from switch.stan import StanSpace
from switch.wire.codec import Message

__all__ = ["Pool", "Route", "RoutingTable", "Router"]


class Pool:
    """Several links to one destination; each request goes to the least-loaded ready link."""

    def __init__(self, name: str, links: Iterable[Link]) -> None:
        self.name = name
        self.links = list(links)
        if not self.links:
            raise ValueError(f"destination {name} has no links")

    @classmethod
    def connect(
        cls,
        name: str,
        config: LinkConfig,
        count: int,
        *,
        node_id: int = 0,
        on_unmatched: UnmatchedHandler | None = None,
    ) -> Pool:
        """``count`` links with the same config, labelled ``name#i``, sharing one STAN space (and, in
        the metrics, the destination label ``name``).

        ``on_unmatched`` gets every response nobody waits for (a late answer to a timed-out request).
        """
        stans = StanSpace(node_id)
        links = [
            Link(
                dataclasses.replace(config, name=f"{name}#{i}"),
                stans=stans,
                on_unmatched=on_unmatched,
                destination=name,
            )
            for i in range(count)
        ]
        return cls(name, links)

    def next_stan(self) -> str:
        """A STAN for a request to this destination, drawn from its links' shared space.

        For a caller that must know DE 11 before the request goes out (the
        write-ahead intent records it); the link keeps a DE 11 it is given.
        The allocator moves on, so the value is not handed out again before
        it wraps (100,000 STANs per node later).
        """
        return self.links[0].stans.next()

    def start(self) -> None:
        for link in self.links:
            link.start()

    async def wait_ready(self, timeout: float | None = None, *, all_links: bool = False) -> None:
        """Wait for one ready link (or every link with ``all_links``)."""
        waits = [asyncio.ensure_future(link.wait_ready()) for link in self.links]
        try:
            async with asyncio.timeout(timeout):
                if all_links:
                    await asyncio.gather(*waits)
                else:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    @property
    def ready_links(self) -> int:
        return sum(1 for link in self.links if link.state is LinkState.READY)

    def pick(self) -> Link:
        """The ready link with the fewest requests in flight; fails fast when none is ready."""
        best: Link | None = None
        best_load = 1 << 62
        for link in self.links:
            if link.state is LinkState.READY:
                load = len(link._pending)
                if load < best_load:
                    best, best_load = link, load
        if best is None:
            raise DestinationUnavailable(f"destination {self.name} has no ready link")
        return best

    async def request(self, msg: Message, *, timeout: float | None = None) -> Message:
        return await self.pick().request(msg, timeout=timeout)

    async def close(self, *, timeout: float | None = None) -> None:
        await asyncio.gather(*(link.close(timeout=timeout) for link in self.links))


@dataclass(frozen=True, slots=True)
class Route:
    """PANs whose prefix lies in ``low..high`` (compared on ``len(low)`` digits) go to ``destination``."""

    destination: str
    low: str
    high: str

    def __post_init__(self) -> None:
        if not (self.low.isdigit() and self.high.isdigit() and len(self.low) == len(self.high)):
            raise ValueError(f"route {self.low}-{self.high}: bounds must be digit strings of one length")
        if self.low > self.high:
            raise ValueError(f"route {self.low}-{self.high}: low above high")

    def covers(self, pan: str) -> bool:
        return self.low <= pan[: len(self.low)] <= self.high

    @property
    def width(self) -> float:
        # Narrower ranges are more specific; compare on a common 19-digit scale.
        scale = 10 ** (19 - len(self.low))
        return (int(self.high) - int(self.low) + 1) * scale


class RoutingTable:
    """BIN ranges to destination names; the most specific range wins, else the default.

    ``test``: where test-mode requests go. None: nowhere (:class:`NoRoute`): a test payment must never reach a
    live issuer because no test destination was named.
    """

    _CACHE_MAX = 65_536

    def __init__(self, routes: Iterable[Route], default: str | None = None, *, test: str | None = None) -> None:
        self.routes = sorted(routes, key=lambda r: r.width)
        self.default = default
        self.test = test
        self._cache: dict[str, str | None] = {}
        self._key_len = max((len(r.low) for r in self.routes), default=0)

    def destination(self, pan: str, *, test_mode: bool = False) -> str:
        if test_mode:
            if self.test is None:
                raise NoRoute("no [routing] test destination: test-mode payments are not sent")
            return self.test
        # Routes only look at the first _key_len digits: cache on those.
        key = pan[: self._key_len]
        try:
            dest = self._cache[key]
        except KeyError:
            dest = next((r.destination for r in self.routes if r.covers(pan)), None)
            if len(self._cache) >= self._CACHE_MAX:
                self._cache.clear()
            self._cache[key] = dest
        if dest is None:
            if self.default is None:
                raise NoRoute("no route for this card range and no default route")
            return self.default
        return dest


class Router:
    """Pools by name plus a routing table: ``await router.request(msg)`` routes on DE 2."""

    def __init__(self, pools: Iterable[Pool], table: RoutingTable) -> None:
        self.pools = {p.name: p for p in pools}
        self.table = table
        for r in table.routes:
            if r.destination not in self.pools:
                raise ValueError(f"route {r.low}-{r.high} names unknown destination {r.destination}")
        if table.default is not None and table.default not in self.pools:
            raise ValueError(f"default route names unknown destination {table.default}")
        if table.test is not None and table.test not in self.pools:
            raise ValueError(f"test route names unknown destination {table.test}")

    def pool_for(self, pan: str, *, test_mode: bool = False) -> Pool:
        return self.pools[self.table.destination(pan, test_mode=test_mode)]

    async def request_to(self, destination: str, msg: Message, *, timeout: float | None = None) -> Message:
        """Send to the named pool (where an original went), or route on DE 2 when it no longer exists."""
        pool = self.pools.get(destination)
        if pool is None:
            pool = self.pool_for(msg.get("2", ""))
        return await pool.request(msg, timeout=timeout)

    async def request(self, msg: Message, *, timeout: float | None = None, test_mode: bool = False) -> Message:
        return await self.pool_for(msg.get("2", ""), test_mode=test_mode).request(msg, timeout=timeout)

    def start(self) -> None:
        for p in self.pools.values():
            p.start()

    async def wait_ready(self, timeout: float | None = None) -> None:
        await asyncio.gather(*(p.wait_ready(timeout) for p in self.pools.values()))

    async def close(self, *, timeout: float | None = None) -> None:
        await asyncio.gather(*(p.close(timeout=timeout) for p in self.pools.values()))
