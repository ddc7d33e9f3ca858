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

if TYPE_CHECKING:
    from http_front.server import RunningServer
    from switch.runtime import Runtime

__all__ = ["shutdown"]

log = logging.getLogger("isoswitch.shutdown")


async def shutdown(server: RunningServer, runtime: Runtime, deadline: float) -> None:
    """Stop ``server`` and ``runtime`` in order; never takes much longer than ``deadline`` seconds."""
    started = time.monotonic()
    end = started + deadline
    log.info("shutting down: stop accepting, drain in flight", extra={"deadline_s": deadline})
    # Both listeners stop accepting together; each then drains its own requests.
    steps: list[Awaitable[None]] = [server.close()]
    if runtime.listener is not None:
        steps.append(runtime.listener.close(max(0.0, end - time.monotonic())))
    await _step("front", asyncio.gather(*steps), end)
    await _step("core", runtime.close(), end, floor=1.0)
    log.info("shut down", extra={"seconds": round(time.monotonic() - started, 3)})


async def _step(name: str, work: Awaitable[Any], end: float, floor: float = 0.0) -> None:
    # The database must still be closed after a step overran: a last step gets ``floor`` seconds anyway.
    budget = max(end - time.monotonic(), floor)
    t0 = time.monotonic()
    try:
        await asyncio.wait_for(work, budget)
    except TimeoutError:
        log.warning("shutdown step %s overran the deadline: cancelled", name, extra={"budget_s": round(budget, 3)})
    except Exception:
        log.exception("shutdown step %s failed", name)
    else:
        log.info("shutdown step %s done", name, extra={"seconds": round(time.monotonic() - t0, 3)})
