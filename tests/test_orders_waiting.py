"""Orders that wait for the cardholder (status new or prepared): written before any operation, made by the first.

The hosted payment page (``/orders/create``) and 3-D Secure both keep an
order waiting; its first authorization then makes its status exactly as a
new order's would (the engine's VERDICTS), through the same write-ahead path.
"""

from __future__ import annotations

import pg
import pytest
import test_orders_fixtures
from test_orders_fixtures import NEXT_YEAR, PAN, Rig

from switch.money import currency
from switch.orders import OrderStatus
from switch.orders.engine import Engine, Step, merchant_of
from switch.orders.model import OperationStatus, OperationType, Order
from switch.translate import Authorize, Card

database, fresh_dsn, pg_dsn = pg.database, pg.fresh_dsn, pg.pg_dsn
rig = test_orders_fixtures.rig

pytestmark = pytest.mark.timeout(30)

DECLINED = "4276990011343663"  # seeds/003: declined without 3-D Secure
USD = currency("USD")


def _engine(rig: Rig) -> Engine:
    engine: Engine = rig.orders.service.engine
    return engine


async def _waiting(rig: Rig, engine: Engine) -> Order:
    now = engine.clock()
    order_id = await engine.take(engine.ids.order_id)
    card = Card(PAN, expiry_month=12, expiry_year=NEXT_YEAR)
    order = engine.cards.new_order(rig.project, order_id, card, 999, USD, now, rrn="", recurring=False)
    order.rrn = None
    await engine.repo.create_waiting(order)
    return order


async def _authorize(rig: Rig, engine: Engine, order: Order, pan: str) -> None:
    now = engine.clock()
    rrn = await engine.take(lambda: engine.ids.rrn(now))
    card = Card(pan, expiry_month=12, expiry_year=NEXT_YEAR, cvv="123")
    msg = engine.translate(
        lambda: Authorize(merchant=merchant_of(rig.project.settings), card=card, amount=999, currency=USD, rrn=rrn),
        now,
    )
    await engine.perform(rig.project, order, Step(OperationType.AUTHORIZE, 999, msg, now))


async def test_a_waiting_order_is_stored_without_operations_and_read_back_as_it_was(rig: Rig) -> None:
    engine = _engine(rig)
    order = await _waiting(rig, engine)
    stored = await engine.repo.get(rig.project.id, order.id)
    assert stored is not None
    assert stored.status is OrderStatus.NEW and stored.operations == [] and stored.pan_mask == "411111****1111"


async def test_save_waiting_moves_new_to_prepared_once_and_refuses_a_stale_copy(rig: Rig) -> None:
    engine = _engine(rig)
    order = await _waiting(rig, engine)
    stale = await engine.repo.get(rig.project.id, order.id)
    assert stale is not None
    order.status = OrderStatus.PREPARED
    order.secure3d = {"reason": "force3d", "scenario": "unknown"}
    assert await engine.repo.save_waiting(order)
    stale.status = OrderStatus.DECLINED
    assert not await engine.repo.save_waiting(stale)  # another request changed it first
    stored = await engine.repo.get(rig.project.id, order.id)
    assert stored is not None and stored.status is OrderStatus.PREPARED and stored.secure3d["reason"] == "force3d"


@pytest.mark.parametrize(("pan", "status"), [(PAN, OrderStatus.AUTHORIZED), (DECLINED, OrderStatus.DECLINED)])
async def test_the_first_operation_of_a_waiting_order_makes_its_status(rig: Rig, pan: str, status: OrderStatus) -> None:
    engine = _engine(rig)
    order = await _waiting(rig, engine)
    await _authorize(rig, engine, order, pan)
    stored = await engine.repo.get(rig.project.id, order.id)
    assert stored is not None
    assert stored.status is status and order.status is status
    (op,) = stored.operations
    assert op.type is OperationType.AUTHORIZE and op.status is not OperationStatus.PENDING


async def test_a_waiting_order_that_is_made_no_longer_saves_as_waiting(rig: Rig) -> None:
    engine = _engine(rig)
    order = await _waiting(rig, engine)
    await _authorize(rig, engine, order, PAN)
    fresh = await engine.repo.get(rig.project.id, order.id)
    assert fresh is not None
    fresh.status = OrderStatus.PREPARED
    assert not await engine.repo.save_waiting(fresh)
