"""Merchant projects: HTTP Basic credentials (scrypt) and the settings that go on the wire.

A password is shown once, at creation; the table keeps only
``scrypt$N$r$p$salt$hash`` (parameters stored with each hash, so they can be
raised later without invalidating old ones). Verifying costs ~50 ms of CPU
by design, so verified credentials are cached in-process for a minute: the
hot path pays one dictionary lookup, while a wrong password is never cached
and stays slow. Changes made here drop the entry at once; a change made by
another process (``isoswitch project settings``, a password reset) is seen
within ``refresh`` seconds (5 by default): a cached entry older than that
re-reads its project's row (settings and password hash; one indexed read
per login and process every ``refresh`` seconds, single flight, no scrypt
unless the hash changed, when the password is verified again).

A little over 500 lines: the settings' one validated type (the CLI and the portal's settings page both go
through it) stays beside the table that keeps it.

>>> s = ProjectSettings.defaults(7, "shop")
>>> s.terminal_id, s.merchant_id, s.descriptor
('ISW00007', 'ISOSWITCH000007', 'ISOSWITCH*SHOP')
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import dataclasses
import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import asyncpg

from switch.store.errors import InvalidSettings, ProjectExists
from switch.store.public_keys import PublicKeys, insert_keys, mode_of
from switch.translate import Merchant

__all__ = ["PAGE_TEMPLATES", "Project", "ProjectSettings", "Projects", "hash_password", "verify_password"]

# scrypt cost: N=2**14, r=8 is 16 MiB and ~50 ms per hash (RFC 7914's
# interactive-login figure); p=1. Raise N for new hashes when CPUs get faster.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_SALT_BYTES = 16
_HASH_BYTES = 32

# Project names double as HTTP Basic logins: no ":" (the Basic separator),
# no spaces, no surprises in logs.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")

_PRINTABLE = re.compile(r"^[\x20-\x7e]*$")


@dataclass(frozen=True, slots=True, kw_only=True)
class ProjectSettings:
    """Per-project acceptor data and pricing. Field defaults are what a new project gets.

    ``terminal_id`` and ``merchant_id`` have no fixed default: a new project
    gets ones derived from its id (:meth:`defaults`), so two projects never
    look like one merchant to the host.
    """

    terminal_id: str  # DE 41, 1-8 printable ASCII
    merchant_id: str  # DE 42, 1-15 printable ASCII
    mcc: str = "5999"  # DE 18: 5999 "miscellaneous and specialty retail", the usual card-not-present default
    descriptor: str = "ISOSWITCH"  # DE 43 name part, 1-25 characters (positions 1-25)
    city: str = "INTERNET"  # DE 43 city part, 0-13 characters (e-commerce acceptors put a web/phone hint here)
    country: str = "US"  # DE 43 country, ISO 3166-1 alpha-2
    currency: str = "USD"  # default currency of orders, ISO 4217 alpha
    auto_charge: bool = False  # 1-stage (authorize and charge) when the request does not say
    fee_rate: Decimal = Decimal("0")  # percent of each charge kept as fee, e.g. Decimal("3") for 3 %
    fee_fixed: int = 0  # minor units of fee per charge, on top of fee_rate
    reserve_rate: Decimal = Decimal("0")  # percent of each authorization held as a reserve
    acquirer_id: str = "412345"  # DE 32, the acquiring institution id (the sim's test acquirer BIN)
    require_3ds: bool = False  # every authorization runs 3-D Secure, as if it said options.force3d
    # More DE 41 terminals the merchant may choose with options.terminal (terminal_id is always one).
    terminals: tuple[str, ...] = ()
    cvv_required: bool = True  # card.cvv required on authorize (seeds/003: "can be configured as optional")
    holder_required: bool = True  # card.holder required on authorize (the same)
    # seeds/002's "Forbid creation through the Public API": POST /public-api/payment-invoices answers 403.
    forbid_public_invoices: bool = False
    # seeds/000 "Session duration": minutes a merchant portal session lasts without a request (issue 13).
    portal_session_minutes: int = 30
    # seeds/000 "Two-step payment completion": a capture may exceed the authorized amount by this percentage
    # (0: never more than authorized); the issuer has the last word (it may decline the excess).
    overcapture_percent: int = 0
    # seeds/000 "General settings" (issue 13 item 4), edited on the portal's settings page or by the CLI:
    auto_capture: bool = False  # charge authorizations left uncaptured capture_hours after they were made
    capture_hours: int = 24  # 1..720: a card scheme keeps an authorization about 7-30 days
    show_final_page: bool = False  # the hosted page shows its final page (with a link back) instead of redirecting
    notify_emails: str = ""  # the merchant's notification addresses, comma-separated (at most 5)
    payment_session_minutes: int = 0  # a hosted page's time to pay when the request says none; 0: [pages]
    open_id_token: str = ""  # seeds/000 "Open Id token": generated on the page or typed in
    session_events: bool = False  # e-mail notify_emails when a payment session (a hosted page) is made
    two_step_allowed: bool = True  # 2-stage payments (authorize now, charge later); false: 1-stage only
    google_pay_browser: bool = True  # Google Pay in the browser (the hosted page)
    google_pay_mobile: bool = True  # Google Pay tokens from a mobile app (POST /orders/token_pay)
    apple_pay: bool = True  # Apple Pay tokens (POST /orders/token_pay)
    page_template: str = "standard"  # the hosted page's look: one of PAGE_TEMPLATES

    def __post_init__(self) -> None:
        _text("terminal_id", self.terminal_id, 1, 8)
        _text("merchant_id", self.merchant_id, 1, 15)
        if not (len(self.mcc) == 4 and self.mcc.isascii() and self.mcc.isdigit()):
            raise InvalidSettings("mcc must be 4 digits")
        _text("descriptor", self.descriptor, 1, 25)
        _text("city", self.city, 0, 13)
        if not (len(self.country) == 2 and self.country.isascii() and self.country.isalpha()):
            raise InvalidSettings("country must be an ISO 3166-1 alpha-2 code")
        if not (len(self.currency) == 3 and self.currency.isascii() and self.currency.isalpha()):
            raise InvalidSettings("currency must be an ISO 4217 alphabetic code")
        for name in ("auto_charge", "require_3ds"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidSettings(f"{name} must be true or false")
        for name in ("fee_rate", "reserve_rate"):
            v = getattr(self, name)
            if not isinstance(v, Decimal) or not v.is_finite() or not Decimal(0) <= v <= Decimal(100):
                raise InvalidSettings(f"{name} must be a percentage 0..100")
        if not isinstance(self.fee_fixed, int) or isinstance(self.fee_fixed, bool) or self.fee_fixed < 0:
            raise InvalidSettings("fee_fixed must be a non-negative integer of minor units")
        if not (0 < len(self.acquirer_id) <= 11 and self.acquirer_id.isascii() and self.acquirer_id.isdigit()):
            raise InvalidSettings("acquirer_id must be 1-11 digits")
        if not isinstance(self.terminals, tuple):
            raise InvalidSettings("terminals must be a list of terminal ids")
        for terminal in self.terminals:
            _text("terminals", terminal, 1, 8)
        for name in ("cvv_required", "holder_required", "forbid_public_invoices"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidSettings(f"{name} must be true or false")
        minutes = self.portal_session_minutes
        if not isinstance(minutes, int) or isinstance(minutes, bool) or not 1 <= minutes <= 1440:
            raise InvalidSettings("portal_session_minutes must be 1..1440 (minutes)")
        _check_general(self)
        over = self.overcapture_percent
        if not isinstance(over, int) or isinstance(over, bool) or not 0 <= over <= 100:
            raise InvalidSettings("overcapture_percent must be 0..100 (percent)")

    def capture_limit(self, authorized: int) -> int:
        """The most a capture of ``authorized`` minor units may be: that, plus the over-capture percentage.

        >>> ProjectSettings(terminal_id="T", merchant_id="M", overcapture_percent=20).capture_limit(999)
        1198
        """
        return authorized + authorized * self.overcapture_percent // 100

    def terminal(self, chosen: str | None) -> str | None:
        """DE 41 for ``options.terminal``: None when not chosen (or the default), else one of the project's.

        Raises ``LookupError`` for a terminal that is not the project's.
        """
        if not chosen or chosen == self.terminal_id:
            return None
        if chosen in self.terminals:
            return chosen
        raise LookupError(chosen)

    @classmethod
    def defaults(cls, project_id: int, name: str) -> ProjectSettings:
        """A new project's settings: wire ids derived from its id, descriptor from its name."""
        return cls(
            terminal_id=f"ISW{project_id % 10**5:05d}",
            merchant_id=f"ISOSWITCH{project_id % 10**6:06d}",
            descriptor=("ISOSWITCH*" + name.upper())[:25],
        )

    def to_json(self) -> dict[str, Any]:
        """JSON-ready (decimals as strings, so no float ever touches a rate)."""
        doc = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        doc["fee_rate"] = str(self.fee_rate)
        doc["reserve_rate"] = str(self.reserve_rate)
        doc["terminals"] = list(self.terminals)
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any], *, strict: bool = True) -> ProjectSettings:
        """From :meth:`to_json` output; unknown keys are refused when ``strict`` (ignored when reading rows)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(doc) - known
        if unknown and strict:
            raise InvalidSettings(f"unknown settings {sorted(unknown)}")
        values = {k: v for k, v in doc.items() if k in known}
        for name in ("fee_rate", "reserve_rate"):
            if name in values:
                values[name] = _decimal(name, values[name])
        if isinstance(values.get("terminals"), list):
            values["terminals"] = tuple(values["terminals"])
        try:
            return cls(**values)
        except TypeError as e:  # a required field missing
            raise InvalidSettings(str(e)) from None

    @classmethod
    def parse_setting(cls, key: str, text: str) -> Any:
        """``text`` (as typed on a command line) as the value of setting ``key``, typed by its field.

        bool: ``true``/``false``; tuples: comma-separated (empty: none); Decimal, int, str as written.
        The whole is validated when the settings are made (:meth:`from_json`); here only the type.

        >>> ProjectSettings.parse_setting("terminals", "T1, T2"), ProjectSettings.parse_setting("require_3ds", "true")
        (('T1', 'T2'), True)
        """
        kinds = {f.name: f.type for f in dataclasses.fields(cls)}
        kind = kinds.get(key)
        if kind is None:
            raise InvalidSettings(f"unknown setting {key!r}; known: {', '.join(kinds)}")
        if kind == "bool":
            if text.lower() not in ("true", "false"):
                raise InvalidSettings(f"{key} must be true or false")
            return text.lower() == "true"
        if kind.startswith("tuple"):
            return tuple(item.strip() for item in text.split(",")) if text.strip() else ()
        if kind == "Decimal":
            return _decimal(key, text)
        if kind == "int":
            try:
                return int(text)
            except ValueError:
                raise InvalidSettings(f"{key} must be an integer") from None
        return text

    @classmethod
    def parse_settings(cls, texts: Mapping[str, str]) -> dict[str, Any]:
        """Each ``key: text`` through :meth:`parse_setting`: the changes ``isoswitch project settings --set`` and
        the portal's settings page hand to :meth:`Projects.update_settings` (which validates the whole)."""
        return {key.strip(): cls.parse_setting(key.strip(), text) for key, text in texts.items()}

    def merchant(self) -> Merchant:
        """The acceptor of :mod:`switch.translate` for these settings."""
        return Merchant(
            terminal_id=self.terminal_id,
            merchant_id=self.merchant_id,
            mcc=self.mcc,
            name=self.descriptor,
            city=self.city,
            country=self.country,
            acquirer_id=self.acquirer_id,
        )


