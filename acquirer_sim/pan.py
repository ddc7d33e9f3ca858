"""Card-number helpers: masking for anything a human or a log may see.

>>> mask_pan("4111111111111111")
'411111****1111'
>>> mask_pan("12345")
'****'
"""

from __future__ import annotations

__all__ = ["mask_pan"]


def mask_pan(pan: str) -> str:
    """First six + ``****`` + last four; too short to mask safely -> ``****``."""
    if len(pan) < 13:
        return "****"
    return f"{pan[:6]}****{pan[-4:]}"
