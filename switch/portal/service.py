"""Portal accounts: users, roles per project, sessions, lockout, login history, TOTP.

A session is a random token in the browser's cookie and its SHA-256 in ``portal_sessions``: each request reads its
row (and slides its expiry by the project's ``portal_session_minutes``, written at most once a minute). After the
password, a user with TOTP gets an ``mfa`` session good for ``mfa_window`` seconds that opens nothing but the code
form; the code turns it into a ``full`` one under a new token (no token outlives a change of privilege).

Lockout: ``max_failures`` consecutive failures (password or code) lock the account for ``lockout`` seconds; the
count restarts after a lock and after a success. Every attempt is a row of ``portal_logins``.

Every time comes from ``clock`` (tests move it to expire sessions), never from the database's ``now()``.
Recovery links, e-mailed codes, project switching and the history's bound are :mod:`switch.portal.account`'s
(``portal.account``). Just over 500 lines: the login and its second factors read best in one module.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pyotp

from switch.mail import Mailer
from switch.portal.account import Account
from switch.portal.payments import PaymentDesk
from switch.portal.policy import ROLES, check_password, role_allows
from switch.portal.team import Team
from switch.store.api_keys import ApiKeys
from switch.store.projects import Project, Projects, hash_password, verify_password
from switch.store.vault import Vault

__all__ = [
    "LoginResult",
    "Portal",
    "PortalConfig",
    "PortalError",
    "Session",
    "User",
    "UserExists",
    "one_time_password",
]

# Verified against when the e-mail is unknown: the same scrypt cost, so timing does not tell who has an account.
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
_TOTP_STEP = 30
_RECOVERY_CODES = 10


@dataclass(frozen=True, slots=True)
class PortalConfig:
    """Account protection; every default is what ``isoswitch up`` uses."""

    max_failures: int = 5  # consecutive failed logins (password or code) that lock an account
    lockout: float = 900.0  # seconds an account stays locked (15 minutes)
    mfa_window: float = 300.0  # seconds between a right password and its second factor
    login_rate: float = 0.2  # login attempts per second per client address (in each worker), after the burst
    login_burst: int = 10
    issuer: str = "isoswitch"  # the name authenticator apps show next to the account
    recovery_ttl: float = 3600.0  # seconds a password recovery link works (once)
    email_code_ttl: float = 600.0  # seconds an e-mailed login code works (once)
    history_keep: int = 200  # login history rows kept per user (the oldest go first)
    history_days: int = 365  # no login history row is kept longer (unknown addresses' too)

    def __post_init__(self) -> None:
        if self.max_failures < 1 or self.lockout <= 0 or self.mfa_window <= 0:
            raise ValueError("max_failures, lockout and mfa_window must be positive")
        if min(self.recovery_ttl, self.email_code_ttl) <= 0 or min(self.history_keep, self.history_days) < 1:
            raise ValueError("recovery_ttl, email_code_ttl, history_keep and history_days must be positive")
        if self.login_rate <= 0 or self.login_burst < 1:
            raise ValueError("login_rate and login_burst must be positive")


class PortalError(Exception):
    """A refusal to show the user (wrong current password, bad code ...); the text never holds a secret."""


class UserExists(PortalError):
    """The user already has a role in that project."""


@dataclass(frozen=True, slots=True)
class User:
    id: int
    email: str
    must_change: bool
    totp_enabled: bool
    email_code: bool = False  # the e-mailed code is the second factor (switch.portal.account)


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in (``stage`` ``full``) or half-signed-in (``mfa``) browser, in one project with one role."""

    token_hash: bytes
    user: User
    project: Project
    role: str
    stage: str
    csrf: str
    expires: datetime

    def allows(self, needed: str) -> bool:
        """The session's role is ``needed`` or above (what the navigation shows; the guard enforces the same)."""
        return role_allows(self.role, needed)


@dataclass(frozen=True, slots=True)
class LoginResult:
    """``outcome``: ``ok`` (signed in), ``mfa`` (the code is due), ``bad`` (wrong e-mail, password or code: one
    answer for all), ``locked``. ``token``: the new session's cookie value (ok, mfa)."""

    outcome: str
    token: str | None = None
    session: Session | None = None


def _hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _hash_code(code: str) -> str:
    return hashlib.sha256(code.replace("-", "").lower().encode()).hexdigest()


def _user(row: asyncpg.Record) -> User:
    return User(
        row["user_id"], row["email"], row["must_change"], row["totp_enabled"], bool(row.get("email_code_enabled"))
    )


