"""The fault suite's rows, collected by the tests and written out by conftest.py at the end of the session."""

from __future__ import annotations

from typing import Any

RESULTS: list[dict[str, Any]] = []
