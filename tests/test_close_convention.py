"""Every long-lived object of the core closes the same way: ``async def close(self, *, timeout=None)``."""

from __future__ import annotations

import inspect

import pytest

from switch.link import Link
from switch.listener import IsoListener
from switch.pool import Pool, Router
from switch.runtime import Runtime
from switch.saf import Reversals
from switch.saf.worker import AdviceWorker
from switch.store.db import Database
from switch.store.ids import DbIds, LeasedSequence
from switch.store.writer import GroupWriter

pytestmark = pytest.mark.timeout(10)

CLOSABLE = [
    Link,
    Pool,
    Router,
    IsoListener,
    Reversals,
    AdviceWorker,
    Runtime,
    GroupWriter,
    Database,
    DbIds,
    LeasedSequence,
]


@pytest.mark.parametrize("cls", CLOSABLE, ids=lambda c: c.__name__)
def test_close_is_a_coroutine_taking_only_a_keyword_timeout_that_defaults_to_none(cls: type) -> None:
    close = cls.close
    assert inspect.iscoroutinefunction(close)
    params = list(inspect.signature(close).parameters.values())
    assert [p.name for p in params] == ["self", "timeout"]
    timeout = params[1]
    assert timeout.kind is inspect.Parameter.KEYWORD_ONLY
    assert timeout.default is None
