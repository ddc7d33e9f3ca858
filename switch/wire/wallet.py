"""Wallet payment tokens (Apple Pay / Google Pay shaped) for tests and developers: encrypt+sign, verify+decrypt.

The real wallets' formats (Apple Pay ``EC_v1``, Google Pay ``ECv2``) need
certificates only Apple and Google issue, so isoswitch defines one test
format with the same cryptography and fields. A token is JSON::

    {"version": "EC_v1" (apple_pay) | "ECv2" (google_pay),
     "data": base64(AES-256-GCM ciphertext || 16-byte tag),
     "header": {"ephemeralPublicKey": base64(DER SubjectPublicKeyInfo, P-256),
                "publicKeyHash": base64(SHA-256 of the merchant public key's DER),
                "transactionId": 32 hex digits},
     "signature": base64(DER ECDSA P-256 / SHA-256 over the signed content)}

- Key agreement: ECDH between a fresh ephemeral P-256 key and the gateway's
  ("merchant") P-256 key pair; AES key = HKDF-SHA256(shared secret, salt =
  the ephemeral public key's DER, info = ``b"isoswitch-wallet/" + version``).
  The key is used once, so the GCM nonce is twelve zero bytes (Apple Pay
  uses a zero IV for the same reason); the AAD is the transactionId.
- Signature: the wallet's own P-256 key over the canonical content, the UTF-8
  of ``json.dumps({"data", "header", "version"}, sort_keys=True,
  separators=(",", ":"))``; whoever checks it holds the wallet's public key.
- Plaintext (JSON): ``applicationPrimaryAccountNumber``,
  ``applicationExpirationDate`` (YYMMDD), ``currencyCode`` (ISO 4217 numeric,
  3 digits), ``transactionAmount`` (integer minor units, as Apple Pay),
  ``paymentData {onlinePaymentCryptogram, eciIndicator?}``,
  ``transactionId`` (equal to the header's) and ``messageExpiration``
  (milliseconds since the epoch, as Google Pay; required; a token is refused
  after it, and when it lies more than :data:`MAX_LIFETIME` ahead).

What the merchant posts (``dsrp.token``) is ``base64(JSON)`` of either the
token itself or ``{"paymentData": token}`` (Apple Pay's PKPaymentToken
shape, the seed's example). Every failure is a :class:`TokenError` whose
text never holds card data.

>>> import tempfile
>>> d = Path(tempfile.mkdtemp())
>>> merchant_priv, merchant_pub = generate_key_pair(d, "wallet_merchant")
>>> signing_priv, signing_pub = generate_key_pair(d, "wallet_signing")
>>> wallet = Wallet.load(signing_priv)
>>> token = wallet.mint(PaymentData("4111111111111111", "301231", "840", 999, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", "05"),
...                     merchant_pub, wallet_type="apple_pay")
>>> payment = Gateway.load(merchant_priv, signing_pub).open(token, wallet_type="apple_pay")
>>> payment.amount, payment.currency_code, payment.eci, payment.expiry_month, payment.expiry_year
(999, '840', '05', 12, 2030)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "MAX_LIFETIME",
    "VERSIONS",
    "Gateway",
    "Payment",
    "PaymentData",
    "TokenError",
    "Wallet",
    "generate_key_pair",
    "public_key_hash",
]

#: Token version by wallet type (the ``dsrp.type`` of ``POST /orders/token_pay``).
VERSIONS = {"apple_pay": "EC_v1", "google_pay": "ECv2"}
_ZERO_NONCE = bytes(12)
_DEFAULT_TTL = 3600.0  # seconds a minted token stays valid (Google Pay's messageExpiration is about an hour)
#: The longest a token may be valid for from the time it is opened (seconds): a wallet's tokens live about an hour.
MAX_LIFETIME = 86400.0


class TokenError(ValueError):
    """A token that cannot be used: malformed, wrong key, bad signature, tampered, expired."""


@dataclass(frozen=True, slots=True)
class PaymentData:
    """What a wallet puts in a token (the plaintext's fields)."""

    pan: str
    expiration: str  # YYMMDD
    currency_code: str  # ISO 4217 numeric, 3 digits
    amount: int  # minor units
    cryptogram: str  # onlinePaymentCryptogram (base64, as the wallets send it)
    eci: str | None = None

    def __repr__(self) -> str:
        return f"PaymentData(pan=****{self.pan[-4:]}, amount={self.amount}, currency_code={self.currency_code})"


@dataclass(frozen=True, slots=True, repr=False)
class Payment:
    """A token opened and checked: the card and the cryptogram, for one authorization."""

    pan: str
    expiry_month: int
    expiry_year: int
    currency_code: str
    amount: int
    cryptogram: str
    eci: str | None
    transaction_id: str

    def __repr__(self) -> str:
        return f"Payment(pan=****{self.pan[-4:]}, amount={self.amount}, transaction_id={self.transaction_id})"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _unb64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise TokenError(f"token {what} is not a base64 string")
    compact = "".join(text.split())  # a token pasted over several lines
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise TokenError(f"token {what} is not base64") from None


def _der(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def public_key_hash(key: ec.EllipticCurvePublicKey) -> str:
    """The header's ``publicKeyHash``: base64 of SHA-256 over the key's DER (which gateway key to use)."""
    return _b64(hashlib.sha256(_der(key)).digest())


def _aes_key(shared: bytes, ephemeral_der: bytes, version: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral_der, info=b"isoswitch-wallet/" + version.encode())
    return hkdf.derive(shared)


def _signed_content(token: dict[str, Any]) -> bytes:
    content = {"data": token["data"], "header": token["header"], "version": token["version"]}
    return json.dumps(content, sort_keys=True, separators=(",", ":")).encode()


def _load_private(path: str | Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"{path}: not a P-256 private key")
    return key


def _load_public(path: str | Path) -> ec.EllipticCurvePublicKey:
    key = serialization.load_pem_public_key(Path(path).read_bytes())
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"{path}: not a P-256 public key")
    return key


def generate_key_pair(directory: Path, name: str) -> tuple[Path, Path]:
    """``<name>.pem`` (private, mode 0600) and ``<name>.pub.pem`` in ``directory``, made only if missing."""
    directory.mkdir(parents=True, exist_ok=True)
    private, public = directory / f"{name}.pem", directory / f"{name}.pub.pem"
    if not private.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        public.unlink(missing_ok=True)
    if not public.exists():
        pub = _load_private(private).public_key()
        public.write_bytes(
            pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
    return private, public


class Wallet:
    """The wallet's side (the simulator's, tests'): encrypt for a gateway key and sign."""

    def __init__(self, signing_key: ec.EllipticCurvePrivateKey) -> None:
        self._key = signing_key

    @classmethod
    def load(cls, signing_pem: str | Path) -> Wallet:
        return cls(_load_private(signing_pem))

    def mint(
        self,
        data: PaymentData,
        merchant_public: str | Path | ec.EllipticCurvePublicKey,
        *,
        wallet_type: str = "apple_pay",
        ttl: float = _DEFAULT_TTL,
        transaction_id: str | None = None,
    ) -> str:
        """``base64(JSON {"paymentData": token})``, what a merchant posts as ``dsrp.token``."""
        if wallet_type not in VERSIONS:
            raise ValueError(f"wallet type must be one of {sorted(VERSIONS)}")
        version = VERSIONS[wallet_type]
        merchant = (
            merchant_public if isinstance(merchant_public, ec.EllipticCurvePublicKey) else _load_public(merchant_public)
        )
        tx = transaction_id or secrets.token_hex(16)
        plain: dict[str, Any] = {
            "applicationPrimaryAccountNumber": data.pan,
            "applicationExpirationDate": data.expiration,
            "currencyCode": data.currency_code,
            "transactionAmount": data.amount,
            "paymentData": {"onlinePaymentCryptogram": data.cryptogram},
            "transactionId": tx,
            "messageExpiration": str(int((time.time() + ttl) * 1000)),
        }
        if data.eci is not None:
            plain["paymentData"]["eciIndicator"] = data.eci
        ephemeral = ec.generate_private_key(ec.SECP256R1())
        eph_der = _der(ephemeral.public_key())
        key = _aes_key(ephemeral.exchange(ec.ECDH(), merchant), eph_der, version)
        sealed = AESGCM(key).encrypt(_ZERO_NONCE, json.dumps(plain).encode(), tx.encode())
        token: dict[str, Any] = {
            "version": version,
            "data": _b64(sealed),
            "header": {
                "ephemeralPublicKey": _b64(eph_der),
                "publicKeyHash": public_key_hash(merchant),
                "transactionId": tx,
            },
        }
        token["signature"] = _b64(self._key.sign(_signed_content(token), ec.ECDSA(hashes.SHA256())))
        return _b64(json.dumps({"paymentData": token}).encode())


class Gateway:
    """The switch's side: check the wallet's signature, decrypt with the gateway key, check the payload."""

    def __init__(self, merchant_key: ec.EllipticCurvePrivateKey, wallet_public: ec.EllipticCurvePublicKey) -> None:
        self._key = merchant_key
        self._hash = public_key_hash(merchant_key.public_key())
        self._wallet = wallet_public

    @classmethod
    def load(cls, merchant_pem: str | Path, wallet_public_pem: str | Path) -> Gateway:
        return cls(_load_private(merchant_pem), _load_public(wallet_public_pem))

    def open(self, posted: str, *, wallet_type: str, now: float | None = None) -> Payment:
        """The checked payment of ``posted`` (``dsrp.token``), or :class:`TokenError` saying what is wrong."""
        token = _parse(posted)
        if VERSIONS.get(wallet_type) != token["version"]:
            raise TokenError(f"token version {token['version']!r} is not a {wallet_type} token")
        header = token["header"]
        if header["publicKeyHash"] != self._hash:
            raise TokenError("token is encrypted for another key")
        try:
            self._wallet.verify(
                _unb64(token["signature"], "signature"), _signed_content(token), ec.ECDSA(hashes.SHA256())
            )
        except InvalidSignature:
            raise TokenError("token signature does not verify") from None
        eph_der = _unb64(header["ephemeralPublicKey"], "ephemeralPublicKey")
        try:
            ephemeral = serialization.load_der_public_key(eph_der)
        except ValueError:
            raise TokenError("token ephemeral key is not a public key") from None
        if not isinstance(ephemeral, ec.EllipticCurvePublicKey) or not isinstance(ephemeral.curve, ec.SECP256R1):
            raise TokenError("token ephemeral key is not a P-256 key")
        key = _aes_key(self._key.exchange(ec.ECDH(), ephemeral), eph_der, token["version"])
        tx = header["transactionId"]
        try:
            plain = AESGCM(key).decrypt(_ZERO_NONCE, _unb64(token["data"], "data"), tx.encode())
        except InvalidTag:
            raise TokenError("token data does not decrypt") from None
        return _payment(plain, tx, time.time() if now is None else now)


def _parse(posted: str) -> dict[str, Any]:
    try:
        doc = json.loads(_unb64(posted, "").decode())
    except (UnicodeDecodeError, ValueError):
        raise TokenError("token is not base64 of JSON") from None
    if isinstance(doc, dict) and isinstance(doc.get("paymentData"), dict):
        doc = doc["paymentData"]
    if not isinstance(doc, dict):
        raise TokenError("token is not a JSON object")
    header = doc.get("header")
    if not isinstance(header, dict) or not all(
        isinstance(header.get(k), str) for k in ("ephemeralPublicKey", "publicKeyHash", "transactionId")
    ):
        raise TokenError("token header needs ephemeralPublicKey, publicKeyHash and transactionId")
    if not all(isinstance(doc.get(k), str) for k in ("version", "data", "signature")):
        raise TokenError("token needs version, data, header and signature")
    return doc


def _check_expiration(expires: object, now: float) -> None:
    """A token must say when it expires, not be past it, nor be valid for longer than :data:`MAX_LIFETIME`.

    The format carries no signing time of its own (Apple Pay's is in its PKCS #7 envelope), so the
    expiration is required: without one a token, once stolen, would pay forever.
    """
    if isinstance(expires, int) and not isinstance(expires, bool):
        expires = str(expires)
    if not (isinstance(expires, str) and expires.isascii() and expires.isdigit() and len(expires) <= 16):
        raise TokenError("token payload has no valid messageExpiration")
    if int(expires) < now * 1000:
        raise TokenError("token has expired")
    if int(expires) > (now + MAX_LIFETIME) * 1000:
        raise TokenError("token messageExpiration is too far ahead")


def _payment(plain: bytes, tx: str, now: float) -> Payment:
    try:
        doc = json.loads(plain)
    except ValueError:
        raise TokenError("token payload is not JSON") from None
    pd = doc.get("paymentData") if isinstance(doc, dict) else None
    if not isinstance(pd, dict):
        raise TokenError("token payload has no paymentData")
    pan, exp, cur = (
        doc.get("applicationPrimaryAccountNumber"),
        doc.get("applicationExpirationDate"),
        doc.get("currencyCode"),
    )
    amount, cryptogram, eci = doc.get("transactionAmount"), pd.get("onlinePaymentCryptogram"), pd.get("eciIndicator")
    if not (isinstance(pan, str) and pan.isascii() and pan.isdigit() and 12 <= len(pan) <= 19):
        raise TokenError("token payload has no valid applicationPrimaryAccountNumber")
    if not (isinstance(exp, str) and len(exp) == 6 and exp.isascii() and exp.isdigit() and 1 <= int(exp[2:4]) <= 12):
        raise TokenError("token payload has no valid applicationExpirationDate (YYMMDD)")
    if not (isinstance(cur, str) and len(cur) == 3 and cur.isascii() and cur.isdigit()):
        raise TokenError("token payload has no valid currencyCode")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
        raise TokenError("token payload has no valid transactionAmount")
    if not isinstance(cryptogram, str) or not cryptogram:
        raise TokenError("token payload has no onlinePaymentCryptogram")
    if eci is not None and not (isinstance(eci, str) and eci.isascii() and eci.isdigit() and 1 <= len(eci) <= 2):
        raise TokenError("token payload has an invalid eciIndicator")
    if doc.get("transactionId") != tx:
        raise TokenError("token payload transactionId differs from the header's")
    _check_expiration(doc.get("messageExpiration"), now)
    year, month = 2000 + int(exp[:2]), int(exp[2:4])
    if (year, month) < time.gmtime(now)[:2]:
        raise TokenError("token card has expired")
    return Payment(pan, month, year, cur, amount, cryptogram, eci.zfill(2) if eci else None, tx)