def one_time_password() -> str:
    """A first password (changed at the first login): random, and it meets the policy itself."""
    return f"Tmp-{secrets.token_urlsafe(12)}-{secrets.randbelow(10)}aZ"


class Portal:
    """The accounts over the pool; ``vault`` seals TOTP secrets (None: a tool that only adds users)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        projects: Projects,
        vault: Vault | None = None,
        config: PortalConfig | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
        mailer: Mailer | None = None,
    ) -> None:
        self._pool = pool
        self._projects = projects
        self._vault = vault
        self.config = config or PortalConfig()
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        # scrypt is ~50 ms of CPU: at most two at once, so a flood of logins queues instead of taking the loop's
        # default executor from everything else.
        self._hashing = asyncio.Semaphore(2)
        self.team = Team(pool, self)
        self.account = Account(pool, self, mailer)
        self.api_keys = ApiKeys(pool, projects)
        self.payments = PaymentDesk(pool)  # the payments area's templates and carts (switch/portal/payments.py)

    async def _verify(self, password: str, stored: str) -> bool:
        async with self._hashing:
            return await asyncio.to_thread(verify_password, password, stored)

    async def _hash(self, password: str) -> str:
        async with self._hashing:
            return await asyncio.to_thread(hash_password, password)

    # -- users ---------------------------------------------------------------------------------

    async def add_user(self, email: str, project_name: str, role: str) -> tuple[User, Project, str | None]:
        """A user with ``role`` in the project: a new one gets a one-time password (returned, shown once);
        a known e-mail keeps its password (None) and gains the role. :class:`UserExists` if it had one there."""
        if role not in ROLES:
            raise PortalError(f"role must be one of {', '.join(ROLES)}")
        email = email.strip()
        if not (3 <= len(email) <= 254 and "@" in email.strip("@") and not any(c.isspace() for c in email)):
            raise PortalError("email must be an e-mail address")
        project = await self._projects.by_login(project_name)
        if project is None:
            raise LookupError(f"no project {project_name!r}")
        password = one_time_password()
        password_hash = await self._hash(password)
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "INSERT INTO portal_users (email, password_hash) VALUES ($1, $2)"
                " ON CONFLICT (lower(email)) DO NOTHING RETURNING id AS user_id, email, must_change, totp_enabled",
                email,
                password_hash,
            )
            created = row is not None
            if row is None:
                row = await conn.fetchrow(
                    "SELECT id AS user_id, email, must_change, totp_enabled FROM portal_users"
                    " WHERE lower(email) = lower($1)",
                    email,
                )
            added = await conn.fetchval(
                "INSERT INTO portal_members (user_id, project_id, role) VALUES ($1, $2, $3)"
                " ON CONFLICT DO NOTHING RETURNING user_id",
                row["user_id"],
                project.id,
                role,
            )
            if added is None:
                raise UserExists(f"{email} already has a role in project {project_name!r}")
        return _user(row), project, password if created else None

    async def reset_password(self, email: str) -> str:
        """A new one-time password for ``email`` (changed at the next login; its sessions end, a lock lifts)."""
        password = one_time_password()
        password_hash = await self._hash(password)
        async with self._pool.acquire() as conn, conn.transaction():
            user_id = await conn.fetchval(
                "UPDATE portal_users SET password_hash = $2, must_change = true, failed_logins = 0,"
                " locked_until = NULL WHERE lower(email) = lower($1) RETURNING id",
                email,
                password_hash,
            )
            if user_id is None:
                raise LookupError(f"no portal user {email!r}")
            await conn.execute("DELETE FROM portal_sessions WHERE user_id = $1", user_id)
        return password

    async def _forbidden_words(self, user_id: int) -> list[str]:
        """The names a password must not contain: the user's projects' names and their users' logins."""
        rows = await self._pool.fetch(
            "SELECT p.name AS word FROM portal_members m JOIN projects p ON p.id = m.project_id WHERE m.user_id = $1"
            " UNION SELECT u.email FROM portal_members m JOIN portal_members o ON o.project_id = m.project_id"
            " JOIN portal_users u ON u.id = o.user_id WHERE m.user_id = $1",
            user_id,
        )
        return [r["word"] for r in rows]

    # -- login ---------------------------------------------------------------------------------

    async def _record(self, user_id: int | None, email: str, result: str, ip: str | None, agent: str | None) -> None:
        await self._pool.execute(
            "INSERT INTO portal_logins (user_id, email, at, ip, user_agent, result) VALUES ($1, $2, $3, $4, $5, $6)",
            user_id,
            email[:254],
            self.clock(),
            ip,
            (agent or "")[:512] or None,
            result,
        )
        await self.account.prune_history(user_id)

    async def _failed(self, user_id: int) -> None:
        """One more consecutive failure; the last allowed one locks the account (and restarts the count)."""
        cfg = self.config
        await self._pool.execute(
            "UPDATE portal_users SET"
            " locked_until = CASE WHEN failed_logins + 1 >= $2 THEN $3 ELSE locked_until END,"
            " failed_logins = CASE WHEN failed_logins + 1 >= $2 THEN 0 ELSE failed_logins + 1 END WHERE id = $1",
            user_id,
            cfg.max_failures,
            self.clock() + timedelta(seconds=cfg.lockout),
        )

    async def login(self, email: str, password: str, ip: str | None, agent: str | None) -> LoginResult:
        """Check the password; a user with TOTP or the e-mail code gets an ``mfa`` session (and the code by mail),
        others a ``full`` one."""
        email = email.strip()[:254]
        row = await self._pool.fetchrow(
            "SELECT id AS user_id, email, password_hash, must_change, totp_enabled, email_code_enabled, locked_until"
            " FROM portal_users WHERE lower(email) = lower($1)",
            email,
        )
        now = self.clock()
        if row is not None and row["locked_until"] is not None and row["locked_until"] > now:
            await self._record(row["user_id"], email, "locked", ip, agent)
            return LoginResult("locked")
        ok = await self._verify(password, row["password_hash"] if row is not None else _DUMMY_HASH)
        if row is None:
            await self._record(None, email, "unknown_user", ip, agent)
            return LoginResult("bad")
        if not ok:
            await self._failed(row["user_id"])
            await self._record(row["user_id"], email, "bad_password", ip, agent)
            return LoginResult("bad")
        # The user's first project: one that added them later (another team's admin may add any address) never
        # takes their login over; the Projects page switches.
        project_id = await self._pool.fetchval(
            "SELECT project_id FROM portal_members WHERE user_id = $1 ORDER BY created, project_id LIMIT 1",
            row["user_id"],
        )
        if project_id is None:
            await self._record(row["user_id"], email, "no_project", ip, agent)
            return LoginResult("bad")
        if row["totp_enabled"] or row["email_code_enabled"]:
            token = await self._open_session(row["user_id"], project_id, "mfa", ip, agent)
            if row["email_code_enabled"] and not row["totp_enabled"]:
                await self.account.send_code(row["user_id"], row["email"], "login")
            return LoginResult("mfa", token)
        await self._succeeded(row["user_id"], email, "ok", ip, agent)
        token = await self._open_session(row["user_id"], project_id, "full", ip, agent)
        return LoginResult("ok", token, await self.session(token))

    async def _succeeded(self, user_id: int, email: str, result: str, ip: str | None, agent: str | None) -> None:
        await self._pool.execute("UPDATE portal_users SET failed_logins = 0 WHERE id = $1", user_id)
        await self._record(user_id, email, result, ip, agent)

    async def second_factor(self, token: str, code: str, ip: str | None, agent: str | None) -> LoginResult:
        """The TOTP code (or a recovery code) of an ``mfa`` session: a ``full`` session under a new token."""
        pending = await self.session(token, stage="mfa")
        if pending is None:
            return LoginResult("bad")
        user = pending.user
        locked = await self._pool.fetchval("SELECT locked_until FROM portal_users WHERE id = $1", user.id)
        if locked is not None and locked > self.clock():
            await self._record(user.id, user.email, "locked", ip, agent)
            await self.logout(token)
            return LoginResult("locked")
        result = await self._check_code(user.id, code)
        if result is None and user.email_code and not user.totp_enabled:
            result = "email_code" if await self.account.check_code(user.id, code, "login") else None
        if result is None:
            await self._failed(user.id)
            await self._record(user.id, user.email, "bad_code", ip, agent)
            return LoginResult("bad")
        await self._succeeded(user.id, user.email, result, ip, agent)
        await self.logout(token)
        fresh = await self._open_session(user.id, pending.project.id, "full", ip, agent)
        return LoginResult("ok", fresh, await self.session(fresh))

    # -- sessions ------------------------------------------------------------------------------

    async def _open_session(self, user_id: int, project_id: int, stage: str, ip: str | None, agent: str | None) -> str:
        token = secrets.token_urlsafe(32)
        now = self.clock()
        # Expired rows go at each login (an indexed range delete): no sweeper to run, and the table stays the size
        # of the live sessions.
        await self._pool.execute("DELETE FROM portal_sessions WHERE expires <= $1", now)
        if stage == "mfa":
            expires = now + timedelta(seconds=self.config.mfa_window)
        else:
            project = await self._projects.get(project_id)
            assert project is not None  # a member row's project (the foreign key)
            expires = now + timedelta(minutes=project.settings.portal_session_minutes)
        await self._pool.execute(
            "INSERT INTO portal_sessions (token_hash, user_id, project_id, stage, csrf, created, expires, ip,"
            " user_agent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            _hash_token(token),
            user_id,
            project_id,
            stage,
            secrets.token_urlsafe(32),
            now,
            expires,
            ip,
            (agent or "")[:512] or None,
        )
        return token

    async def session(self, token: str, *, stage: str = "full") -> Session | None:
        """The live session of ``token`` at ``stage`` (None: none, expired, or another stage); a ``full`` one's
        expiry slides to now + the project's ``portal_session_minutes``."""
        if not token or len(token) > 64:
            return None
        now = self.clock()
        row = await self._pool.fetchrow(
            "SELECT s.token_hash, s.user_id, s.project_id, s.stage, s.csrf, s.expires, u.email, u.must_change,"
            " u.totp_enabled, u.email_code_enabled, m.role FROM portal_sessions s"
            " JOIN portal_users u ON u.id = s.user_id"
            " JOIN portal_members m ON m.user_id = s.user_id AND m.project_id = s.project_id"
            " WHERE s.token_hash = $1 AND s.expires > $2 AND s.stage = $3",
            _hash_token(token),
            now,
            stage,
        )
        if row is None:
            return None
        project = await self._projects.get(row["project_id"])
        if project is None:
            return None
        expires = row["expires"]
        if stage == "full":
            slid = now + timedelta(minutes=project.settings.portal_session_minutes)
            if slid - expires > timedelta(minutes=1):  # one write a minute at most, not one per click
                await self._pool.execute(
                    "UPDATE portal_sessions SET expires = $2 WHERE token_hash = $1", row["token_hash"], slid
                )
                expires = slid
        return Session(row["token_hash"], _user(row), project, row["role"], row["stage"], row["csrf"], expires)

    async def logout(self, token: str) -> None:
        await self._pool.execute("DELETE FROM portal_sessions WHERE token_hash = $1", _hash_token(token))

    # -- password ------------------------------------------------------------------------------

    async def change_password(self, session: Session, current: str, new: str, ip: str | None, agent: str | None) -> str:
        """Change the password; every session of the user ends and a new one is returned (its cookie value)."""
        if await self.locked(session.user.id):
            raise PortalError("this account is locked after too many failed attempts; try again later")
        stored = await self._pool.fetchval("SELECT password_hash FROM portal_users WHERE id = $1", session.user.id)
        if not await self._verify(current, stored):
            await self._failed(session.user.id)
            raise PortalError("the current password is wrong")
        if new == current:
            raise PortalError("the new password must differ from the current one")
        check_password(new, forbidden=await self._forbidden_words(session.user.id))
        new_hash = await self._hash(new)
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE portal_users SET password_hash = $2, must_change = false, password_changed = $3 WHERE id = $1",
                session.user.id,
                new_hash,
                self.clock(),
            )
            await conn.execute("DELETE FROM portal_sessions WHERE user_id = $1", session.user.id)
        return await self._open_session(session.user.id, session.project.id, "full", ip, agent)

    async def locked(self, user_id: int) -> bool:
        """The account is locked (too many failed passwords or codes): a password behind a session is refused too,
        so a stolen session cannot keep guessing it."""
        until = await self._pool.fetchval("SELECT locked_until FROM portal_users WHERE id = $1", user_id)
        return until is not None and until > self.clock()

    async def confirm_password(self, session: Session, password: str) -> bool:
        if await self.locked(session.user.id):
            return False
        stored = await self._pool.fetchval("SELECT password_hash FROM portal_users WHERE id = $1", session.user.id)
        ok = await self._verify(password, stored)
        if not ok:
            await self._failed(session.user.id)
        return ok

    # -- TOTP ----------------------------------------------------------------------------------

    def _aad(self, user_id: int) -> bytes:
        return b"portal-totp:%d" % user_id

    async def totp_begin(self, session: Session) -> tuple[str, str]:
        """A new secret, kept sealed but not yet enabled: (base32 secret, otpauth:// URI for the QR code)."""
        assert self._vault is not None, "TOTP needs the vault"
        if session.user.totp_enabled:
            # Re-enrolling would switch the second factor off until the new code is confirmed: turn it off first.
            raise PortalError("the authenticator app is on: turn it off first to enrol another")
        secret = pyotp.random_base32()
        key_id, blob = self._vault.seal(secret.encode(), self._aad(session.user.id))
        await self._pool.execute(
            "UPDATE portal_users SET totp_key_id = $2, totp_secret = $3, totp_enabled = false WHERE id = $1",
            session.user.id,
            key_id,
            blob,
        )
        uri = pyotp.TOTP(secret).provisioning_uri(name=session.user.email, issuer_name=self.config.issuer)
        return secret, uri

    async def totp_confirm(self, session: Session, code: str) -> list[str]:
        """Enable TOTP once a code of the new secret checks; the recovery codes (shown once)."""
        if await self._check_code(session.user.id, code, pending=True) is None:
            raise PortalError("the code is wrong or expired: check the app's clock and try the next code")
        codes = [f"{secrets.token_hex(3)}-{secrets.token_hex(3)}" for _ in range(_RECOVERY_CODES)]
        await self._pool.execute(
            "UPDATE portal_users SET totp_enabled = true, email_code_enabled = false, recovery_codes = $2"
            " WHERE id = $1",
            session.user.id,
            [_hash_code(c) for c in codes],
        )
        return codes

    async def totp_disable(self, session: Session) -> None:
        await self._pool.execute(
            "UPDATE portal_users SET totp_enabled = false, totp_key_id = NULL, totp_secret = NULL,"
            " totp_last_step = NULL, recovery_codes = '{}' WHERE id = $1",
            session.user.id,
        )

    async def _check_code(self, user_id: int, code: str, *, pending: bool = False) -> str | None:
        """``ok`` for a TOTP code of this or a neighbouring step not used before, ``recovery_code`` for an unused
        recovery code (now used up), None otherwise. ``pending``: the secret being enrolled (TOTP only)."""
        code = "".join(code.split())
        row = await self._pool.fetchrow(
            "SELECT totp_key_id, totp_secret, totp_enabled, totp_last_step FROM portal_users WHERE id = $1", user_id
        )
        if row is None or row["totp_secret"] is None or row["totp_enabled"] == pending:
            return None
        if len(code) == 6 and code.isascii() and code.isdigit():
            assert self._vault is not None, "TOTP needs the vault"
            secret = self._vault.open(row["totp_key_id"], row["totp_secret"], self._aad(user_id)).decode()
            step = _matching_step(pyotp.TOTP(secret), code, self.clock())
            if step is None:
                return None
            # A code works once: the step must be later than the last one accepted (compare-and-set).
            taken = await self._pool.fetchval(
                "UPDATE portal_users SET totp_last_step = $2 WHERE id = $1"
                " AND (totp_last_step IS NULL OR totp_last_step < $2) RETURNING id",
                user_id,
                step,
            )
            return "ok" if taken is not None else None
        if pending:
            return None
        used = await self._pool.fetchval(
            "UPDATE portal_users SET recovery_codes = array_remove(recovery_codes, $2)"
            " WHERE id = $1 AND $2 = ANY(recovery_codes) RETURNING id",
            user_id,
            _hash_code(code[:32]),
        )
        return "recovery_code" if used is not None else None

    # -- history -------------------------------------------------------------------------------

    async def history(self, user_id: int, limit: int = 20) -> list[dict[str, Any]]:
        rows = await self._pool.fetch(
            "SELECT at, ip, user_agent, result FROM portal_logins WHERE user_id = $1 ORDER BY at DESC, id DESC"
            " LIMIT $2",
            user_id,
            limit,
        )
        return [dict(r) for r in rows]

    async def record_logout(self, session: Session, ip: str | None, agent: str | None) -> None:
        await self._record(session.user.id, session.user.email, "logout", ip, agent)


def _matching_step(totp: pyotp.TOTP, code: str, now: datetime) -> int | None:
    """The time step whose code is ``code``: this one or one either side (30 s of clock drift)."""
    base = int(now.timestamp()) // _TOTP_STEP
    for step in (base, base - 1, base + 1):
        if hmac.compare_digest(totp.at(step * _TOTP_STEP), code):
            return step
    return None
