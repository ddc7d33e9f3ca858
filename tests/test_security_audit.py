"""The audit log end to end: every back-office call through the real REST app, runtime,
PostgreSQL and simulator leaves one ``audit_log`` row saying who, when, what and how it ended."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from test_http_e2e import PAN, Front, front  # noqa: F401  (fixture)

from isoswitch.cli import main
from switch.store.audit import list_entries

pytestmark = pytest.mark.timeout(60)


async def _rows(f: Front, **filters: Any) -> list[dict[str, Any]]:
    return await list_entries(f.runtime.db.pool, **filters)


async def test_each_back_office_call_leaves_one_audit_row_with_who_when_and_what(front: Front) -> None:  # noqa: F811
    started = dt.datetime.now(dt.UTC)
    parent = (await front.order())["id"]
    assert await _rows(front) == []  # an authorization is the merchant's payment, not back office

    key = {**front.auth, "Idempotency-Key": "charge-1"}
    assert (await front.call("PUT", f"/orders/{parent}/charge", {"amount": "5.00"}, headers=key))[0] == 200
    assert (await front.call("PUT", f"/orders/{parent}/refund", {"amount": "1.00"}))[0] == 200
    assert (await front.call("PUT", f"/orders/{parent}/cancel"))[0] == 200
    status, doc = await front.call("POST", f"/orders/{parent}/rebill", {"amount": Decimal("2.50"), "cvv": "123"})
    assert status == 200
    rebilled = doc["orders"][0]["id"]
    assert (await front.call("PUT", f"/orders/{rebilled}/reverse"))[0] == 200
    status, doc = await front.call("POST", f"/orders/{parent}/credit", {"amount": "3.00"})
    assert status == 200
    credited = doc["orders"][0]["id"]
    status, doc = await front.call("POST", "/orders/credit", {"amount": "4.00", "pan": PAN})
    assert status == 200
    paid_out = doc["orders"][0]["id"]

    rows = await _rows(front)
    got = [(r["action"], r["order_id"], r["new_order_id"], r["amount"], r["currency"], r["result"]) for r in rows]
    assert got == [
        ("charge", parent, None, 500, "USD", "success"),
        ("refund", parent, None, 100, "USD", "success"),
        ("cancel", parent, None, 400, "USD", "success"),  # the rest of the charge, refunded
        ("rebill", parent, rebilled, 250, "USD", "success"),
        ("reverse", rebilled, None, 250, "USD", "success"),
        ("credit", parent, credited, 300, "USD", "success"),
        ("credit", paid_out, paid_out, 400, "USD", "success"),
    ]
    for r in rows:
        assert r["actor"] == "project"
        assert r["source_ip"] == "127.0.0.1"
        assert r["channel"] == "rest"
        assert len(r["request_id"]) == 16  # the X-Request-Id of the call, as in its log lines
        assert r["operation_id"] is not None
        assert dt.datetime.fromisoformat(r["at"]) >= started - dt.timedelta(seconds=1)
    assert rows[0]["idempotency_key"] == "charge-1"
    assert all(r["idempotency_key"] is None for r in rows[1:])
    assert len({r["request_id"] for r in rows}) == len(rows)
    # Never card data: not the PAN, not its last digits beside its BIN, not the holder.
    text = orjson.dumps(rows).decode()
    assert PAN not in text and "John Smith" not in text and "411111" not in text


async def test_refused_and_declined_calls_are_audited_with_their_failure_type(front: Front) -> None:  # noqa: F811
    oid = (await front.order())["id"]
    assert (await front.call("PUT", f"/orders/{oid}/reverse"))[0] == 200
    status, doc = await front.call("PUT", f"/orders/{oid}/charge")
    assert (status, doc["failure_type"]) == (402, "rejected")
    status, _ = await front.call("PUT", "/orders/12345678901234567/refund")
    assert status == 404
    # Another project's order: refused as not found, audited under the caller's login.
    status, _ = await front.call("PUT", f"/orders/{oid}/cancel", headers=front.other)
    assert status == 404
    rows = await _rows(front)
    got = [(r["actor"], r["action"], r["order_id"], r["result"], r["message"], r["operation_id"]) for r in rows]
    assert got == [
        ("project", "reverse", oid, "success", None, 2),
        ("project", "charge", oid, "rejected", "Operation charge is not allowed in status reversed", None),
        ("project", "refund", "12345678901234567", "rejected", "Order not found", None),
        ("other", "cancel", oid, "rejected", "Order not found", None),
    ]
    assert [r["project_id"] for r in rows][-1] != rows[0]["project_id"]


async def test_a_declined_rebill_is_audited_with_the_decline_and_the_order_it_made(front: Front) -> None:  # noqa: F811
    # The sim's small-balance card: 100.00 in all, so a second 80.00 after 50.00 answers 51.
    parent = (await front.order(pan="5105105105105100", amount=Decimal("50.00")))["id"]
    status, doc = await front.call("POST", f"/orders/{parent}/rebill", {"amount": "80.00", "cvv": "123"})
    assert (status, doc["failure_type"]) == (402, "declined")
    (row,) = await _rows(front)
    assert (row["action"], row["order_id"], row["new_order_id"]) == ("rebill", parent, doc["order_id"])
    assert (row["result"], row["amount"], row["operation_id"]) == ("declined", 8000, 1)
    assert row["message"] == doc["failure_message"]


async def test_audit_list_filters_and_the_cli_prints_json_lines(
    front: Front,  # noqa: F811
    fresh_dsn: str,  # noqa: F811
    scratch_dir: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a = (await front.order())["id"]
    b = (await front.order())["id"]
    await front.call("PUT", f"/orders/{a}/reverse")
    await front.call("PUT", f"/orders/{b}/charge")
    assert [r["order_id"] for r in await front.runtime.audit.list(order_id=b)] == [b]  # type: ignore[union-attr]
    assert [r["action"] for r in await _rows(front, action="reverse")] == ["reverse"]
    assert await _rows(front, actor="other") == []
    assert await _rows(front, since=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)) == []
    with pytest.raises(ValueError):
        await _rows(front, action="authorize")

    monkeypatch.setenv("DATABASE_URL", fresh_dsn)
    capsys.readouterr()
    # The command runs its own event loop: in a thread, as it would in its own process.
    argv = ["audit", "list", "--project", "project", "--action", "charge", "--since", "1h"]
    argv += ["--data-dir", str(scratch_dir)]
    status = await asyncio.to_thread(main, argv)
    assert status == 0
    lines = [orjson.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(x["action"], x["order_id"]) for x in lines] == [("charge", b)]
    assert main(["audit", "list", "--limit", "0"]) == 2
    assert main(["audit", "list", "--action", "nope"]) == 2
    assert main(["audit", "list", "--since", "last week"]) == 2
