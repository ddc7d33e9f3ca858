"""Shared test fixtures: every test's loop must end without unhandled errors."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pg import database, fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (shared PostgreSQL fixtures)
from sim_helpers import IsoClient, MessageFactory, running_sim

from acquirer_sim import SimServer


@pytest.fixture(autouse=True)
async def _loop_errors_fail_the_test() -> AsyncIterator[None]:
    """Unhandled exceptions reported to the loop fail the test (as asyncpg's TestCase does)."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    yield
    await asyncio.sleep(0)
    loop.set_exception_handler(None)
    if errors:
        pytest.fail(f"unhandled loop errors: {[e.get('message') or repr(e.get('exception')) for e in errors]}")


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    """A simulator with the built-in rules on an ephemeral port (override per module)."""
    async with running_sim() as s:
        yield s


@pytest.fixture
async def client(sim: SimServer) -> AsyncIterator[IsoClient]:
    """A raw ISO client connected to ``sim``."""
    assert sim.address is not None
    c = await IsoClient.connect(sim.address)
    yield c
    await c.close()


@pytest.fixture
def mf() -> MessageFactory:
    return MessageFactory()


@pytest.fixture
def sim_process() -> Iterator[str]:
    """The simulator in a process of its own (as the bench meets it in real runs): its ``HOST:PORT``."""
    cmd = [sys.executable, "-m", "acquirer_sim", "--port", "0", "--log-level", "WARNING"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            assert line.startswith("listening on "), line
            yield line.removeprefix("listening on ")
        finally:
            proc.terminate()
            proc.wait(10)
