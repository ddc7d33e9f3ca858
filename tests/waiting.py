"""Waiting for a condition instead of sleeping for a guessed time.

On a shared 2-core machine a fixed sleep is either too short (the test
fails when the box is busy) or wasted time; polling the condition is
neither. The test's own timeout (pytest-timeout) stays the backstop.

>>> import asyncio
>>> box = []
>>> async def later() -> None:
...     asyncio.get_running_loop().call_later(0.05, box.append, 1)
...     print(await wait_for(lambda: box))
>>> asyncio.run(later())
[1]
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["wait_for"]

T = TypeVar("T")


async def wait_for(
    predicate: Callable[[], T | Awaitable[T]], timeout: float = 10.0, *, interval: float = 0.01, what: str = ""
) -> T:
    """The first truthy value of ``predicate()`` (plain or async), polled every ``interval`` seconds.

    AssertionError (naming ``what`` and the last value) when none came within ``timeout``.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout} s: {what or predicate!r} (last: {value!r})")
        await asyncio.sleep(interval)
