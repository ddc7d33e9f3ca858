"""Webhook endpoints, signing secrets and the outbox/delivery log in PostgreSQL (008_webhooks.sql).

Secrets are ``whsec_`` + base64 of 24 random bytes (the Standard Webhooks form). They must be
recoverable to sign, so they are sealed with the vault (never hashed), and shown once: when an
endpoint is added, or when a project's callback secret is made or rotated.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import asyncpg

__all__ = ["Delivery", "SealingVault", "WebhookStore", "new_secret"]


class SealingVault(Protocol):
    def seal(self, plaintext: bytes, aad: bytes) -> tuple[str, bytes]: ...
    def open(self, key_id: str, blob: bytes, aad: bytes) -> bytes: ...


def new_secret() -> str:
    """A fresh signing secret in the Standard Webhooks form."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _endpoint_aad(endpoint_id: int) -> bytes:
    return f"webhook-endpoint:{endpoint_id}".encode()


def _project_aad(project_id: int) -> bytes:
    return f"webhook-project:{project_id}".encode()


@dataclass(frozen=True, slots=True)
class Delivery:
    """A claimed outbox row: what to send where (attempts already counts this one)."""

    id: int
    event_id: str
    project_id: int
    order_id: str
    payload: dict[str, Any] | None  # None: render the order as it is now (events written by recovery)
    endpoint_id: int | None
    url: str | None  # the endpoint's URL or the order's notification URL; None: the endpoint is gone
    key_id: str | None  # the endpoint's sealed secret (None for a notification URL)
    secret_blob: bytes | None
    attempts: int


_ENDPOINT_COLUMNS = "id, project_id, name, url, created"

# Rows past their retry window ($3 seconds from retry_from; NULL: no window) are failed here, not claimed: a
# delivery that fails before its attempt is recorded would otherwise be claimed again every lease, forever.
# (The CTEs see the same snapshot: `due` skips the expired rows by the same test, never by the update.)
_CLAIM = """
WITH expired AS (
    UPDATE webhook_outbox
    SET state = 'failed', last_error = coalesce(last_error, 'retry window over')
    WHERE state = 'pending' AND next_attempt_at <= now()
      AND $3::float8 IS NOT NULL AND retry_from + $3 * interval '1 second' < now()
    RETURNING id
), due AS (
    SELECT id, endpoint_id FROM webhook_outbox
    WHERE state = 'pending' AND next_attempt_at <= now()
      AND ($3::float8 IS NULL OR retry_from + $3 * interval '1 second' >= now())
    ORDER BY next_attempt_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE webhook_outbox AS w
SET attempts = w.attempts + 1, next_attempt_at = now() + $2 * interval '1 second', last_attempt_at = now()
FROM due LEFT JOIN webhook_endpoints AS e ON e.id = due.endpoint_id
WHERE w.id = due.id
RETURNING w.id, w.event_id, w.project_id, w.order_id, w.payload, w.endpoint_id, w.attempts,
    CASE WHEN w.endpoint_id IS NULL THEN w.url WHEN e.removed_at IS NULL THEN e.url END AS url,
    e.key_id, e.secret_blob
"""

_DELIVERED = """
UPDATE webhook_outbox SET state = 'delivered', last_status = $2, last_error = NULL, delivered_at = now()
WHERE id = $1 AND state = 'pending'
"""

# A failed attempt: retried after $2 seconds, unless that is past the retry window ($5 seconds from retry_from).
_FAILED = """
UPDATE webhook_outbox
SET state = CASE WHEN $6 OR now() + $2 * interval '1 second' > retry_from + $5 * interval '1 second'
                 THEN 'failed' ELSE 'pending' END,
    next_attempt_at = now() + $2 * interval '1 second', last_status = $3, last_error = $4
WHERE id = $1 AND state = 'pending'
RETURNING state
"""

_LIST = """
SELECT w.id, w.event_id, w.project_id, p.name AS project, w.order_id, w.event_type, w.endpoint_id,
       e.name AS endpoint, coalesce(e.url, w.url) AS url, w.state, w.attempts, w.last_status, w.last_error,
       w.last_attempt_at, CASE WHEN w.state = 'pending' THEN w.next_attempt_at END AS next_attempt_at,
       w.delivered_at, w.created
FROM webhook_outbox w JOIN projects p ON p.id = w.project_id LEFT JOIN webhook_endpoints e ON e.id = w.endpoint_id
WHERE ($1::text IS NULL OR p.login = $1) AND ($2::text IS NULL OR e.name = $2 OR e.id::text = $2)
  AND ($3::text IS NULL OR w.state = $3)
ORDER BY w.id
LIMIT $4
"""

