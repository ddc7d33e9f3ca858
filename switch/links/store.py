"""Payment links in PostgreSQL (schemas/sql/026_payment_links.sql)."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import asyncpg

from switch.links.model import LinkParameter, PaymentLink

__all__ = ["LinkStore"]

_FIELDS = [f.name for f in dataclasses.fields(PaymentLink)]
_COLUMNS = ", ".join(_FIELDS)
_INSERT = f"INSERT INTO payment_links ({_COLUMNS}) VALUES ({', '.join(f'${i}' for i in range(1, len(_FIELDS) + 1))})"
_LIVE = "deleted IS NULL"
_GET = f"SELECT {_COLUMNS} FROM payment_links WHERE project_id = $1 AND id = $2 AND {_LIVE}"
_BY_SLUG = f"SELECT {_COLUMNS} FROM payment_links WHERE slug = $1 AND {_LIVE}"
# What an update may change (not the id, project, slug, key or creation time).
_MUTABLE = [f for f in _FIELDS if f not in ("id", "project_id", "slug", "form_key", "created")]
_UPDATE = (
    "UPDATE payment_links SET "
    + ", ".join(f"{name} = ${i}" for i, name in enumerate(_MUTABLE, start=3))
    + f" WHERE project_id = $1 AND id = $2 AND {_LIVE} RETURNING {_COLUMNS}"
)
_DELETE = f"UPDATE payment_links SET deleted = $3, updated = $3 WHERE project_id = $1 AND id = $2 AND {_LIVE}"


def _args(link: PaymentLink, names: list[str]) -> list[object]:
    out: list[object] = []
    for name in names:
        value = getattr(link, name)
        if name == "parameters":
            value = [p.to_json() for p in value]
        elif name == "customer_fields":
            value = list(value)
        out.append(value)
    return out


def _link(r: asyncpg.Record) -> PaymentLink:
    row = {k: r[k] for k in _FIELDS}
    row["parameters"] = tuple(LinkParameter.from_json(p) for p in r["parameters"])
    row["customer_fields"] = tuple(r["customer_fields"])
    return PaymentLink(**row)


class LinkStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def insert(self, link: PaymentLink) -> None:
        await self._pool.execute(_INSERT, *_args(link, _FIELDS))

    async def update(self, link: PaymentLink) -> PaymentLink | None:
        """The template rewritten (None: no such live link of the project)."""
        r = await self._pool.fetchrow(_UPDATE, link.project_id, link.id, *_args(link, _MUTABLE))
        return None if r is None else _link(r)

    async def delete(self, project_id: int, link_id: str, at: datetime) -> bool:
        return await self._pool.execute(_DELETE, project_id, link_id, at) == "UPDATE 1"

    async def get(self, project_id: int, link_id: str) -> PaymentLink | None:
        r = await self._pool.fetchrow(_GET, project_id, link_id)
        return None if r is None else _link(r)

    async def by_slug(self, slug: str) -> PaymentLink | None:
        r = await self._pool.fetchrow(_BY_SLUG, slug)
        return None if r is None else _link(r)

    async def page(self, project_id: int, offset: int, size: int) -> tuple[list[PaymentLink], int]:
        """Newest first: ``size`` links from ``offset``, and how many live links the project has."""
        total = await self._pool.fetchval(
            f"SELECT count(*) FROM payment_links WHERE project_id = $1 AND {_LIVE}", project_id
        )
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM payment_links WHERE project_id = $1 AND {_LIVE}"
            " ORDER BY created DESC, id DESC OFFSET $2 LIMIT $3",
            project_id,
            offset,
            size,
        )
        return [_link(r) for r in rows], int(total)
