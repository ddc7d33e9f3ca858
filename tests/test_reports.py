"""The daily report (issue 12 item 8): orders and operations made through the real front, runtime, PostgreSQL and
simulator, read back by :func:`switch.reports.daily_report` and by ``isoswitch report daily``."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from test_http_e2e import REQUIRED, Front
from test_http_e2e import front as front  # fixture

from switch.reports import COLUMNS, csv_text, daily_report

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parent.parent
DECLINED_PAN = "4276990011343663"


async def _rows(front: Front, day: date, tz: Any = UTC) -> list[dict[str, str]]:
    project = await front.runtime.projects.by_login("project")
    assert project is not None
    rows = [row async for row in daily_report(front.runtime.db.pool, project.id, day, tz)]
    assert rows[0] == list(COLUMNS)
    return [dict(zip(COLUMNS, r, strict=True)) for r in rows[1:]]


async def _charged(front: Front, amount: str, **extra: Any) -> str:
    order = await front.order(amount=amount, **extra)
    status, doc = await front.call("PUT", f"/orders/{order['id']}/charge")
    assert status == 200, doc
    return str(order["id"])


async def _created(front: Front, order_id: str) -> datetime:
    when: datetime = await front.runtime.db.pool.fetchval("SELECT created FROM orders WHERE id = $1", order_id)
    return when


async def _move(front: Front, order_id: str, when: datetime) -> None:
    """Put an order and its operations at ``when`` (another day), as if made then."""
    pool = front.runtime.db.pool
    await pool.execute("UPDATE orders SET created = $2 WHERE id = $1", order_id, when)
    await pool.execute("UPDATE operations SET created = $2 WHERE order_id = $1", order_id, when)


async def test_the_daily_report_lists_the_days_orders_and_operations_with_fees_and_totals_per_currency(
    front: Front,
) -> None:
    sale = await _charged(front, "9.99", merchant_order_id="=cmd|'/c calc'!A1", description="Book sale #453")
    status, doc = await front.call("PUT", f"/orders/{sale}/refund", {"amount": "4.00"})
    assert status == 200, doc
    await front.call("POST", "/orders/authorize", {**REQUIRED, "pan": DECLINED_PAN})
    euro = await _charged(front, "5.00", currency="EUR")
    status, _ = await front.call("POST", "/orders/authorize", REQUIRED, headers=front.other)  # another project's
    assert status == 200
    old = await _charged(front, "1.00")
    day = (await _created(front, sale)).date()
    await _move(front, old, datetime.combine(day, datetime.min.time(), UTC) - timedelta(seconds=1))

    rows = await _rows(front, day)
    orders = [r for r in rows if r["record"] == "order"]
    ops = [r for r in rows if r["record"] == "operation"]
    totals = {(r["currency"], r["type"]): r for r in rows if r["record"] == "total"}
    assert [r["record"] for r in rows] == ["order"] * 3 + ["operation"] * 6 + ["total"] * 4  # orders, ops, totals
    assert old not in {r["order_id"] for r in rows}  # yesterday's

    first = orders[0]
    assert first["order_id"] == sale and first["status"] == "refunded"
    assert (first["amount"], first["charged"], first["refunded"], first["currency"]) == ("9.99", "9.99", "4.00", "USD")
    assert first["pan_mask"] == "411111****1111" and first["card_type"] == "visa"
    assert first["merchant_order_id"] == "'=cmd|'/c calc'!A1"  # not a formula in a spreadsheet
    assert first["description"] == "Book sale #453"
    assert orders[1]["status"] == "declined" and orders[1]["charged"] == "0.00"
    by_type = {(r["order_id"], r["type"]): r for r in ops}
    charge = by_type[(sale, "charge")]
    # The project's 3 % fee on 9.99 (0.30), as the seed's cash flow shows it.
    assert {k: charge[k] for k in ("amount", "cash_amount", "fee", "incoming", "reserve", "receivable")} == {
        "amount": "9.99", "cash_amount": "9.99", "fee": "0.30", "incoming": "9.69", "reserve": "0.00",
        "receivable": "9.69",
    }  # fmt: skip
    refund = by_type[(sale, "refund")]
    assert (refund["amount"], refund["cash_amount"], refund["fee"], refund["status"]) == (
        "4.00",
        "-4.00",
        "0.00",
        "success",
    )
    assert by_type[(euro, "charge")]["currency"] == "EUR"

    usd_ops = totals[("USD", "operations")]
    # authorize, charge, refund of the sale; the declined authorize: 4 operations
    assert usd_ops["count"] == "4"
    assert (usd_ops["cash_amount"], usd_ops["fee"], usd_ops["incoming"]) == ("5.99", "0.30", "5.69")
    usd_orders = totals[("USD", "orders")]
    assert (usd_orders["count"], usd_orders["amount"], usd_orders["charged"], usd_orders["refunded"]) == (
        "2", "19.98", "9.99", "4.00",
    )  # fmt: skip
    eur = totals[("EUR", "operations")]
    assert (eur["count"], eur["cash_amount"], eur["fee"]) == ("2", "5.00", "0.15")

    text = csv_text([list(COLUMNS), *([r[c] for c in COLUMNS] for r in rows)])
    assert "4111111111111111" not in text and DECLINED_PAN not in text  # masked PANs only


async def test_a_refund_of_an_older_order_is_in_the_books_of_its_own_day(front: Front) -> None:
    sale = await _charged(front, "9.99")
    created = await _created(front, sale)
    await _move(front, sale, created - timedelta(days=3))
    status, doc = await front.call("PUT", f"/orders/{sale}/refund")
    assert status == 200, doc
    rows = await _rows(front, created.date())
    assert [(r["record"], r["type"]) for r in rows] == [
        ("operation", "refund"),
        ("total", "orders"),
        ("total", "operations"),
    ]
    assert rows[0]["order_id"] == sale and rows[0]["pan_mask"] == "411111****1111"
    assert rows[1]["count"] == "0" and rows[2]["cash_amount"] == "-9.99"


async def test_test_mode_orders_are_marked_test_and_totalled_apart_from_live_money(front: Front) -> None:
    live = await _charged(front, "5.00")
    test = await _charged(front, "7.00")
    # A test-mode order (a pk_test_ key, a test_mode invoice) as the invoice service records it.
    await front.runtime.db.pool.execute("UPDATE orders SET test_mode = true WHERE id = $1", test)
    rows = await _rows(front, (await _created(front, live)).date())
    modes = {r["order_id"]: r["mode"] for r in rows if r["record"] == "order"}
    assert modes == {live: "live", test: "test"}
    totals = {(r["mode"], r["type"]): r for r in rows if r["record"] == "total"}
    assert [k for k in totals] == [
        ("live", "orders"),
        ("live", "operations"),
        ("test", "orders"),
        ("test", "operations"),
    ]
    assert (totals["live", "orders"]["amount"], totals["test", "orders"]["amount"]) == ("5.00", "7.00")


async def test_the_day_is_taken_in_the_time_zone_asked(front: Front) -> None:
    late = await front.order()
    day = (await _created(front, late["id"])).date()
    # 23:30 UTC the day before is already this day in Kyiv (UTC+2 or +3).
    await _move(front, late["id"], datetime.combine(day, datetime.min.time(), UTC) - timedelta(minutes=30))
    assert late["id"] not in {r["order_id"] for r in await _rows(front, day)}
    kyiv = await _rows(front, day, ZoneInfo("Europe/Kyiv"))
    order = next(r for r in kyiv if r["record"] == "order")
    assert order["order_id"] == late["id"]
    assert order["created"].startswith(f"{day.isoformat()}T0") and order["created"][-6:] in ("+02:00", "+03:00")


def _isoswitch(*args: str, dsn: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("ISOSWITCH_")}
    return subprocess.run(
        [sys.executable, "-m", "isoswitch", *args],
        capture_output=True, text=True, timeout=60, env={**env, "DATABASE_URL": dsn}, cwd=ROOT,
    )  # fmt: skip


def _read(path: Path) -> tuple[bytes, list[Path]]:
    """The file's bytes and what its directory holds."""
    return path.read_bytes(), list(path.parent.iterdir())


