"""Structured logs: one JSON object per line, a request id from the REST call into its ISO
exchange and its database writes, card data masked. The real front, runtime, PostgreSQL and sim."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from test_http_e2e import REQUIRED, Front, front  # noqa: F401  (fixture)

from switch.logs import REQUEST_ID, setup_logging
from switch.store.audit import list_entries

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """Every log line of the test as JSON, at debug level; the root logger restored after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    out = io.StringIO()
    setup_logging("debug", stream=out)
    logging.getLogger("asyncio").setLevel(logging.WARNING)
    try:
        yield out
    finally:
        for h in root.handlers[:]:
            root.removeHandler(h)
        for h in handlers:
            root.addHandler(h)
        root.setLevel(level)
        logging.getLogger("asyncio").setLevel(logging.NOTSET)


def _lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in out.getvalue().splitlines()]


async def test_a_rest_call_and_its_iso_exchange_and_writes_share_one_request_id(
    front: Front,  # noqa: F811
    json_logs: io.StringIO,
) -> None:
    resp = await front.http.post("/orders/authorize", json=_body(), headers=front.auth)
    assert resp.status == 200
    rid = resp.headers["X-Request-Id"]
    assert len(rid) == 16
    mine = [line for line in _lines(json_logs) if line.get("request_id") == rid]
    msgs = [line["msg"] for line in mine]
    assert msgs.index("intent written") < msgs.index("iso exchange") < msgs.index("operation done")
    exchange = mine[msgs.index("iso exchange")]
    assert (exchange["mti"], exchange["response_mti"], exchange["rc"]) == ("0100", "0110", "00")
    assert exchange["stan"] and exchange["rrn"]
    done = mine[msgs.index("operation done")]
    assert done["order_id"] == exchange["order_id"] and done["stan"] == exchange["stan"]
    assert REQUEST_ID.get() is None, "the id does not leak out of the request"


async def test_the_callers_request_id_is_kept_and_a_hostile_one_replaced(
    front: Front,  # noqa: F811
    json_logs: io.StringIO,
) -> None:
    resp = await front.http.get("/ping", headers={**front.auth, "X-Request-Id": "shop-42.a"})
    assert resp.headers["X-Request-Id"] == "shop-42.a"
    forged = 'x" \n{"level":"info"'
    resp = await front.http.get("/ping", headers={**front.auth, "X-Request-Id": forged.replace("\n", " ")})
    assert resp.headers["X-Request-Id"] != forged.replace("\n", " ") and len(resp.headers["X-Request-Id"]) == 16
    resp = await front.http.get("/orders/1", headers={"X-Request-Id": "no-auth"})
    assert (resp.status, resp.headers["X-Request-Id"]) == (401, "no-auth"), "error answers carry the id too"


async def test_no_line_holds_a_full_card_number_or_a_cvv(
    front: Front,  # noqa: F811
    json_logs: io.StringIO,
) -> None:
    await front.http.post("/orders/authorize", json=_body(pan="4111111111111111"), headers=front.auth)
    logging.getLogger("isoswitch.test").warning("careless %s", "5555555555554444")
    text = json_logs.getvalue()
    assert "4111111111111111" not in text and "5555555555554444" not in text
    assert "555555****4444" in text
    assert '"cvv"' not in text and "333" not in _values(_lines(json_logs))


def _values(lines: list[dict[str, Any]]) -> set[str]:
    return {str(v) for line in lines for k, v in line.items() if k not in ("ts",)}


def _body(**changes: Any) -> dict[str, Any]:
    body = {**REQUIRED, **changes}
    body["amount"] = str(body["amount"])
    return body


async def test_the_audit_row_of_a_back_office_call_carries_its_request_id(
    front: Front,  # noqa: F811
    json_logs: io.StringIO,
) -> None:
    order_id = (await front.order())["id"]
    resp = await front.http.put(f"/orders/{order_id}/charge", headers={**front.auth, "X-Request-Id": "charge-7"})
    assert resp.status == 200
    rows = await list_entries(front.runtime.db.pool)
    assert [(r["action"], r["request_id"]) for r in rows] == [("charge", "charge-7")]
    assert any(line.get("request_id") == "charge-7" and line["msg"] == "operation done" for line in _lines(json_logs))


def test_card_numbers_are_masked_in_nested_extras_tracebacks_and_the_text_format() -> None:
    log = logging.getLogger("isoswitch.test")
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        for fmt in ("json", "text"):
            out = io.StringIO()
            setup_logging("info", fmt=fmt, stream=out)
            log.info("nested", extra={"fields": {"2": "4111111111111111", "order_id": "4111111111111111"}})
            try:
                raise ValueError("bad card 5555555555554444")
            except ValueError:
                log.exception("failed")
            log.info("bad %s %s", "4111111111111111")  # a bad call: logged, masked, never raised at the caller
            log.info("nested", extra={"req": {"msg": "pan 4111111111111111"}})
            text = out.getvalue()
            assert "5555555555554444" not in text and "555555****4444" in text, fmt
            assert "4111111111111111" not in text.replace('"order_id": "4111111111111111"', "").replace(
                '"order_id":"4111111111111111"', ""
            ), fmt
            assert "(bad log call)" in text, fmt
            if fmt == "json":
                nested = orjson.loads(text.splitlines()[0])["fields"]
                assert nested == {"2": "411111****1111", "order_id": "4111111111111111"}  # identifiers stay
    finally:
        for h in root.handlers[:]:
            root.removeHandler(h)
        for h in handlers:
            root.addHandler(h)
        root.setLevel(level)


async def test_a_card_number_sent_as_request_id_is_replaced(
    front: Front,  # noqa: F811
    json_logs: io.StringIO,
) -> None:
    resp = await front.http.get("/ping", headers={**front.auth, "X-Request-Id": "4111111111111111"})
    assert resp.headers["X-Request-Id"] != "4111111111111111"
    assert "4111111111111111" not in json_logs.getvalue()
