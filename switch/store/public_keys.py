"""Public keys of projects (seeds/002): ``pk_test_...`` and ``pk_live_...``, one of each per project.

A public key names a project on the public API (``/public-api/...``) and says
its mode: a test key's invoices are test-mode ones. Keys are identifiers, not
secrets (merchants put them in their pages), so they are kept as they are and
looked up by primary key (schemas/sql/020_project_keys.sql).

>>> key = new_public_key(test_mode=True)
>>> key.startswith("pk_test_"), len(key), mode_of(key), mode_of("pk_live_" + "a" * 43), mode_of("sk_x")
(True, 51, True, False, None)
"""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass

import asyncpg

__all__ = ["PublicKeys", "insert_keys", "mode_of", "new_public_key"]

_ALPHABET = string.ascii_letters + string.digits
_KEY = re.compile(r"pk_(test|live)_[A-Za-z0-9]{20,64}")


def new_public_key(*, test_mode: bool) -> str:
    """43 base62 characters (256 bits) after the mode's prefix, as the seed's keys look."""
    return f"pk_{'test' if test_mode else 'live'}_" + "".join(secrets.choice(_ALPHABET) for _ in range(43))


def mode_of(key: object) -> bool | None:
    """True for a test key, False for a live one, None for anything not shaped as a public key."""
    if not isinstance(key, str):
        return None
    m = _KEY.fullmatch(key)
    return None if m is None else m.group(1) == "test"


@dataclass(frozen=True, slots=True)
class PublicKeys:
    test: str
    live: str


async def insert_keys(conn: asyncpg.Connection, project_id: int) -> PublicKeys:
    """A new project's two keys (in the caller's transaction)."""
    keys = PublicKeys(new_public_key(test_mode=True), new_public_key(test_mode=False))
    await conn.executemany(
        "INSERT INTO project_keys (public_key, project_id, test_mode) VALUES ($1, $2, $3)",
        [(keys.test, project_id, True), (keys.live, project_id, False)],
    )
    return keys
