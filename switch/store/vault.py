"""PAN encryption at rest: AES-256-GCM, the key id stored next to each ciphertext.

A blob is ``nonce (12 bytes) || ciphertext || tag (16 bytes)``; the key id
travels beside it (its own column) so keys can rotate: the vault seals with
its *current* key and opens with any key it holds. Pass associated data
that ties the ciphertext to its row (e.g. the order id): a blob copied to
another row then fails to open instead of showing the wrong card.

Random 96-bit nonces are safe for about 2**32 seals per key (NIST SP
800-38D); rotate keys well before that.

>>> v = Vault({"k1": bytes(32)}, current="k1")
>>> key_id, blob = v.seal(b"4111111111111111", aad=b"order:1")
>>> key_id, len(blob), v.open(key_id, blob, aad=b"order:1")
('k1', 44, b'4111111111111111')
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from switch.store.errors import DecryptError, UnknownKey, VaultConfigError

__all__ = ["Vault", "KEY_FILE", "ENV_KEY", "ENV_KEY_ID", "ENV_OLD_KEYS"]

log = logging.getLogger("isoswitch.store")

ENV_KEY = "ISOSWITCH_PAN_KEY"  # base64 of 32 bytes: the current key
ENV_KEY_ID = "ISOSWITCH_PAN_KEY_ID"  # its id, default "k1"
ENV_OLD_KEYS = "ISOSWITCH_PAN_KEYS_OLD"  # JSON {"id": "base64", ...}: retired keys, open only
KEY_FILE = "pan.key"  # in the data directory: the generated key of the embedded default

_NONCE = 12
_KEY_BYTES = 32
_MAX_ID = 32


class Vault:
    """Seals with the current key, opens with any loaded key. Holds no plaintext."""

    __slots__ = ("_aead", "current")

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        if current not in keys:
            raise VaultConfigError(f"current key id {current!r} is not among the loaded keys")
        self._aead: dict[str, AESGCM] = {}
        for key_id, key in keys.items():
            _check_id(key_id)
            if not isinstance(key, bytes) or len(key) != _KEY_BYTES:
                raise VaultConfigError(f"key {key_id!r} must be {_KEY_BYTES} bytes (AES-256)")
            self._aead[key_id] = AESGCM(key)
        self.current = current

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._aead)

    def seal(self, plaintext: bytes, aad: bytes) -> tuple[str, bytes]:
        """``(key_id, nonce || ciphertext)`` under the current key."""
        nonce = os.urandom(_NONCE)
        return self.current, nonce + self._aead[self.current].encrypt(nonce, plaintext, aad)

    def open(self, key_id: str, blob: bytes, aad: bytes) -> bytes:
        """The plaintext; :class:`UnknownKey` or :class:`DecryptError` (never partial output)."""
        aead = self._aead.get(key_id)
        if aead is None:
            raise UnknownKey(f"no PAN key with id {key_id!r} is loaded")
        if len(blob) < _NONCE + 16:
            raise DecryptError("ciphertext too short")
        try:
            return aead.decrypt(blob[:_NONCE], blob[_NONCE:], aad)
        except InvalidTag:
            raise DecryptError(f"ciphertext under key {key_id!r} failed authentication") from None

    def __repr__(self) -> str:  # never the keys
        return f"<Vault current={self.current!r} keys={sorted(self._aead)}>"

    @classmethod
    def from_env_or_dir(cls, data_dir: Path, env: Mapping[str, str] = os.environ) -> Vault:
        """The key from ``ISOSWITCH_PAN_KEY``, else the generated ``data_dir/pan.key`` (made on first run).

        Retired keys from ``ISOSWITCH_PAN_KEYS_OLD`` are loaded to open old
        ciphertexts. A generated key file that exists when an env key is set
        is loaded too (as retired), so cards sealed before the operator set
        a key still open.
        """
        keys = _old_keys(env.get(ENV_OLD_KEYS))
        path = Path(data_dir) / KEY_FILE
        env_key = env.get(ENV_KEY)
        if env_key:
            current = env.get(ENV_KEY_ID) or "k1"
            _check_id(current)
            file_key = _read_key_file(path) if path.exists() else None
            if file_key is not None:
                _add(keys, *file_key)
            _add(keys, current, _b64key(env_key, ENV_KEY))
        else:
            current, key = _read_key_file(path) if path.exists() else _generate_key_file(path)
            log.warning(
                "PAN encryption uses a key generated into the data directory; set %s for production",
                ENV_KEY,
                extra={"key_file": str(path), "key_id": current},
            )
            _add(keys, current, key)
        return cls(keys, current)


def _check_id(key_id: str) -> None:
    if not (isinstance(key_id, str) and 0 < len(key_id) <= _MAX_ID and key_id.isascii() and key_id.isprintable()):
        raise VaultConfigError(f"key id must be 1-{_MAX_ID} printable ASCII characters")


def _add(keys: dict[str, bytes], key_id: str, key: bytes) -> None:
    if key_id in keys and not secrets.compare_digest(keys[key_id], key):
        raise VaultConfigError(f"two different keys share the id {key_id!r}")
    keys[key_id] = key


def _b64key(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise VaultConfigError(f"{where}: not valid base64") from None  # the text is the key: not in the message
    if len(key) != _KEY_BYTES:
        raise VaultConfigError(f"{where}: must decode to {_KEY_BYTES} bytes, got {len(key)}")
    return key


def _old_keys(text: str | None) -> dict[str, bytes]:
    if not text:
        return {}
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise VaultConfigError(f"{ENV_OLD_KEYS}: not valid JSON") from None
    if not isinstance(doc, dict):
        raise VaultConfigError(f'{ENV_OLD_KEYS}: must be a JSON object {{"id": "base64 key", ...}}')
    keys: dict[str, bytes] = {}
    for key_id, b64 in doc.items():
        _check_id(key_id)
        if not isinstance(b64, str):
            raise VaultConfigError(f"{ENV_OLD_KEYS}: key {key_id!r} must be a base64 string")
        keys[key_id] = _b64key(b64, f"{ENV_OLD_KEYS}[{key_id!r}]")
    return keys


def _read_key_file(path: Path) -> tuple[str, bytes]:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("PAN key file is readable by other users; chmod 600 it", extra={"key_file": str(path)})
    try:
        doc = orjson.loads(path.read_bytes())
        key_id, b64 = doc["id"], doc["key"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise VaultConfigError(f'{path}: expected JSON {{"id": ..., "key": base64}}') from None
    _check_id(key_id)
    return key_id, _b64key(b64, str(path))


def _generate_key_file(path: Path) -> tuple[str, bytes]:
    """Make a key file atomically: two processes on a fresh data dir end up with one key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A distinct id per generated key, so it can never clash with an
    # operator's "k1" once they move to ISOSWITCH_PAN_KEY.
    key_id, key = "gen-" + secrets.token_hex(4), AESGCM.generate_key(bit_length=256)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps({"id": key_id, "key": base64.b64encode(key).decode()}))
            f.flush()
            os.fsync(f.fileno())
        try:
            # link() fails if the name exists: whoever links first wins and
            # the others read the winner's key (no half-written file is ever seen).
            os.link(tmp, path)
        except FileExistsError:
            return _read_key_file(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    log.warning("generated a new PAN encryption key", extra={"key_file": str(path), "key_id": key_id})
    return key_id, key
