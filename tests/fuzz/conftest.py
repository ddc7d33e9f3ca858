"""The fuzz suite: a ``fuzz`` marker for the long runs, which run only when selected (``-m fuzz``).

``make test`` runs the small, unmarked cases of this folder (a few thousand
frames, a few schemathesis examples per operation); ``make fuzz`` runs the
marked ones (``ISOSWITCH_FUZZ_FRAMES`` frames, default 100,000).
"""

from __future__ import annotations

import os

import pytest

FRAMES_ENV = "ISOSWITCH_FUZZ_FRAMES"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fuzz: long fuzzing runs (make fuzz); skipped unless selected with -m fuzz")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "fuzz" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="long fuzzing run: select with -m fuzz (make fuzz)")
    for item in items:
        if item.get_closest_marker("fuzz") is not None:
            item.add_marker(skip)


@pytest.fixture
def fuzz_frames() -> int:
    """How many frames a marked run sends (``ISOSWITCH_FUZZ_FRAMES``, default 100,000)."""
    return int(os.environ.get(FRAMES_ENV, "100000"))
