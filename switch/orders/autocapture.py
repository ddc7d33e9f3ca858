"""Auto-capture (seeds/000 "Autocapture enabled", "Capture time (in hours)"): a project's authorizations charged
``capture_hours`` after they were made, through the orders service (the same ``charge`` as ``PUT
/orders/:id/charge``, in the audit log with the channel ``autocapture``).

Durable without a queue of its own: what is due is read from the orders (status ``authorized``, made long
enough ago, its project's ``auto_capture`` on; migration 035's partial index), so what fell due while no
process ran is charged by the next one that starts. Like the 3-D Secure sweep (:mod:`switch.secure3d.sweep`)
it runs in every serving process; a round claims at most ``batch`` orders in ``auto_captures`` with a lease
(one ``INSERT ... ON CONFLICT`` per round: of two processes that see the same order, one claims it). A process
that dies mid-charge leaves a lease that runs out and the order is taken again; the charge itself is the
engine's write-ahead path, so a half-done one is reversed or completed by recovery, never doubled (the
status table refuses a second charge of a charged order).

Outcomes: charged (``done``); refused by the issuer or the status table (``failed``, final: the merchant
decides, the portal shows why); the issuer unreachable (retried with backoff, ``failed`` after
``max_attempts``). Times come from ``clock`` (the engine's), so tests move it instead of waiting hours.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from switch.background import Periodic
from switch.orders.errors import Declined, Fraud, InvalidInput, Rejected
from switch.orders.model import Order
from switch.orders.requests import AmountRequest
from switch.store.audit import RequestSource, request_source
from switch.store.projects import Project

__all__ = ["AutoCapture", "AutoCaptureConfig"]

log = logging.getLogger("isoswitch.autocapture")


@dataclass(frozen=True, slots=True)
class AutoCaptureConfig:
    """How often the job looks (``interval`` 30 s: capture times are hours), ``batch`` orders a round at most,
    the ``lease`` on a claimed order (120 s: longer than a charge with its retries), and the retries of an
    unreachable issuer (``max_attempts`` 10, from ``backoff`` 60 s doubling to 1 h)."""

    interval: float = 30.0
    batch: int = 50
    lease: float = 120.0
    max_attempts: int = 10
    backoff: float = 60.0

    def __post_init__(self) -> None:
        if not (self.interval > 0 and self.batch > 0 and self.lease > 0 and self.max_attempts > 0):
            raise ValueError("autocapture: interval, batch, lease and max_attempts must be positive")


_CLAIM = """
WITH due AS (
    SELECT o.id, o.project_id, o.created
    FROM projects p
    CROSS JOIN LATERAL (
        SELECT id, project_id, created FROM orders
        WHERE project_id = p.id AND status = 'authorized'
          AND created <= $1::timestamptz - make_interval(hours => coalesce((p.settings ->> 'capture_hours')::int, 24))
          AND NOT EXISTS (SELECT 1 FROM auto_captures a WHERE a.order_id = orders.id
                          AND (a.state <> 'claimed' OR a.next_attempt_at > $1::timestamptz))
        ORDER BY created
        LIMIT $2
    ) o
    WHERE (p.settings ->> 'auto_capture')::boolean IS TRUE
    ORDER BY o.created
    LIMIT $2
)
INSERT INTO auto_captures AS a (order_id, project_id, state, attempts, next_attempt_at, updated)
SELECT id, project_id, 'claimed', 1, $1::timestamptz + $3 * interval '1 second', $1::timestamptz FROM due
ON CONFLICT (order_id) DO UPDATE
SET attempts = a.attempts + 1, next_attempt_at = EXCLUDED.next_attempt_at, updated = EXCLUDED.updated
WHERE a.state = 'claimed' AND a.next_attempt_at <= $1::timestamptz
RETURNING a.order_id, a.project_id, a.attempts
"""

_SETTLE = """
UPDATE auto_captures SET state = $2, next_attempt_at = $3, last_error = $4, updated = $5
WHERE order_id = $1
"""

Charge = Callable[[Project, str, AmountRequest], Awaitable[Order]]
ProjectOf = Callable[[int], Awaitable[Project | None]]


class AutoCapture(Periodic):
    """Charges due authorizations every ``config.interval`` seconds (or when kicked)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        charge: Charge,
        project_of: ProjectOf,
        clock: Callable[[], datetime],
        config: AutoCaptureConfig | None = None,
    ) -> None:
        """``charge``: the orders service's (``OrdersService.charge``); ``project_of``: a project by id."""
        # close() cancels a round still running after CLOSE_TIMEOUT: its charge is the engine's, recovery ends it.
        super().__init__(log=log, failed="auto-capture round failed; retried", interval=lambda: self.config.interval)
        self._pool = pool
        self._charge = charge
        self._project_of = project_of
        self.clock = clock
        self.config = config or AutoCaptureConfig()
        self.captured = 0  # orders this process charged

    def more_due(self, done: int) -> bool:
        return done >= self.config.batch

    async def work_once(self) -> int:
        """One round: the due orders claimed and charged (one at a time: hours late, a second more is nothing)."""
        now = self.clock()
        rows = await self._pool.fetch(_CLAIM, now, self.config.batch, self.config.lease)
        for row in rows:
            if self._stopping:
                break  # the rest's leases run out; the next process (or round) takes them
            await self._capture(row["order_id"], row["project_id"], row["attempts"])
        return len(rows)

    async def _capture(self, order_id: str, project_id: int, attempts: int) -> None:
        project = await self._project_of(project_id)
        if project is None or not project.settings.auto_capture:
            await self._settle(order_id, "failed", "auto-capture was turned off")
            return
        try:
            with request_source(RequestSource(channel="autocapture")):
                await self._charge(project, order_id, AmountRequest())
        except (Declined, Fraud, Rejected, InvalidInput) as e:
            # Final: the issuer said no, or the order changed meanwhile (charged, reversed by the merchant).
            await self._settle(order_id, "failed", f"{e.failure_type}: {e.message}"[:500])
            log.info("auto-capture refused", extra={"order_id": order_id, "failure_type": e.failure_type})
            return
        except Exception as e:
            cfg = self.config
            if attempts >= cfg.max_attempts:
                await self._settle(order_id, "failed", f"gave up after {attempts} attempts: {type(e).__name__}")
            else:
                retry = cfg.backoff * 2 ** (attempts - 1)
                await self._settle(order_id, "claimed", f"{type(e).__name__}: {e}"[:500], retry_in=min(retry, 3600.0))
            log.warning("auto-capture failed; retried later", extra={"order_id": order_id}, exc_info=True)
            return
        await self._settle(order_id, "done", None)
        self.captured += 1
        log.info("authorization auto-captured", extra={"order_id": order_id})

    async def _settle(self, order_id: str, state: str, error: str | None, *, retry_in: float = 0.0) -> None:
        now = self.clock()
        await self._pool.execute(_SETTLE, order_id, state, now + timedelta(seconds=retry_in), error, now)
