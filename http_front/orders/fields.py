"""The small readers the orders API's parsers share: sections, flags, texts, the 422 they raise."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from switch.orders.errors import InvalidInput

__all__ = ["check_cvv", "flag", "section", "text", "translation_error", "validation"]

validation = InvalidInput.one


translation_error = InvalidInput.of_translation


def section(body: Mapping[str, Any], name: str) -> dict[str, Any]:
    """``body[name]`` when it is an object, ``{}`` when absent or null; anything else is a 422."""
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise validation("Must be an object", name)
    return value


def flag(value: object) -> bool:
    """An options flag as the doc sends them: ``1``, ``"1"``, ``true`` (anything else is off)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return False


def text(value: object, field: str, *, limit: int = 255) -> str | None:
    """An optional string attribute (numbers taken as their text, as the doc's ``segment``)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise validation("Must be a string", field)
    out = str(value)
    if len(out) > limit:
        raise validation(f"Must be at most {limit} characters", field)
    return out


def check_cvv(value: object, field: str) -> None:
    """A CVV's form (3 or 4 digits) where no card goes with it (a rebill's ``cvv``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not (isinstance(value, str) and value.isascii() and value.isdigit() and 3 <= len(value) <= 4):
        raise validation("CVV must be 3 or 4 digits", field)
