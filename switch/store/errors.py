"""Typed errors of the store, split by who is at fault.

Configuration mistakes subclass ``ValueError``, a lost or refused database
``ConnectionError``, so generic handlers still work. No error text ever
carries key material, a PAN or a password.
"""

from __future__ import annotations

__all__ = [
    "StoreError",
    "DatabaseUnavailable",
    "MigrationError",
    "VaultError",
    "VaultConfigError",
    "UnknownKey",
    "DecryptError",
    "SequenceExhausted",
    "WriterClosed",
    "ProjectExists",
    "InvalidSettings",
]


class StoreError(Exception):
    """Base of every error raised by ``switch.store``."""


class DatabaseUnavailable(StoreError, ConnectionError):
    """The database could not be started or reached."""


class MigrationError(StoreError):
    """A schema migration is malformed, renamed after being applied, or failed."""


class VaultError(StoreError):
    """Base of the PAN vault's errors."""


class VaultConfigError(VaultError, ValueError):
    """The vault's keys are misconfigured (bad base64, wrong length, clashing ids)."""


class UnknownKey(VaultError, KeyError):
    """A ciphertext names a key id the vault does not hold (a retired key not loaded)."""

    def __str__(self) -> str:  # KeyError's repr-quoting reads badly in logs
        return str(self.args[0]) if self.args else "unknown key"


class DecryptError(VaultError):
    """The ciphertext, its nonce or its associated data were altered (or the wrong key)."""


class SequenceExhausted(StoreError, LookupError):
    """Both leased identifier blocks are used up; ``await seq.refill()`` and take again."""


class WriterClosed(StoreError, RuntimeError):
    """The group writer is closed (or closing): the write was not queued."""


class ProjectExists(StoreError, ValueError):
    """A project with that name (login) already exists."""


class InvalidSettings(StoreError, ValueError):
    """A project setting is out of its allowed range; the message names it."""
