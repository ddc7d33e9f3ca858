"""Shared test fixtures: every test's loop must end without unhandled errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest


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