_PROJECT_LOG = """
SELECT w.id, w.event_id, w.order_id, w.event_type, e.name AS endpoint, coalesce(e.url, w.url) AS url, w.state,
       w.attempts, w.last_status, w.last_error, w.last_attempt_at, w.delivered_at, w.created
FROM webhook_outbox w LEFT JOIN webhook_endpoints e ON e.id = w.endpoint_id
WHERE w.project_id = $1
ORDER BY w.id DESC
LIMIT $2
"""


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


class WebhookStore:
    """SQL of endpoints, secrets and deliveries; the vault seals and opens the secrets."""

    def __init__(self, pool: asyncpg.Pool, vault: SealingVault) -> None:
        self._pool = pool
        self._vault = vault

    # -- endpoints (the CLI) ---------------------------------------------------

    async def add_endpoint(self, project_id: int, name: str, url: str) -> tuple[dict[str, Any], str]:
        """A new endpoint and its secret (shown only now). ValueError when the name is taken."""
        secret = new_secret()
        async with self._pool.acquire() as conn, conn.transaction():
            try:
                row = await conn.fetchrow(
                    "INSERT INTO webhook_endpoints (project_id, name, url, key_id, secret_blob)"
                    f" VALUES ($1, $2, $3, '', '') RETURNING {_ENDPOINT_COLUMNS}",
                    project_id,
                    name,
                    url,
                )
            except asyncpg.UniqueViolationError:
                raise ValueError(f"the project already has an endpoint named {name!r}") from None
            assert row is not None
            # Sealed with the id as associated data: known only after the insert.
            key_id, blob = self._vault.seal(secret.encode(), _endpoint_aad(row["id"]))
            await conn.execute(
                "UPDATE webhook_endpoints SET key_id = $2, secret_blob = $3 WHERE id = $1", row["id"], key_id, blob
            )
        return _endpoint(row), secret

    async def endpoints(self, project_id: int) -> list[dict[str, Any]]:
        rows = await self._pool.fetch(
            f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE project_id = $1 AND removed_at IS NULL"
            " ORDER BY id",
            project_id,
        )
        return [_endpoint(r) for r in rows]

    async def remove_endpoint(self, project_id: int, which: str) -> bool:
        """Remove the live endpoint named (or numbered) ``which``; its pending deliveries fail at their next try."""
        status = await self._pool.execute(
            "UPDATE webhook_endpoints SET removed_at = now()"
            " WHERE project_id = $1 AND removed_at IS NULL AND (name = $2 OR id::text = $2)",
            project_id,
            which,
        )
        return bool(status != "UPDATE 0")

    async def rotate_endpoint_secret(self, project_id: int, endpoint_id: int) -> str | None:
        """A new signing secret for the project's live endpoint (shown only now; the old one stops signing at
        once, retries included); None: the project has no such endpoint."""
        secret = new_secret()
        key_id, blob = self._vault.seal(secret.encode(), _endpoint_aad(endpoint_id))
        status = await self._pool.execute(
            "UPDATE webhook_endpoints SET key_id = $3, secret_blob = $4"
            " WHERE id = $2 AND project_id = $1 AND removed_at IS NULL",
            project_id,
            endpoint_id,
            key_id,
            blob,
        )
        return secret if status != "UPDATE 0" else None

    async def projects_with_endpoints(self) -> frozenset[int]:
        rows = await self._pool.fetch("SELECT DISTINCT project_id FROM webhook_endpoints WHERE removed_at IS NULL")
        return frozenset(r["project_id"] for r in rows)

    # -- secrets -----------------------------------------------------------------

    def endpoint_secret(self, endpoint_id: int, key_id: str, blob: bytes) -> str:
        return self._vault.open(key_id, bytes(blob), _endpoint_aad(endpoint_id)).decode()

    async def rotate_project_secret(self, project_id: int) -> str:
        """A new callback secret for the project's notification URLs (shown only now; the old one stops)."""
        secret = new_secret()
        key_id, blob = self._vault.seal(secret.encode(), _project_aad(project_id))
        await self._pool.execute(
            "INSERT INTO webhook_project_secrets (project_id, key_id, secret_blob) VALUES ($1, $2, $3)"
            " ON CONFLICT (project_id) DO UPDATE SET key_id = $2, secret_blob = $3, created = now()",
            project_id,
            key_id,
            blob,
        )
        return secret

    async def project_secret(self, project_id: int) -> str:
        """The project's callback secret, made now if it has none (the merchant gets it by rotating)."""
        sql = "SELECT key_id, secret_blob FROM webhook_project_secrets WHERE project_id = $1"
        row = await self._pool.fetchrow(sql, project_id)
        if row is None:
            key_id, blob = self._vault.seal(new_secret().encode(), _project_aad(project_id))
            await self._pool.execute(
                "INSERT INTO webhook_project_secrets (project_id, key_id, secret_blob) VALUES ($1, $2, $3)"
                " ON CONFLICT DO NOTHING",
                project_id,
                key_id,
                blob,
            )
            row = await self._pool.fetchrow(sql, project_id)  # whoever inserted first
            assert row is not None
        return self._vault.open(row["key_id"], bytes(row["secret_blob"]), _project_aad(project_id)).decode()

    # -- deliveries (the worker) ---------------------------------------------------

    async def claim(self, limit: int, lease: float, max_age: float | None = None) -> list[Delivery]:
        """Due rows, leased for ``lease`` seconds (another process takes them again after that).

        Due rows older than ``max_age`` seconds (from their retry window's start) are left ``failed`` instead.
        """
        rows = await self._pool.fetch(_CLAIM, limit, lease, max_age)
        return [
            Delivery(
                id=r["id"],
                event_id=r["event_id"],
                project_id=r["project_id"],
                order_id=r["order_id"],
                payload=r["payload"],
                endpoint_id=r["endpoint_id"],
                url=r["url"],
                key_id=r["key_id"],
                secret_blob=r["secret_blob"],
                attempts=r["attempts"],
            )
            for r in rows
        ]

    async def delivered(self, delivery_id: int, status: int) -> None:
        await self._pool.execute(_DELIVERED, delivery_id, status)

    async def attempt_failed(
        self, delivery_id: int, retry_in: float, status: int | None, error: str, max_age: float, *, final: bool = False
    ) -> str | None:
        """Record a failed attempt; the row's state after it (``pending`` or ``failed``)."""
        state: str | None = await self._pool.fetchval(
            _FAILED, delivery_id, retry_in, status, error[:500], max_age, final
        )
        return state

    async def depth(self) -> tuple[int, int]:
        """(pending, failed) deliveries: each counted on its partial index (008, 013), for the metrics."""
        row = await self._pool.fetchrow(
            "SELECT (SELECT count(*) FROM webhook_outbox WHERE state = 'pending') AS pending,"
            " (SELECT count(*) FROM webhook_outbox WHERE state = 'failed') AS failed"
        )
        assert row is not None
        return int(row["pending"]), int(row["failed"])

    async def list_deliveries(
        self, *, project: str | None = None, endpoint: str | None = None, state: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """The delivery log, oldest first: one row per event and destination, with its last attempt."""
        rows = await self._pool.fetch(_LIST, project, endpoint, state, limit)
        return [{k: _iso(v) for k, v in dict(r).items()} for r in rows]

    async def project_deliveries(self, project_id: int, *, limit: int = 50) -> list[dict[str, Any]]:
        """The project's delivery log, newest first (the portal's page; ``webhook_outbox_project`` index)."""
        rows = await self._pool.fetch(_PROJECT_LOG, project_id, limit)
        return [dict(r) for r in rows]

    async def redeliver(self, event_id: str, *, project_id: int | None = None) -> int:
        """Send the event again to each of its destinations, with a new retry window; how many.

        ``project_id``: only that project's event (the portal: a forged id of another project's event is 0).
        """
        status = await self._pool.execute(
            "UPDATE webhook_outbox SET state = 'pending', next_attempt_at = now(), retry_from = now()"
            " WHERE event_id = $1 AND ($2::bigint IS NULL OR project_id = $2)",
            event_id,
            project_id,
        )
        return int(status.split()[-1])


def _endpoint(row: asyncpg.Record) -> dict[str, Any]:
    return {k: _iso(v) for k, v in dict(row).items()}