#: The hosted page's looks (a class on its body: the page's own stylesheet has each; no merchant CSS).
PAGE_TEMPLATES = ("standard", "compact", "dark")
_FLAGS = (
    "auto_capture", "show_final_page", "session_events", "two_step_allowed", "google_pay_browser",
    "google_pay_mobile", "apple_pay",
)  # fmt: skip
_EMAIL = re.compile(r"^[^@\s,;<>\"]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$")


def _check_general(s: ProjectSettings) -> None:
    """The seed's general settings (the wire fields are checked in ``__post_init__``)."""
    for name in _FLAGS:
        if not isinstance(getattr(s, name), bool):
            raise InvalidSettings(f"{name} must be true or false")
    _int_in("capture_hours", s.capture_hours, 1, 720, "hours")
    _int_in("payment_session_minutes", s.payment_session_minutes, 0, 10080, "minutes; 0: the [pages] default")
    if not isinstance(s.notify_emails, str) or len(s.notify_emails) > 600:
        raise InvalidSettings("notify_emails must be at most 5 e-mail addresses, comma-separated")
    addresses = [a.strip() for a in s.notify_emails.split(",") if a.strip()]
    if len(addresses) > 5 or not all(_EMAIL.match(a) for a in addresses):
        raise InvalidSettings("notify_emails must be at most 5 e-mail addresses, comma-separated")
    _text("open_id_token", s.open_id_token, 0, 128)
    if s.page_template not in PAGE_TEMPLATES:
        raise InvalidSettings(f"page_template must be one of {', '.join(PAGE_TEMPLATES)}")


