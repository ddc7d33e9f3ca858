"""3-D Secure messages of the simulated directory server and ACS: JWS (ES256) signing, base64url JSON, ECI values.

The ACS signs PaRes, ARes, RReq and CRes with its private key; the switch holds only the public key and checks
every message it is handed by a browser or the DS. A signed message is a compact JWS whose claims always carry
``messageType``, ``iat`` and ``exp`` (``iat`` + 600 s unless told otherwise).

>>> encode_json({"messageType": "CReq", "acsTransID": "a1"})
'eyJtZXNzYWdlVHlwZSI6IkNSZXEiLCJhY3NUcmFuc0lEIjoiYTEifQ'
>>> decode_json("eyJtZXNzYWdlVHlwZSI6IkNSZXEiLCJhY3NUcmFuc0lEIjoiYTEifQ")
{'messageType': 'CReq', 'acsTransID': 'a1'}
>>> decode_json("not base64!")
Traceback (most recent call last):
...
switch.wire.threeds.MessageError: not base64url JSON

>>> signer = Signer.generate()
>>> token = signer.sign({"messageType": "PaRes", "xid": "x1", "status": "Y"})
>>> Verifier.from_pem(signer.public_pem()).verify(token, "PaRes")["status"]
'Y'
>>> Verifier.from_pem(signer.public_pem()).verify(token, "CRes")
Traceback (most recent call last):
...
switch.wire.threeds.MessageError: messageType is 'PaRes', not 'CRes'

>>> eci_for("4111111111111111", "Y"), eci_for("5200000000001005", "Y"), eci_for("4111111111111111", "U")
('05', '02', '07')
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = [
    "MessageError",
    "Signer",
    "Verifier",
    "decode_json",
    "eci_for",
    "encode_json",
    "fingerprint",
    "generate_key_pair",
]

ALGORITHM = "ES256"
TTL = 600
# Clock skew tolerated between the ACS's clock and the switch's (they may be different machines).
LEEWAY = 30
# base64url JSON from a browser form: PaReq, CReq, threeDSMethodData are a few hundred bytes; a cap keeps a
# hostile post from costing more than that.
MAX_ENCODED = 16 * 1024

PRIVATE_NAME = "acs_signing.pem"
PUBLIC_NAME = "acs_signing.pub.pem"


class MessageError(ValueError):
    """A 3-D Secure message that cannot be trusted: malformed, badly signed, expired or of the wrong type."""


def encode_json(obj: Mapping[str, Any]) -> str:
    """``obj`` as compact JSON in base64url without padding (PaReq, CReq, threeDSMethodData)."""
    raw = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_json(text: str) -> dict[str, Any]:
    """The JSON object in base64url ``text`` (padding optional); :class:`MessageError` on anything else."""
    if not isinstance(text, str) or not text or len(text) > MAX_ENCODED:
        raise MessageError("not base64url JSON")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        # validate=True is not offered by urlsafe_b64decode: the round trip refuses stray characters.
        if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != text.rstrip("="):
            raise ValueError(text)
        obj = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise MessageError("not base64url JSON") from None
    if not isinstance(obj, dict):
        raise MessageError("not a JSON object")
    return obj


def fingerprint(public_pem: bytes) -> str:
    """A short fingerprint of a public key (SHA-256 of its DER form, 16 hex digits): safe to log."""
    key = serialization.load_pem_public_key(public_pem)
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:16]


def _public_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True, slots=True)
class Signer:
    """Signs messages with the ACS's P-256 private key; ``kid`` goes into every JWS header."""

    key: ec.EllipticCurvePrivateKey
    kid: str = "acs-1"

    @classmethod
    def load(cls, pem_path: str | os.PathLike[str], kid: str = "acs-1") -> Signer:
        try:
            key = serialization.load_pem_private_key(Path(pem_path).read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise MessageError(f"cannot load the signing key {os.fspath(pem_path)}: {exc}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise MessageError(f"{os.fspath(pem_path)} is not a P-256 private key (ES256)")
        return cls(key, kid)

    @classmethod
    def generate(cls, kid: str = "acs-1") -> Signer:
        """A fresh key held in memory only (the simulator without ``--acs-key``, tests)."""
        return cls(ec.generate_private_key(ec.SECP256R1()), kid)

    def public_pem(self) -> bytes:
        return _public_pem(self.key)

    def sign(self, claims: Mapping[str, Any], ttl: int = TTL) -> str:
        """A compact JWS of ``claims`` plus ``iat`` and ``exp``; ``claims`` must name its ``messageType``."""
        if not isinstance(claims.get("messageType"), str):
            raise ValueError("a signed 3-D Secure message needs its messageType")
        now = int(time.time())
        body = {**claims, "iat": now, "exp": now + ttl}
        return jwt.encode(body, self.key, algorithm=ALGORITHM, headers={"kid": self.kid})


@dataclass(frozen=True, slots=True)
class Verifier:
    """Checks messages against one or more ACS public keys (several while a key is being replaced)."""

    keys: tuple[ec.EllipticCurvePublicKey, ...]

    @classmethod
    def load(cls, *pem_paths: str | os.PathLike[str]) -> Verifier:
        pems = []
        for path in pem_paths:
            try:
                pems.append(Path(path).read_bytes())
            except OSError as exc:
                raise MessageError(f"cannot read the ACS public key {os.fspath(path)}: {exc}") from None
        return cls.from_pem(*pems)

    @classmethod
    def from_pem(cls, *pems: bytes) -> Verifier:
        if not pems:
            raise MessageError("no ACS public key")
        keys = []
        for pem in pems:
            try:
                key = serialization.load_pem_public_key(pem)
            except (ValueError, TypeError) as exc:
                raise MessageError(f"not a PEM public key: {exc}") from None
            if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
                raise MessageError("the ACS public key is not a P-256 key (ES256)")
            keys.append(key)
        return cls(tuple(keys))

    def verify(self, token: str, message_type: str) -> dict[str, Any]:
        """The claims of ``token`` once its signature, ``exp``/``iat`` and ``messageType`` are checked."""
        if not isinstance(token, str) or not token or len(token) > MAX_ENCODED:
            raise MessageError("not a signed message")
        claims: dict[str, Any] | None = None
        for key in self.keys:
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=[ALGORITHM],
                    leeway=LEEWAY,
                    options={"require": ["exp", "iat", "messageType"]},
                )
                break
            except jwt.InvalidSignatureError:
                continue  # maybe the next key (rotation)
            except jwt.ExpiredSignatureError:
                raise MessageError("the signed message has expired") from None
            except jwt.PyJWTError as exc:
                raise MessageError(f"not a valid signed message: {exc}") from None
        if claims is None:
            raise MessageError("bad signature")
        if claims.get("messageType") != message_type:
            raise MessageError(f"messageType is {claims.get('messageType')!r}, not {message_type!r}")
        return claims


def generate_key_pair(directory: Path) -> tuple[Path, Path]:
    """``directory/acs_signing.pem`` (mode 0600) and ``acs_signing.pub.pem``, made if missing; their paths."""
    directory = Path(directory)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    private, public = directory / PRIVATE_NAME, directory / PUBLIC_NAME
    if not private.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        # O_EXCL: two `isoswitch up` racing never overwrite each other's key; the mode is set at creation.
        try:
            fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
            public.unlink(missing_ok=True)  # a stale public key of another private key
    if not public.exists():
        key = Signer.load(private).key
        tmp = public.with_suffix(".tmp")
        tmp.write_bytes(_public_pem(key))
        os.replace(tmp, public)
    return private, public


# Mastercard (51-55, 2221-2720) and Maestro (50, 56-58, 6304, 6759, 6761-6763) use their own ECI values.
_MASTERCARD_PREFIXES = ("50", "51", "52", "53", "54", "55", "56", "57", "58", "6304", "6759", "6761", "6762", "6763")
_ECI = {
    # status: (Visa and the others, Mastercard/Maestro)
    "Y": ("05", "02"),
    "A": ("06", "01"),
    "N": ("07", "00"),
    "U": ("07", "00"),
    "R": ("07", "00"),
}


def _mastercard(pan: str) -> bool:
    head = pan[:4]
    return pan.startswith(_MASTERCARD_PREFIXES) or (head.isdigit() and 2221 <= int(head) <= 2720)


def eci_for(pan: str, status: str) -> str:
    """The two-digit ECI of a 3-D Secure result ``status`` (Y, A, N, U, R) for the card's scheme.

    >>> eci_for("4000000000003055", "A"), eci_for("2221000000000009", "A"), eci_for("6759000000000000", "N")
    ('06', '01', '00')
    >>> eci_for("4111111111111111", "C")
    Traceback (most recent call last):
    ...
    ValueError: no ECI for 3-D Secure status 'C'
    """
    try:
        visa, mastercard = _ECI[status]
    except KeyError:
        raise ValueError(f"no ECI for 3-D Secure status {status!r}") from None
    return mastercard if _mastercard(pan) else visa
