"""Idempotency decisions of the REST front, against an in-memory store with the real store's states."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import orjson
import pytest
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict
from waiting import wait_for

from http_front.failures import HttpFailure, Reply, json_reply
from http_front.idempotency import KEY_HEADER, REPLAYED_HEADER, fingerprint, idempotent
from switch.orders.errors import Declined, OrderNotFound
from switch.store.idempotency import Begin, BeginState

pytestmark = pytest.mark.timeout(10)

PROJECT = 7
BODY = {"amount": "9.99", "pan": "4111111111111111"}


@dataclass
class MemoryStore:
    """The decisions of switch.store.idempotency.Idempotency, in a dict."""

    rows: dict[tuple[int, str], tuple[bytes, int | None, bytes | None]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    async def begin(self, project_id: int, key: str, fp: bytes) -> Begin:
        self.calls.append("begin")
        row = self.rows.get((project_id, key))
        if row is None:
            self.rows[(project_id, key)] = (fp, None, None)
            return Begin(BeginState.NEW)
        if row[0] != fp:
            return Begin(BeginState.MISMATCH)
        if row[1] is None:
            return Begin(BeginState.IN_FLIGHT)
        return Begin(BeginState.REPLAY, row[1], row[2])

    async def finish(self, project_id: int, key: str, status: int, body: bytes) -> None:
        self.calls.append("finish")
        fp = self.rows[(project_id, key)][0]
        self.rows[(project_id, key)] = (fp, status, body)

    async def abandon(self, project_id: int, key: str) -> None:
        self.calls.append("abandon")
        row = self.rows.get((project_id, key))
        if row is not None and row[1] is None:
            del self.rows[(project_id, key)]


class Counter:
    def __init__(self, reply: Reply | None = None, exc: Exception | None = None, wait: asyncio.Event | None = None):
        self.runs = 0
        self.reply = reply or json_reply({"orders": [{"id": "1", "status": "authorized"}]})
        self.exc = exc
        self.wait = wait

    async def __call__(self) -> Reply:
        self.runs += 1
        if self.wait is not None:
            await self.wait.wait()
        if self.exc is not None:
            raise self.exc
        return self.reply


def request(key: str | None = "k-1", method: str = "POST", path: str = "/orders/authorize"):  # type: ignore[no-untyped-def]
    headers = CIMultiDict({KEY_HEADER: key} if key is not None else {})
    return make_mocked_request(method, path, headers=headers)


async def test_without_a_key_the_operation_just_runs() -> None:
    store, op = MemoryStore(), Counter()
    for _ in range(2):
        assert (await idempotent(request(None), store, PROJECT, BODY, op)).status == 200
    assert op.runs == 2 and store.calls == []


async def test_a_repeat_gets_the_first_answer_byte_for_byte_without_running_again() -> None:
    store, op = MemoryStore(), Counter()
    first = await idempotent(request(), store, PROJECT, BODY, op)
    again = await idempotent(request(), store, PROJECT, dict(reversed(BODY.items())), op)
    assert op.runs == 1
    assert (again.status, again.body) == (first.status, first.body)
    assert again.headers == {REPLAYED_HEADER: "true"} and REPLAYED_HEADER not in first.headers


async def test_a_decline_is_stored_and_replayed_as_the_same_402() -> None:
    store = MemoryStore()
    op = Counter(exc=Declined("Do not honor", order_id="12345678901234567"))
    first = await idempotent(request(), store, PROJECT, BODY, op)
    again = await idempotent(request(), store, PROJECT, BODY, op)
    assert op.runs == 1 and first.status == again.status == 402
    assert orjson.loads(again.body) == {
        "failure_type": "declined",
        "failure_message": "Do not honor",
        "order_id": "12345678901234567",
    }


async def test_a_not_found_is_a_stored_answer_too() -> None:
    store, op = MemoryStore(), Counter(exc=OrderNotFound("1"))
    assert (await idempotent(request(), store, PROJECT, {}, op)).status == 404
    assert store.calls == ["begin", "finish"]


async def test_the_same_key_with_another_body_is_a_422_and_nothing_runs() -> None:
    store, op = MemoryStore(), Counter()
    await idempotent(request(), store, PROJECT, BODY, op)
    with pytest.raises(HttpFailure) as info:
        await idempotent(request(), store, PROJECT, {**BODY, "amount": "10.00"}, op)
    assert info.value.status == 422 and info.value.failure_type == "validation"
    assert "different request" in info.value.message
    assert op.runs == 1


async def test_the_same_key_on_another_path_is_another_request() -> None:
    store, op = MemoryStore(), Counter()
    await idempotent(request(path="/orders/12345678901234567/charge", method="PUT"), store, PROJECT, {}, op)
    with pytest.raises(HttpFailure) as info:
        await idempotent(request(path="/orders/12345678901234567/refund", method="PUT"), store, PROJECT, {}, op)
    assert info.value.status == 422


async def test_keys_are_per_project() -> None:
    store, op = MemoryStore(), Counter()
    await idempotent(request(), store, 1, BODY, op)
    await idempotent(request(), store, 2, BODY, op)
    assert op.runs == 2


async def test_a_duplicate_while_the_first_runs_is_a_409_and_only_one_runs() -> None:
    store, gate = MemoryStore(), asyncio.Event()
    op = Counter(wait=gate)
    first = asyncio.create_task(idempotent(request(), store, PROJECT, BODY, op))
    await wait_for(lambda: store.rows)  # the first has claimed the key
    dupes = [asyncio.create_task(idempotent(request(), store, PROJECT, BODY, op)) for _ in range(5)]
    results = await asyncio.gather(*dupes, return_exceptions=True)
    assert all(isinstance(r, HttpFailure) and r.status == 409 for r in results)
    gate.set()
    assert (await first).status == 200
    assert op.runs == 1


async def test_a_bug_abandons_the_key_so_a_retry_runs() -> None:
    store = MemoryStore()
    with pytest.raises(RuntimeError):
        await idempotent(request(), store, PROJECT, BODY, Counter(exc=RuntimeError("bug")))
    assert store.calls == ["begin", "abandon"] and not store.rows
    op = Counter()
    assert (await idempotent(request(), store, PROJECT, BODY, op)).status == 200 and op.runs == 1


async def test_a_cancelled_request_abandons_its_key() -> None:
    store, gate = MemoryStore(), asyncio.Event()
    task = asyncio.create_task(idempotent(request(), store, PROJECT, BODY, Counter(wait=gate)))
    await wait_for(lambda: store.rows)  # the key is claimed, the operation runs
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "abandon" in store.calls and not store.rows


async def test_a_failed_finish_still_answers_and_never_frees_the_key() -> None:
    class BrokenFinish(MemoryStore):
        async def finish(self, project_id: int, key: str, status: int, body: bytes) -> None:
            raise ConnectionError("database went away")

    store, op = BrokenFinish(), Counter()
    assert (await idempotent(request(), store, PROJECT, BODY, op)).status == 200
    with pytest.raises(HttpFailure) as info:
        await idempotent(request(), store, PROJECT, BODY, op)
    assert info.value.status == 409 and op.runs == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "clé", "a\tb"])
async def test_a_malformed_key_is_a_422(key: str) -> None:
    store = MemoryStore()
    with pytest.raises(HttpFailure) as info:
        await idempotent(request(key), store, PROJECT, BODY, Counter())
    assert info.value.status == 422 and store.calls == []


def test_the_fingerprint_ignores_key_order_but_not_values_method_path_or_project() -> None:
    base = fingerprint(1, "POST", "/orders/authorize", {"a": "1", "b": {"c": 2, "d": 3}})
    assert base == fingerprint(1, "POST", "/orders/authorize", {"b": {"d": 3, "c": 2}, "a": "1"})
    assert len(base) == 32
    others = [
        fingerprint(2, "POST", "/orders/authorize", {"a": "1", "b": {"c": 2, "d": 3}}),
        fingerprint(1, "PUT", "/orders/authorize", {"a": "1", "b": {"c": 2, "d": 3}}),
        fingerprint(1, "POST", "/orders/credit", {"a": "1", "b": {"c": 2, "d": 3}}),
        fingerprint(1, "POST", "/orders/authorize", {"a": "2", "b": {"c": 2, "d": 3}}),
    ]
    assert base not in others