def _int_in(name: str, value: object, lo: int, hi: int, unit: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise InvalidSettings(f"{name} must be {lo}..{hi} ({unit})")


@dataclass(frozen=True, slots=True)
class Project:
    id: int
    name: str
    login: str
    settings: ProjectSettings


class Projects:
    """The projects table, with a small cache of verified credentials."""

    __slots__ = ("_cache", "_cache_size", "_cache_ttl", "_checking", "_pool", "_refresh", "_rereading", "_verifying")

    def __init__(
        self, pool: asyncpg.Pool, *, cache_ttl: float = 60.0, cache_size: int = 1024, refresh: float = 5.0
    ) -> None:
        """``cache_ttl``: seconds a verified password is trusted without scrypt; ``refresh``: seconds a cached
        project's settings are used before its row is read again (what bounds another process's change)."""
        self._pool = pool
        self._cache_ttl = cache_ttl
        self._cache_size = cache_size
        self._refresh = refresh
        # (login, sha256(password)) -> entry; LRU order.
        self._cache: OrderedDict[tuple[str, bytes], _Cached] = OrderedDict()
        # Bounds the scrypt work in flight: a flood of wrong passwords queues
        # here instead of filling the default executor other code needs.
        self._verifying = asyncio.Semaphore(2)
        self._checking: dict[tuple[str, bytes], asyncio.Future[Project | None]] = {}
        self._rereading: dict[tuple[str, bytes], asyncio.Future[Project | None]] = {}

    async def create(self, name: str, settings: ProjectSettings | None = None) -> tuple[Project, str]:
        """A new project whose login is ``name``; returns it and its password (shown only now)."""
        if not _NAME.match(name):
            raise InvalidSettings(
                "project name must be 1-63 characters: letters, digits, '.', '_', '-', starting with a letter or digit"
            )
        password = secrets.token_urlsafe(24)
        async with self._verifying:
            password_hash = await asyncio.to_thread(hash_password, password)
        async with self._pool.acquire() as conn, conn.transaction():
            try:
                pid = await conn.fetchval(
                    "INSERT INTO projects (name, login, password_hash) VALUES ($1, $1, $2) RETURNING id",
                    name,
                    password_hash,
                )
            except asyncpg.UniqueViolationError:
                raise ProjectExists(f"project {name!r} already exists") from None
            # The wire ids derive from the id, known only after the insert.
            chosen = settings if settings is not None else ProjectSettings.defaults(pid, name)
            await conn.execute("UPDATE projects SET settings = $2 WHERE id = $1", pid, chosen.to_json())
            await insert_keys(conn, pid)
        return Project(pid, name, name, chosen), password

    async def public_keys(self, project_id: int) -> PublicKeys | None:
        """The project's test and live public keys (None: no such project)."""
        rows = await self._pool.fetch(
            "SELECT public_key, test_mode FROM project_keys WHERE project_id = $1", project_id
        )
        keys = {r["test_mode"]: r["public_key"] for r in rows}
        return PublicKeys(keys[True], keys[False]) if len(keys) == 2 else None

    async def by_public_key(self, key: str) -> tuple[Project, bool] | None:
        """The project a public key names and whether the key is a test one; None for an unknown key.

        One indexed read (the key is the primary key); malformed keys are refused without one.
        """
        if mode_of(key) is None:
            return None
        row = await self._pool.fetchrow(
            "SELECT p.id, p.name, p.login, p.settings, k.test_mode FROM project_keys k"
            " JOIN projects p ON p.id = k.project_id WHERE k.public_key = $1",
            key,
        )
        return None if row is None else (_project(row), row["test_mode"])

    async def get(self, project_id: int) -> Project | None:
        row = await self._pool.fetchrow("SELECT id, name, login, settings FROM projects WHERE id = $1", project_id)
        return None if row is None else _project(row)

    async def by_login(self, login: str) -> Project | None:
        row = await self._pool.fetchrow("SELECT id, name, login, settings FROM projects WHERE login = $1", login)
        return None if row is None else _project(row)

    async def list_all(self) -> list[Project]:
        rows = await self._pool.fetch("SELECT id, name, login, settings FROM projects ORDER BY id")
        return [_project(r) for r in rows]

    async def authenticate(self, login: str, password: str) -> Project | None:
        """The project when the credentials are right, else None (after the same work as a wrong password)."""
        key = (login, hashlib.sha256(password.encode()).digest())
        hit = self._cache.get(key)
        if hit is not None:
            now = time.monotonic()
            if hit.expires > now:
                self._cache.move_to_end(key)
                if hit.fresh_until > now:
                    return hit.project
                fresh = await self._reread(key, hit)
                if fresh is not None:
                    return fresh
                # The password changed (or the project went away): verified again below.
            self._cache.pop(key, None)
        # Single flight: a client opening 64 connections at once sends the same
        # credentials 64 times before the first check is cached; they share one
        # scrypt instead of queueing 64 of them behind the semaphore.
        task = self._checking.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(
                self._check(key, login, password), context=contextvars.Context()
            )
            self._checking[key] = task
            task.add_done_callback(lambda _t: self._checking.pop(key, None))
        return await asyncio.shield(task)

    async def _check(self, key: tuple[str, bytes], login: str, password: str) -> Project | None:
        row = await self._credential(login)
        # An unknown login costs a full scrypt too, so timing does not tell
        # which logins exist.
        stored = row["password_hash"] if row is not None else _DUMMY_HASH
        async with self._verifying:
            ok = await asyncio.to_thread(verify_password, password, stored)
        if not ok or row is None:
            return None
        project = _project(row)
        now = time.monotonic()
        self._cache[key] = _Cached(project, stored, now + self._cache_ttl, now + self._refresh)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return project

    async def _credential(self, login: str) -> asyncpg.Record | None:
        """The project and password hash of an HTTP Basic login: the project's own, or one of its API keys
        (``ak_...``, schemas/sql/033_project_api_keys.sql: deleting the key's row ends it)."""
        row = await self._pool.fetchrow(
            "SELECT id, name, login, settings, password_hash FROM projects WHERE login = $1", login
        )
        if row is None and login.startswith("ak_"):
            row = await self._pool.fetchrow(
                "SELECT p.id, p.name, p.login, p.settings, k.password_hash FROM project_api_keys k"
                " JOIN projects p ON p.id = k.project_id WHERE k.login = $1",
                login,
            )
        return row

    async def _reread(self, key: tuple[str, bytes], hit: _Cached) -> Project | None:
        """The cached project with its settings read again (single flight); None when its password changed."""
        task = self._rereading.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._fetch_fresh(key, hit), context=contextvars.Context())
            self._rereading[key] = task
            task.add_done_callback(lambda _t: self._rereading.pop(key, None))
        return await asyncio.shield(task)

    async def _fetch_fresh(self, key: tuple[str, bytes], hit: _Cached) -> Project | None:
        row = await self._credential(key[0])
        if row is None or row["password_hash"] != hit.password_hash or row["id"] != hit.project.id:
            self._cache.pop(key, None)
            return None
        project = _project(row)
        if self._cache.get(key) is hit:  # not dropped (forget) or replaced meanwhile
            hit.project = project
            hit.fresh_until = time.monotonic() + self._refresh
        return project

    async def update_settings(self, project_id: int, **changes: Any) -> Project:
        """Change some settings (validated as a whole); returns the updated project."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT id, name, login, settings FROM projects WHERE id = $1 FOR UPDATE", project_id
            )
            if row is None:
                raise LookupError(f"no project {project_id}")
            current = _project(row)
            doc = current.settings.to_json()
            doc.update({k: str(v) if isinstance(v, Decimal) else v for k, v in changes.items()})
            settings = ProjectSettings.from_json(doc)
            await conn.execute("UPDATE projects SET settings = $2 WHERE id = $1", project_id, settings.to_json())
        self.forget(project_id)
        return dataclasses.replace(current, settings=settings)

    async def reset_password(self, login: str) -> str:
        """A new password for ``login`` (shown only now; the old one stops working)."""
        password = secrets.token_urlsafe(24)
        async with self._verifying:
            password_hash = await asyncio.to_thread(hash_password, password)
        pid = await self._pool.fetchval(
            "UPDATE projects SET password_hash = $2 WHERE login = $1 RETURNING id", login, password_hash
        )
        if pid is None:
            raise LookupError(f"no project with login {login!r}")
        self.forget(pid)
        return password

    def forget(self, project_id: int) -> None:
        """Drop cached credentials of a project (after a change to it)."""
        for key in [k for k, entry in self._cache.items() if entry.project.id == project_id]:
            del self._cache[key]


@dataclass(slots=True)
class _Cached:
    """A verified credential: its project, the hash it was verified against, until when each is trusted."""

    project: Project
    password_hash: str
    expires: float  # monotonic: the password is verified again (scrypt) after this
    fresh_until: float  # monotonic: the project's row is read again after this


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64), with a fresh salt."""
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(password.encode(), salt, n, r, p)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against a :func:`hash_password` string."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = _scrypt(password.encode(), base64.b64decode(salt), int(n), int(r), int(p), len(expected))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int, dklen: int = _HASH_BYTES) -> bytes:
    # maxmem: scrypt needs 128*N*r*p bytes plus change; OpenSSL's default cap
    # (32 MiB) would refuse stronger parameters stored by a later release.
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=128 * n * r * (p + 1) + 2**20)


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


# Verified against when the login does not exist: same cost, always false.
_DUMMY_HASH = f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(bytes(_SALT_BYTES))}${_b64(bytes(_HASH_BYTES))}"


def _project(row: asyncpg.Record) -> Project:
    settings = ProjectSettings.from_json(row["settings"], strict=False)
    return Project(row["id"], row["name"], row["login"], settings)


def _text(name: str, value: object, lo: int, hi: int) -> None:
    if not (isinstance(value, str) and lo <= len(value) <= hi and _PRINTABLE.match(value)):
        raise InvalidSettings(f"{name} must be {lo}-{hi} printable ASCII characters")
    if lo > 0 and not value.strip():
        raise InvalidSettings(f"{name} must not be blank")


def _decimal(name: str, value: object) -> Decimal:
    if isinstance(value, float | bool):
        raise InvalidSettings(f"{name} must be a decimal string, not a float")
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise InvalidSettings(f"{name} must be a decimal number") from None
