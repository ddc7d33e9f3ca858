"""The orders rig: a real PostgreSQL database (tests/pg.py), the real simulator on
127.0.0.1 port 0, a real Router over TCP, the store's writer/ids/vault, and
an OrdersService over them. Other test_orders_* modules import the fixtures::

        from test_orders_fixtures import Rig, rig  # noqa: F401  (fixtures)
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pg
import pytest
from json_orders import JsonOrders

from acquirer_sim import SimServer
from switch.config import SwitchConfig
from switch.orders import OrdersService
from switch.orders.engine import Engine
from switch.pool import Router
from switch.store import Database, DbIds, GroupWriter, Project, Projects, ProjectSettings, Vault
from switch.wire.codec import Message

__all__ = ["NEXT_YEAR", "Rig", "body", "rig"]

# The PostgreSQL fixtures (tests/pg.py), made visible to this module.
database, fresh_dsn, pg_dsn = pg.database, pg.fresh_dsn, pg.pg_dsn

pytestmark = pytest.mark.timeout(30)

NEXT_YEAR = datetime.now(UTC).year + 1
PAN = "4111111111111111"


def body(pan: str = PAN, amount: str = "9.99", **extra: Any) -> dict[str, Any]:
    """An authorize body like the doc's 'only required fields' example."""
    doc: dict[str, Any] = {
        "amount": amount,
        "pan": pan,
        "card": {"cvv": "123", "holder": "John Smith", "expiration_month": "12", "expiration_year": str(NEXT_YEAR)},
        "location": {"ip": "6.6.6.6"},
    }
    doc.update(extra)
    return doc


def settings(project_no: int, **overrides: Any) -> ProjectSettings:
    values: dict[str, Any] = {
        "terminal_id": f"TERM{project_no:04d}",
        "merchant_id": f"MERCHANT{project_no:07d}",
        "descriptor": "TESTMERCH/TERM",
        "fee_rate": Decimal("3"),
        "reserve_rate": Decimal("0"),
    }
    values.update(overrides)
    return ProjectSettings(**values)


@dataclass
class Rig:
    sim: SimServer
    db: Database
    router: Router
    writer: GroupWriter
    ids: DbIds
    vault: Vault
    projects: Projects
    orders: JsonOrders  # the service, driven with the API's JSON bodies
    project: Project
    sent: list[Message] = field(default_factory=list)  # every request the sim received, in order

    async def project_with(self, name: str, **overrides: Any) -> Project:
        no = 100 + len(name) + secrets.randbelow(9000)
        project, _ = await self.projects.create(name, settings(no, **overrides))
        return project

    def sent_of(self, mti: str) -> list[Message]:
        return [m for m in self.sent if m["t"] == mti]

    async def rows(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        return [dict(r) for r in await self.db.pool.fetch(sql, *args)]


class _RecordingIssuer:
    """The simulator's issuer, keeping a copy of every request it handles (its ledger drops DE 120-124)."""

    def __init__(self, issuer: Any, sent: list[Message]) -> None:
        self._issuer = issuer
        self._sent = sent

    def handle(self, msg: Message) -> Any:
        self._sent.append(dict(msg))
        return self._issuer.handle(msg)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._issuer, name)


def _record_requests(sim: SimServer, sent: list[Message]) -> None:
    sim.issuer = _RecordingIssuer(sim.issuer, sent)  # type: ignore[assignment]


@pytest.fixture
async def rig(sim: SimServer, database: Database) -> AsyncIterator[Rig]:
    assert sim.address is not None
    host, port = sim.address
    cfg = SwitchConfig.from_dict(
        {
            "destinations": [
                {"name": "sim", "host": host, "port": port, "links": 2, "echo_interval": 0.0, "timeout": 2.0}
            ],
            "routing": {"default": "sim", "test": "sim"},
        }
    )
    router = cfg.build_router()
    router.start()
    await router.wait_ready(5.0)
    writer = GroupWriter(database.pool)
    ids = DbIds(database.pool, block_size=50)
    await ids.start()
    vault = Vault({"t1": secrets.token_bytes(32)}, current="t1")
    projects = Projects(database.pool)
    project, _ = await projects.create("shop", settings(1))
    orders = JsonOrders(OrdersService(Engine(router, database, writer, ids, vault, request_timeout=2.0)))
    r = Rig(sim, database, router, writer, ids, vault, projects, orders, project)
    _record_requests(sim, r.sent)
    try:
        yield r
    finally:
        await router.close(timeout=1.0)
        await writer.close(timeout=1.0)
        await ids.close()


async def test_the_rig_authorizes_a_test_card_over_tcp_and_stores_the_order(rig: Rig) -> None:
    order = await rig.orders.authorize(rig.project, body())
    assert order.status.value == "authorized"
    assert [m["t"] for m in rig.sent] == ["0100"]
    (row,) = await rig.rows("SELECT status, amount, pan_mask FROM orders WHERE id = $1", order.id)
    assert row == {"status": "authorized", "amount": 999, "pan_mask": "411111****1111"}
    await asyncio.sleep(0)
