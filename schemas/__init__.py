"""Data only: ISO 8583 dialect specs, currency and response-code tables.

This package holds no code beyond locating its files, so the switch and the
simulator can share it without sharing anything else.
"""

from pathlib import Path

__all__ = ["SCHEMAS_DIR"]

SCHEMAS_DIR = Path(__file__).resolve().parent
