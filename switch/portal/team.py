"""A project's team (seeds/004 "Access control"): who has which role, adding and removing employees.

A user may give or take away only roles at or below their own (an admin never makes an owner), never removes
themself, and a project always keeps an owner. Removing a member ends their access at once: a session is read
together with its member row (:meth:`switch.portal.Portal.session`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncpg

from switch.portal.policy import ROLES, role_allows

if TYPE_CHECKING:
    from switch.portal.service import Portal, Session, User

__all__ = ["Team", "TeamRefused"]


class TeamRefused(PermissionError):
    """The change is beyond the acting user's role (or would leave the project without an owner)."""


class Team:
    __slots__ = ("_pool", "_portal")

    def __init__(self, pool: asyncpg.Pool, portal: Portal) -> None:
        self._pool = pool
        self._portal = portal

    async def members(self, project_id: int) -> list[dict[str, Any]]:
        rows = await self._pool.fetch(
            "SELECT u.email, m.role, u.totp_enabled, u.email_code_enabled, m.created FROM portal_members m"
            " JOIN portal_users u ON u.id = m.user_id WHERE m.project_id = $1 ORDER BY m.created, u.id",
            project_id,
        )
        return [dict(r) for r in rows]

    async def add(self, by: Session, email: str, role: str) -> tuple[User, str | None]:
        """``email`` gets ``role`` in ``by``'s project: (the user, a new user's one-time password or None)."""
        if role not in ROLES or not role_allows(by.role, role):
            raise TeamRefused(f"your role ({by.role}) cannot give the role {role!r}")
        user, _, password = await self._portal.add_user(email, by.project.login, role)
        return user, password

    async def remove(self, by: Session, email: str) -> None:
        """Take ``email``'s role in ``by``'s project away (LookupError: not a member)."""
        async with self._pool.acquire() as conn, conn.transaction():
            # The project's member rows locked: two owners removing each other at once cannot leave none.
            rows = await conn.fetch(
                "SELECT m.user_id, u.email, m.role FROM portal_members m JOIN portal_users u ON u.id = m.user_id"
                " WHERE m.project_id = $1 FOR UPDATE OF m",
                by.project.id,
            )
            target = next((r for r in rows if r["email"].lower() == email.strip().lower()), None)
            if target is None:
                raise LookupError(f"{email} is not in this project's team")
            if target["user_id"] == by.user.id:
                raise TeamRefused("you cannot remove yourself")
            if not role_allows(by.role, target["role"]):
                raise TeamRefused(f"your role ({by.role}) cannot remove a {target['role']}")
            if target["role"] == "owner" and sum(r["role"] == "owner" for r in rows) == 1:
                raise TeamRefused("a project keeps at least one owner")
            await conn.execute(
                "DELETE FROM portal_members WHERE user_id = $1 AND project_id = $2", target["user_id"], by.project.id
            )
            await conn.execute(
                "DELETE FROM portal_sessions WHERE user_id = $1 AND project_id = $2", target["user_id"], by.project.id
            )
