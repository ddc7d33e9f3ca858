"""A portal user's own account beyond the password (issue 13 items 2 and 9; seeds/000 "E-mail for password
recovery", "Two-factor authentication", seeds/004 "Security"):

* **recovery by e-mail link**: :meth:`Account.request_recovery` mails a link (through the outbox,
  :mod:`switch.mail`) whose token works once and expires after ``[portal] recovery_ttl`` seconds; the caller
  answers the same whether the address has an account or not. :meth:`Account.recover` sets the new password (the
  seed's policy), ends every session, lifts a lock; the user then logs in, second factor included.
* **the e-mail code as a second factor**: a user chooses the authenticator app (TOTP) or a 6-digit code mailed at
  each login (:meth:`Account.email_code_begin` / :meth:`Account.email_code_confirm`); choosing one turns the other
  off. A code lives ``[portal] email_code_ttl`` seconds, works once and dies after 3 wrong guesses (the account's
  lockout counts those too).
* **the project switcher**: a user of several projects moves between them under a new session token.
* **the login history's bound**: ``[portal] history_keep`` rows per user and nothing older than ``history_days``.

Times come from the portal's ``clock`` (tests move it), as in :mod:`switch.portal.service`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import asyncpg

from switch.mail import Mail, Mailer, check_address
from switch.portal.policy import check_password

if TYPE_CHECKING:
    from switch.portal.service import Portal, Session

__all__ = ["Account", "Membership", "RecoveryRefused"]

_CODE_DIGITS = 6
_CODE_TRIES = 3
# A second recovery mail (or login code) to the same user within this many seconds is not sent: a form submitted
# in a loop cannot fill someone's mailbox. The answer on the page is the same either way.
_RESEND_GAP = 30.0


class RecoveryRefused(Exception):
    """The link is unknown, used or expired (one message for all three: which one is nobody's business)."""


@dataclass(frozen=True, slots=True)
class Membership:
    project_id: int
    name: str
    role: str


def _hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _hash_code(user_id: int, code: str) -> bytes:
    return hashlib.sha256(f"{user_id}:{code}".encode()).digest()


class Account:
    """Recovery links, e-mailed codes, project switching and the history's bound, for :class:`Portal`."""

    __slots__ = ("_mailer", "_pool", "_portal")

    def __init__(self, pool: asyncpg.Pool, portal: Portal, mailer: Mailer | None) -> None:
        self._pool = pool
        self._portal = portal
        self._mailer = mailer

    def _mail(self) -> Mailer:
        if self._mailer is None:
            raise RuntimeError("the portal was made without the mail outbox")
        return self._mailer

    # -- recovery by e-mail link -----------------------------------------------------------------

    async def request_recovery(self, email: str, link_base: str) -> bool:
        """Mail a recovery link (``link_base`` + ``/portal/recover/<token>``) to ``email`` when it has an account;
        whether one was sent is the return value, for tests and logs only: never tell it to the requester."""
        row = await self._pool.fetchrow(
            "SELECT id, email FROM portal_users WHERE lower(email) = lower($1)", email.strip()[:254]
        )
        if row is None or not check_address(row["email"]):
            return False
        now = self._portal.clock()
        token = secrets.token_urlsafe(32)
        ttl = self._portal.config.recovery_ttl
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT id FROM portal_users WHERE id = $1 FOR UPDATE", row["id"])
            recent = await conn.fetchval(
                "SELECT 1 FROM portal_recovery WHERE user_id = $1 AND used IS NULL AND created > $2",
                row["id"],
                now - timedelta(seconds=_RESEND_GAP),
            )
            if recent is not None:
                return False
            # One live link per user: a new request replaces the earlier ones (used rows go too).
            await conn.execute("DELETE FROM portal_recovery WHERE user_id = $1", row["id"])
            await conn.execute(
                "INSERT INTO portal_recovery (token_hash, user_id, created, expires) VALUES ($1, $2, $3, $4)",
                _hash_token(token),
                row["id"],
                now,
                now + timedelta(seconds=ttl),
            )
            link = f"{link_base.rstrip('/')}/portal/recover/{token}"
            minutes = max(1, round(ttl / 60))
            text = (
                "Someone (we hope you) asked to set a new password for the merchant portal.\n\n"
                f"Open this link within {minutes} minutes to choose it (it works once):\n{link}\n\n"
                "If it was not you, ignore this mail: your password stays as it is.\n"
            )
            html = (
                "<p>Someone (we hope you) asked to set a new password for the merchant portal.</p>"
                f'<p><a id="recover-link" href="{link}">Choose a new password</a> within {minutes} minutes'
                " (the link works once).</p><p>If it was not you, ignore this mail: your password stays as it is.</p>"
            )
            mail = Mail(
                kind="recovery",
                to=row["email"],
                subject="Set a new password for the merchant portal",
                text=text,
                html=html,
                reference=f"portal-user:{row['id']}",
            )
            await self._mail().enqueue(mail, conn=conn)
        self._mail().kick()
        return True

    async def recovery_live(self, token: str) -> bool:
        """Whether a recovery link's token is known, unused and unexpired (the page's GET: nothing is spent)."""
        if not token or len(token) > 64:
            return False
        found = await self._pool.fetchval(
            "SELECT 1 FROM portal_recovery WHERE token_hash = $1 AND used IS NULL AND expires > $2",
            _hash_token(token),
            self._portal.clock(),
        )
        return found is not None

    async def recover(self, token: str, new: str, ip: str | None, agent: str | None) -> str:
        """Set ``new`` as the password of the link's user and spend the link; every session ends, a lock lifts.
        Returns the user's e-mail. :class:`RecoveryRefused` for a bad link, PasswordRejected for a bad password
        (the link is then not spent)."""
        if not await self.recovery_live(token):
            raise RecoveryRefused("this link is unknown, used or expired: ask for a new one")
        user_id = await self._pool.fetchval(
            "SELECT user_id FROM portal_recovery WHERE token_hash = $1", _hash_token(token)
        )
        check_password(new, forbidden=await self._portal._forbidden_words(user_id))
        new_hash = await self._portal._hash(new)
        now = self._portal.clock()
        async with self._pool.acquire() as conn, conn.transaction():
            # Compare-and-set: of two submissions of one link, one sets the password.
            spent = await conn.fetchval(
                "UPDATE portal_recovery SET used = $2 WHERE token_hash = $1 AND used IS NULL AND expires > $2"
                " RETURNING user_id",
                _hash_token(token),
                now,
            )
            if spent is None:
                raise RecoveryRefused("this link is unknown, used or expired: ask for a new one")
            email = await conn.fetchval(
                "UPDATE portal_users SET password_hash = $2, must_change = false, password_changed = $3,"
                " failed_logins = 0, locked_until = NULL WHERE id = $1 RETURNING email",
                spent,
                new_hash,
                now,
            )
            await conn.execute("DELETE FROM portal_sessions WHERE user_id = $1", spent)
        await self._portal._record(spent, email, "recovery_link", ip, agent)
        return str(email)

    # -- the e-mail code ---------------------------------------------------------------------------

    async def send_code(self, user_id: int, email: str, purpose: str, *, force: bool = True) -> bool:
        """Mail a new code for ``purpose`` (``login`` or ``enrol``), replacing the user's earlier one. Without
        ``force``, none is sent while the last is younger than the resend gap (False)."""
        now = self._portal.clock()
        code = f"{secrets.randbelow(10**_CODE_DIGITS):0{_CODE_DIGITS}d}"
        ttl = self._portal.config.email_code_ttl
        async with self._pool.acquire() as conn, conn.transaction():
            if not force:
                recent = await conn.fetchval(
                    "SELECT 1 FROM portal_email_codes WHERE user_id = $1 AND created > $2",
                    user_id,
                    now - timedelta(seconds=_RESEND_GAP),
                )
                if recent is not None:
                    return False
            await conn.execute(
                "INSERT INTO portal_email_codes (user_id, purpose, code_hash, created, expires, tries)"
                " VALUES ($1, $2, $3, $4, $5, 0) ON CONFLICT (user_id) DO UPDATE SET purpose = $2, code_hash = $3,"
                " created = $4, expires = $5, tries = 0",
                user_id,
                purpose,
                _hash_code(user_id, code),
                now,
                now + timedelta(seconds=ttl),
            )
            minutes = max(1, round(ttl / 60))
            what = "log in to" if purpose == "login" else "turn on e-mail codes for"
            text = f"Your code to {what} the merchant portal: {code}\n\nIt works once, within {minutes} minutes.\n"
            mail = Mail(
                kind="code",
                to=email,
                subject=f"Your merchant portal code: {code}",
                text=text,
                reference=f"portal-user:{user_id}",
            )
            await self._mail().enqueue(mail, conn=conn)
        self._mail().kick()
        return True

    async def check_code(self, user_id: int, code: str, purpose: str) -> bool:
        """Whether ``code`` is the user's live code for ``purpose`` (then spent); a wrong one counts a try."""
        code = "".join(code.split())
        if len(code) != _CODE_DIGITS or not (code.isascii() and code.isdigit()):
            await self._wrong(user_id)
            return False
        row = await self._pool.fetchrow(
            "SELECT code_hash FROM portal_email_codes WHERE user_id = $1 AND purpose = $2 AND expires > $3"
            " AND tries < $4",
            user_id,
            purpose,
            self._portal.clock(),
            _CODE_TRIES,
        )
        if row is None or not hmac.compare_digest(row["code_hash"], _hash_code(user_id, code)):
            await self._wrong(user_id)
            return False
        spent = await self._pool.fetchval(
            "DELETE FROM portal_email_codes WHERE user_id = $1 AND code_hash = $2 RETURNING user_id",
            user_id,
            row["code_hash"],
        )
        return spent is not None

    async def _wrong(self, user_id: int) -> None:
        await self._pool.execute("UPDATE portal_email_codes SET tries = tries + 1 WHERE user_id = $1", user_id)

    async def email_code_begin(self, session: Session) -> None:
        """Mail the code that confirms the e-mail factor (the caller checked the password); PortalError when the
        login is not an address the outbox sends to."""
        if not check_address(session.user.email):
            from switch.portal.service import PortalError  # here: that module imports this one

            raise PortalError("your login is not an e-mail address we can send codes to")
        await self.send_code(session.user.id, session.user.email, "enrol")

    async def email_code_confirm(self, session: Session, code: str) -> bool:
        """Turn the e-mail code on (and the authenticator app off) when ``code`` is the enrolment's."""
        if not await self.check_code(session.user.id, code, "enrol"):
            return False
        await self._pool.execute(
            "UPDATE portal_users SET email_code_enabled = true, totp_enabled = false, totp_key_id = NULL,"
            " totp_secret = NULL, totp_last_step = NULL, recovery_codes = '{}' WHERE id = $1",
            session.user.id,
        )
        return True

    async def email_code_disable(self, session: Session) -> None:
        await self._pool.execute("UPDATE portal_users SET email_code_enabled = false WHERE id = $1", session.user.id)

    # -- projects ----------------------------------------------------------------------------------

    async def memberships(self, user_id: int) -> list[Membership]:
        rows = await self._pool.fetch(
            "SELECT m.project_id, p.name, m.role FROM portal_members m JOIN projects p ON p.id = m.project_id"
            " WHERE m.user_id = $1 ORDER BY p.name",
            user_id,
        )
        return [Membership(r["project_id"], r["name"], r["role"]) for r in rows]

    async def switch_project(self, session: Session, project_id: int, ip: str | None, agent: str | None) -> str:
        """A ``full`` session of the same user in ``project_id`` (the user's role there) under a new token; the
        current one ends. LookupError when the user has no role in that project."""
        member = await self._pool.fetchval(
            "SELECT role FROM portal_members WHERE user_id = $1 AND project_id = $2", session.user.id, project_id
        )
        if member is None:
            raise LookupError("you have no role in that project")
        await self._pool.execute("DELETE FROM portal_sessions WHERE token_hash = $1", session.token_hash)
        return await self._portal._open_session(session.user.id, project_id, "full", ip, agent)

    # -- the history's bound -------------------------------------------------------------------------

    async def prune_history(self, user_id: int | None) -> None:
        """Keep ``history_keep`` rows of this user, and no row of anyone older than ``history_days``."""
        cfg = self._portal.config
        if user_id is not None:
            await self._pool.execute(
                "DELETE FROM portal_logins WHERE user_id = $1 AND id <= (SELECT id FROM portal_logins"
                " WHERE user_id = $1 ORDER BY id DESC OFFSET $2 LIMIT 1)",
                user_id,
                cfg.history_keep,
            )
        await self._pool.execute(
            "DELETE FROM portal_logins WHERE at < $1", self._portal.clock() - timedelta(days=cfg.history_days)
        )
