"""Idempotency-Key on an authorization that asks for 3-D Secure: the 201 carrying the browser's tokens (MD,
PaReq, method data) is answered once and never kept in the idempotency table in clear; a replay gets a 409 in
the failure shape naming the order, and no second order or 0100. The real simulator (DS, ACS), PostgreSQL and
the REST front (tests/secure3d_rig.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import secure3d_rig
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from secure3d_rig import BROWSER, Rig, body

from http_front.idempotency import FORM_NOT_REPLAYED

pytestmark = pytest.mark.timeout(60)

VISA = "4111111111111111"
NO_METHOD = "4000000000003063"


@pytest.fixture
async def rig(fresh_dsn: str, scratch_dir: Path) -> AsyncIterator[Rig]:  # noqa: F811
    async for r in secure3d_rig.open_rig(fresh_dsn, scratch_dir):
        yield r


async def _post(rig: Rig, doc: dict[str, Any], key: str) -> tuple[int, dict[str, Any], str | None]:
    hdrs = {"Content-Type": "application/json", "Idempotency-Key": key, **rig.auth}
    resp = await rig.http.post("/orders/authorize", data=orjson.dumps(doc), headers=hdrs)
    return resp.status, orjson.loads(await resp.read()), resp.headers.get("Idempotent-Replayed")


async def _stored_bodies(rig: Rig) -> list[str]:
    rows = await rig.runtime.db.pool.fetch("SELECT status_code, body FROM idempotency_keys")
    return [bytes(r["body"]).decode() for r in rows if r["body"] is not None]


async def test_a_3ds1_form_is_answered_once_and_its_md_and_pareq_never_reach_the_idempotency_table(rig: Rig) -> None:
    status, doc, _ = await _post(rig, body(VISA), "k-3ds1")
    assert status == 201, doc
    order = doc["orders"][0]
    tokens = [order["form3d"]["MD"], order["form3d"]["PaReq"]]
    (stored,) = await _stored_bodies(rig)
    assert not any(t in stored for t in tokens) and "form3d" not in stored
    status, again, replayed = await _post(rig, body(VISA), "k-3ds1")
    assert status == 409 and replayed == "true"
    assert again == {"failure_type": "validation", "failure_message": FORM_NOT_REPLAYED, "order_id": order["id"]}
    assert len(await rig.runtime.db.pool.fetch("SELECT id FROM orders")) == 1 and rig.iso("0100") == []


async def test_a_3ds2_method_step_keeps_no_method_data_in_the_idempotency_table(rig: Rig) -> None:
    doc = body(VISA, secure3d={"browser_details": BROWSER})
    status, answer, _ = await _post(rig, doc, "k-3ds2")
    assert status == 201 and answer["message"] == "Method3d required", answer
    (stored,) = await _stored_bodies(rig)
    assert answer["method3d_params"]["method_data"] not in stored and "method3d_params" not in stored
    status, again, replayed = await _post(rig, doc, "k-3ds2")
    assert (status, replayed, again["order_id"]) == (409, "true", answer["order_id"])


async def test_an_authorization_without_a_form_is_still_replayed_byte_for_byte(rig: Rig) -> None:
    # 3DS2 frictionless: no browser step, the 200 of the authorized order is kept and replayed as before.
    doc = body(NO_METHOD, secure3d={"browser_details": BROWSER})
    status, first, _ = await _post(rig, doc, "k-frictionless")
    assert status == 200 and first["orders"][0]["status"] == "authorized", first
    status, again, replayed = await _post(rig, doc, "k-frictionless")
    assert (status, replayed, again) == (200, "true", first) and len(rig.iso("0100")) == 1