async def test_isoswitch_report_daily_writes_the_csv_to_a_file_or_stdout(
    front: Front,
    fresh_dsn: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    sale = await _charged(front, "9.99")
    day = (await _created(front, sale)).date().isoformat()
    out = tmp_path / "day.csv"
    done = _isoswitch("report", "daily", "--project", "project", "--date", day, "--out", str(out), dsn=fresh_dsn)
    assert done.returncode == 0, done.stderr
    said = orjson.loads(done.stdout)
    assert said == {"project": "project", "date": day, "tz": "UTC", "out": str(out), "rows": 1 + 1 + 2 + 2}
    raw, files = _read(out)
    table = list(csv.reader(io.StringIO(raw.decode(), newline="")))
    assert table[0] == list(COLUMNS) and table[1][:3] == ["order", table[1][1], sale]
    assert raw.count(b"\r\n") == len(table)
    assert files == [out]  # no temporary file left behind

    printed = _isoswitch("report", "daily", "--project", "project", "--date", day, dsn=fresh_dsn)
    assert printed.returncode == 0 and list(csv.reader(io.StringIO(printed.stdout))) == table


async def test_isoswitch_report_daily_refuses_an_unknown_project_or_zone_in_one_line(
    front: Front,
    fresh_dsn: str,  # noqa: F811
) -> None:
    nobody = _isoswitch("report", "daily", "--project", "nobody", "--date", "2026-01-01", dsn=fresh_dsn)
    assert (nobody.returncode, nobody.stderr) == (1, "isoswitch report daily: no project 'nobody'\n")
    zone = _isoswitch(
        "report", "daily", "--project", "project", "--date", "2026-01-01", "--tz", "Mars/Olympus", dsn=fresh_dsn
    )
    assert zone.returncode == 2 and zone.stderr == "isoswitch report daily: unknown time zone 'Mars/Olympus'\n"
    bad_date = _isoswitch("report", "daily", "--project", "project", "--date", "yesterday", dsn=fresh_dsn)
    assert bad_date.returncode == 2 and "--date" in bad_date.stderr
