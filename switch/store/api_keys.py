"""A project's API keys (seeds/000 "API keys"; schemas/sql/033_project_api_keys.sql): HTTP Basic credentials the
portal generates, lists masked and deletes, and the rotation of the invoice API's public keys.

An API key is a login ``ak_`` + 20 base62 characters and a random password, shown once; the table keeps the
password's scrypt hash and its first and last 3 characters (the list's mask). :meth:`Projects.authenticate` takes
them as it takes the project's own login, through the same cache of verified credentials.

>>> login = new_login()
>>> login.startswith("ak_"), len(login), is_key_login(login), is_key_login("shop")
(True, 23, True, False)
>>> mask("abcdefghij")
'abc…hij'
"""

from __future__ import annotations

import asyncio
import re
import secrets
import string
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from switch.store.projects import Projects, hash_password
from switch.store.public_keys import PublicKeys, new_public_key

__all__ = ["ApiKey", "ApiKeys", "NewApiKey", "is_key_login", "mask", "new_login"]

_ALPHABET = string.ascii_letters + string.digits
_LOGIN = re.compile(r"ak_[A-Za-z0-9]{20}")
#: Keys a project may have at once: a bound on the list and on what one portal user can make.
MAX_KEYS = 50


def new_login() -> str:
    return "ak_" + "".join(secrets.choice(_ALPHABET) for _ in range(20))


def is_key_login(login: str) -> bool:
    return _LOGIN.fullmatch(login) is not None


def mask(secret: str) -> str:
    return f"{secret[:3]}…{secret[-3:]}"


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    name: str
    login: str
    masked: str
    created: datetime
    created_by: str | None


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """A key just generated: ``password`` exists only here (shown once)."""

    key: ApiKey
    password: str


class ApiKeys:
    """The ``project_api_keys`` table; ``projects`` is told of each deletion (its cache of verified logins)."""

    __slots__ = ("_pool", "_projects")

    def __init__(self, pool: asyncpg.Pool, projects: Projects) -> None:
        self._pool = pool
        self._projects = projects

    async def list(self, project_id: int) -> list[ApiKey]:
        rows = await self._pool.fetch(
            "SELECT id, name, login, masked, created, created_by FROM project_api_keys WHERE project_id = $1"
            " ORDER BY id",
            project_id,
        )
        return [ApiKey(r["id"], r["name"], r["login"], r["masked"], r["created"], r["created_by"]) for r in rows]

    async def generate(self, project_id: int, name: str, created_by: str | None = None) -> NewApiKey:
        """A new key named ``name`` (1-64 printable characters); ValueError past :data:`MAX_KEYS` or a bad name."""
        name = " ".join(name.split())
        if not 1 <= len(name) <= 64 or not name.isprintable():
            raise ValueError("the key's name must be 1-64 printable characters")
        password = secrets.token_urlsafe(24)
        password_hash = await asyncio.to_thread(hash_password, password)
        async with self._pool.acquire() as conn, conn.transaction():
            # The project's row locked: two generations at once cannot both pass the bound.
            await conn.execute("SELECT id FROM projects WHERE id = $1 FOR UPDATE", project_id)
            count = await conn.fetchval("SELECT count(*) FROM project_api_keys WHERE project_id = $1", project_id)
            if count >= MAX_KEYS:
                raise ValueError(f"a project has at most {MAX_KEYS} API keys: delete one first")
            row = await conn.fetchrow(
                "INSERT INTO project_api_keys (project_id, login, name, password_hash, masked, created_by)"
                " VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, created",
                project_id,
                new_login(),
                name,
                password_hash,
                mask(password),
                created_by,
            )
            login = await conn.fetchval("SELECT login FROM project_api_keys WHERE id = $1", row["id"])
        key = ApiKey(row["id"], name, login, mask(password), row["created"], created_by)
        return NewApiKey(key, password)

    async def delete(self, project_id: int, key_id: int) -> bool:
        """Delete a key of this project (False: no such key here); it stops working at once in this process."""
        deleted = await self._pool.fetchval(
            "DELETE FROM project_api_keys WHERE id = $1 AND project_id = $2 RETURNING id", key_id, project_id
        )
        self._projects.forget(project_id)
        return deleted is not None

    async def public_keys(self, project_id: int) -> PublicKeys | None:
        """The invoice API's public keys of the project (test and live)."""
        return await self._projects.public_keys(project_id)

    async def rotate_public_key(self, project_id: int, *, test_mode: bool) -> PublicKeys:
        """A new public key of that mode; the old one names nothing from now on (pages using it must change)."""
        await self._pool.execute(
            "UPDATE project_keys SET public_key = $3, created = now() WHERE project_id = $1 AND test_mode = $2",
            project_id,
            test_mode,
            new_public_key(test_mode=test_mode),
        )
        keys = await self._projects.public_keys(project_id)
        if keys is None:
            raise LookupError(f"no project {project_id}")
        return keys
