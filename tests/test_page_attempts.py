"""One hosted page paid from two processes at once: the card authorized is the card the order keeps.

``engine.lock`` serialises the payments of one order inside a process only. Two runtimes on one
PostgreSQL stand for two ``isoswitch serve`` workers, each with its own :class:`PaymentPages`; the
real simulator answers the 0100. The interleaving the review found is forced by holding each
payment just before its 0100 (no mock: the methods run as they are, only later): A's card goes on,
B reads the order after that (still ``new``, no operation) and submits another card, A's 0100
leaves, then B goes on.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from waiting import wait_for

from acquirer_sim import SimServer
from switch.config import SwitchConfig
from switch.orders.errors import Rejected
from switch.orders.model import OrderStatus
from switch.orders.pages import PageClosed
from switch.orders.requests import CreateRequest
from switch.runtime import Runtime, RuntimeConfig, open_runtime
from switch.store import DbConfig
from switch.translate import Card

pytestmark = pytest.mark.timeout(60)

CARD_A = Card("4111111111111111", expiry_month=12, expiry_year=2031, cvv="123", holder="ALICE A")
CARD_B = Card("5200000000001005", expiry_month=11, expiry_year=2032, cvv="456", holder="BOB B")


@pytest.fixture
async def two(sim: SimServer, fresh_dsn: str, scratch_dir: Path) -> AsyncIterator[tuple[Runtime, Runtime]]:  # noqa: F811
    """Two runtimes (nodes 1 and 2) on one database, one PAN key, one simulator."""
    assert sim.address is not None
    host, port = sim.address
    env = {"ISOSWITCH_PAN_KEY": base64.b64encode(secrets.token_bytes(32)).decode()}
    runtimes: list[Runtime] = []
    try:
        for node in (1, 2):
            switch = SwitchConfig.from_dict(
                {
                    "switch": {"node_id": node},
                    "destinations": [{"name": "sim", "host": host, "port": port, "links": 1, "echo_interval": 0.0}],
                    "routing": {"default": "sim", "test": "sim"},
                }
            )
            data_dir = scratch_dir / f"node{node}"
            data_dir.mkdir()
            db = DbConfig(url=fresh_dsn, data_dir=data_dir, min_size=1, max_size=4)
            runtimes.append(
                await open_runtime(RuntimeConfig(db=db, switch=switch, request_timeout=2.0, close_timeout=2.0, env=env))
            )
        yield runtimes[0], runtimes[1]
    finally:
        for r in reversed(runtimes):
            await r.close()


async def test_two_workers_paying_one_page_authorize_one_card_and_the_order_keeps_that_card(
    two: tuple[Runtime, Runtime],
) -> None:
    first, second = two
    project, _ = await first.projects.create("project")
    order, token = await first.pages.create(project, CreateRequest(amount=Decimal("9.99")))

    # A holds just before its 0100 until B has got as far as it can; B holds before its own until A is done.
    b_reached, a_done = asyncio.Event(), asyncio.Event()
    authorize_a, authorize_b = first.pages._authorize, second.pages._authorize

    async def held_a(*args: Any) -> None:
        await b_reached.wait()
        try:
            await authorize_a(*args)
        finally:
            a_done.set()

    async def held_b(*args: Any) -> None:
        b_reached.set()
        await a_done.wait()
        await authorize_b(*args)

    first.pages._authorize = held_a  # type: ignore[method-assign]
    second.pages._authorize = held_b  # type: ignore[method-assign]

    a = asyncio.create_task(first.pages.pay(token, CARD_A))

    async def card_a_on() -> bool:
        stored = await first.orders.engine.repo.get(project.id, order.id)
        return stored is not None and stored.pan_mask is not None

    await wait_for(card_a_on, what="A's card attached")
    b = asyncio.create_task(second.pages.pay(token, CARD_B))
    await asyncio.wait({b, asyncio.ensure_future(b_reached.wait())}, return_when=asyncio.FIRST_COMPLETED)
    b_reached.set()  # B refused before its 0100: A goes on
    view_a = await a
    b_result = await asyncio.gather(b, return_exceptions=True)

    assert view_a.closed == "paid" and view_a.order.status is OrderStatus.AUTHORIZED
    engine = first.orders.engine
    stored = await engine.repo.get(project.id, order.id)
    assert stored is not None and stored.status is OrderStatus.AUTHORIZED and len(stored.operations) == 1
    assert engine.cards.card(stored).pan == CARD_A.pan, "the order keeps the card it was authorized on"
    assert stored.pan_mask == "411111****1111" and stored.card_holder == "ALICE A"
    (refusal,) = b_result
    assert isinstance(refusal, PageClosed) and refusal.view.closed in ("pending", "paid"), refusal
    assert isinstance(refusal, Rejected)  # the front shows the page as it is (no 500)
