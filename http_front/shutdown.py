"""Orderly shutdown of one serving process, within a deadline.

On SIGTERM/SIGINT (uvicorn's order, adapted to a switch):

1. stop accepting: the REST port and the ISO listener close their listening
   sockets at once, so a peer's reconnect goes to another worker or node;
2. drain: requests in progress, REST and ISO, get to finish (their ISO
   messages still go out on the links, their results are still written);
3. close the core (:meth:`switch.runtime.Runtime.close`): the store-and-forward
   worker stops, the links drain what is still in flight and sign off
   (0800/002), the group writer flushes, id leases end, the database closes;
4. whatever is still running when the deadline passes is cancelled, with a
   log line naming the step: an operation cut there stays ``pending`` with its
   intent written, and recovery reverses it at the next start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from switch.runtime import bounded

if TYPE_CHECKING:
    from http_front.server import RunningServer
    from switch.runtime import Runtime

__all__ = ["budgets", "http_drain", "shutdown"]

log = logging.getLogger("isoswitch.shutdown")


async def shutdown(server: RunningServer, runtime: Runtime, deadline: float) -> None:
    """Stop ``server`` and ``runtime`` in order, within ``deadline`` seconds (plus at most a second of grace).

    The core's step is kept ``_CORE_SHARE`` of the deadline (at least a second), so requests that
    drain slowly cannot leave the links no time to sign off or the writer none to flush; the REST
    server's own drain is capped by :func:`http_drain` when it starts, so it ends inside its budget.
    """
    started = time.monotonic()
    log.info("shutting down: stop accepting, drain in flight", extra={"deadline_s": deadline})
    front_budget, core = budgets(deadline)
    # Both listeners stop accepting together; each then drains its own requests.
    steps: list[Awaitable[Any]] = [server.close()]
    if runtime.listener is not None:
        steps.append(runtime.listener.close(timeout=front_budget))
    if await bounded("front", asyncio.gather(*steps), front_budget):
        log.info("shutdown step front done", extra={"seconds": round(time.monotonic() - started, 3)})
    t0 = time.monotonic()
    if await bounded("core", runtime.close(), max(core, started + deadline - t0)):
        log.info("shutdown step core done", extra={"seconds": round(time.monotonic() - t0, 3)})
    log.info("shut down", extra={"seconds": round(time.monotonic() - started, 3)})


_CORE_SHARE = 0.3  # of the deadline, kept for closing the core


def budgets(deadline: float) -> tuple[float, float]:
    """Seconds for the front's drain and for closing the core, out of ``deadline``.

    >>> budgets(25.0)
    (17.5, 7.5)
    """
    core = min(deadline / 2, max(1.0, deadline * _CORE_SHARE))
    return deadline - core, core


def http_drain(deadline: float, http_timeout: float) -> float:
    """What aiohttp may wait for requests in flight before it cancels them: its own setting, but at
    most half the front's budget (aiohttp may wait as long again for the cancelled handlers), so
    that no request still runs when the core closes under it.

    >>> http_drain(25.0, 10.0), http_drain(10.0, 10.0)
    (8.75, 3.5)
    """
    return min(http_timeout, budgets(deadline)[0] / 2)
