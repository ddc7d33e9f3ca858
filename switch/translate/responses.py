"""Reading responses: DE 39 -> outcome (through ``schemas/response_codes.json``), auth code, RRN, amount."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from schemas import SCHEMAS_DIR
from switch.translate.values import _is_digits

__all__ = ["MISSING_CODE_MESSAGE", "UNKNOWN_CODE_MESSAGE", "Outcome", "Result", "classify", "interpret"]


class Outcome(Enum):
    """What a response means for the operation (DESIGN.md's DE 39 table)."""

    APPROVED = "approved"
    DECLINED = "declined"
    FRAUD = "fraud"
    ERROR = "error"


# A code missing from schemas/response_codes.json is an error: we cannot
# tell a decline from a fault, and "error" sends the order to review
# instead of telling the merchant the card said no.
UNKNOWN_CODE_MESSAGE = "Unknown response code"
MISSING_CODE_MESSAGE = "No response code"


@functools.cache
def _response_table() -> Mapping[str, tuple[Outcome, str]]:
    with open(SCHEMAS_DIR / "response_codes.json", encoding="utf-8") as f:
        doc = json.load(f)
    return {code: (Outcome(row["class"]), row["message"]) for code, row in doc["codes"].items()}


def classify(code: str | None) -> tuple[Outcome, str]:
    """Outcome and message of a DE 39 code; unknown and missing codes are errors.

    >>> classify("51"), classify("ZZ")[0]
    ((<Outcome.DECLINED: 'declined'>, 'Not sufficient funds'), <Outcome.ERROR: 'error'>)
    """
    if code is None:
        return Outcome.ERROR, MISSING_CODE_MESSAGE
    return _response_table().get(code, (Outcome.ERROR, UNKNOWN_CODE_MESSAGE))


@dataclass(frozen=True, slots=True)
class Result:
    """An interpreted response. ``amount`` is DE 4 in minor units when present."""

    outcome: Outcome
    response_code: str | None
    message: str
    auth_code: str | None = None
    rrn: str | None = None
    amount: int | None = None

    @property
    def approved(self) -> bool:
        return self.outcome is Outcome.APPROVED


def interpret(response: Mapping[str, str]) -> Result:
    """Read DE 39 (through ``schemas/response_codes.json``), DE 38, DE 37 and DE 4 of a response."""
    code = response.get("39")
    outcome, message = classify(code)
    auth = response.get("38")
    if auth is not None and not auth.strip():
        auth = None
    raw_amount = response.get("4")
    amount = int(raw_amount) if raw_amount is not None and _is_digits(raw_amount, 1, 12) else None
    return Result(outcome, code, message, auth, response.get("37"), amount)
