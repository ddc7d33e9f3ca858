"""switch.wire.threeds: the signed 3-D Secure messages the switch trusts, and the encodings around them."""

from __future__ import annotations

import base64
import json
import stat
import time
from pathlib import Path

import jwt
import pytest

from switch.wire.threeds import (
    MessageError,
    Signer,
    Verifier,
    decode_json,
    eci_for,
    encode_json,
    fingerprint,
    generate_key_pair,
)

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Signer, Verifier]:
    private, public = generate_key_pair(tmp_path / "keys")
    return Signer.load(private), Verifier.load(public)


def test_a_signed_message_verifies_with_the_public_key_and_keeps_its_claims(keys: tuple[Signer, Verifier]) -> None:
    signer, verifier = keys
    token = signer.sign({"messageType": "PaRes", "xid": "x-1", "status": "Y", "eci": "05", "amount": 1000})
    claims = verifier.verify(token, "PaRes")
    assert claims["xid"] == "x-1" and claims["status"] == "Y" and claims["amount"] == 1000
    assert claims["exp"] - claims["iat"] == 600
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "kid": "acs-1", "typ": "JWT"}


def test_a_tampered_message_is_refused(keys: tuple[Signer, Verifier]) -> None:
    signer, verifier = keys
    head, body, sig = signer.sign({"messageType": "PaRes", "status": "N"}).split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["status"] = "Y"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(MessageError, match="signature"):
        verifier.verify(f"{head}.{forged}.{sig}", "PaRes")


def test_a_message_signed_by_another_key_is_refused(keys: tuple[Signer, Verifier]) -> None:
    _, verifier = keys
    token = Signer.generate().sign({"messageType": "CRes", "transStatus": "Y"})
    with pytest.raises(MessageError, match="bad signature"):
        verifier.verify(token, "CRes")


def test_a_verifier_with_two_keys_accepts_either(keys: tuple[Signer, Verifier]) -> None:
    signer, _ = keys
    other = Signer.generate()
    both = Verifier.from_pem(other.public_pem(), signer.public_pem())
    assert both.verify(signer.sign({"messageType": "ARes"}), "ARes")["messageType"] == "ARes"
    assert both.verify(other.sign({"messageType": "ARes"}), "ARes")["messageType"] == "ARes"


def test_an_expired_message_is_refused(keys: tuple[Signer, Verifier]) -> None:
    signer, verifier = keys
    # Signed eleven minutes ago with the usual ten-minute life: past the 30 s leeway.
    now = int(time.time())
    token = jwt.encode({"messageType": "RReq", "iat": now - 660, "exp": now - 60}, signer.key, algorithm="ES256")
    with pytest.raises(MessageError, match="expired"):
        verifier.verify(token, "RReq")


def test_a_message_of_another_type_is_refused(keys: tuple[Signer, Verifier]) -> None:
    signer, verifier = keys
    with pytest.raises(MessageError, match="messageType"):
        verifier.verify(signer.sign({"messageType": "ARes", "transStatus": "Y"}), "CRes")


def test_a_message_without_type_or_expiry_is_refused(keys: tuple[Signer, Verifier]) -> None:
    signer, verifier = keys
    untyped = jwt.encode({"iat": int(time.time()), "exp": int(time.time()) + 60}, signer.key, algorithm="ES256")
    eternal = jwt.encode({"messageType": "CRes", "iat": int(time.time())}, signer.key, algorithm="ES256")
    for token in (untyped, eternal):
        with pytest.raises(MessageError):
            verifier.verify(token, "CRes")
    with pytest.raises(ValueError, match="messageType"):
        signer.sign({"transStatus": "Y"})


def test_an_unsigned_or_hmac_message_is_refused(keys: tuple[Signer, Verifier]) -> None:
    _, verifier = keys
    claims = {"messageType": "PaRes", "iat": int(time.time()), "exp": int(time.time()) + 60}
    # alg "none" and HS256: algorithm-confusion forgeries; only ES256 is accepted.
    head = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    hmac_token = jwt.encode(claims, "a-shared-secret-of-at-least-32-bytes!", algorithm="HS256")
    for token in (f"{head}.{body}.", hmac_token, "", "a.b.c", "x" * 20000):
        with pytest.raises(MessageError):
            verifier.verify(token, "PaRes")


def test_base64url_json_round_trips_without_padding() -> None:
    obj = {"messageType": "PaReq", "xid": "ab", "amount": 1, "merchant": {"name": "Café"}}
    text = encode_json(obj)
    assert "=" not in text and "+" not in text and "/" not in text
    assert decode_json(text) == obj
    assert decode_json(text + "=" * (-len(text) % 4)) == obj


@pytest.mark.parametrize(
    "text",
    ["", "!!!!", "eyJh", "bm90IGpzb24", "WzEsMl0", "eyJhIjoxfQ==x", "eyJhIjoxfQ\n", "/w", "a" * 20000],
    ids=["empty", "not-base64", "truncated", "not-json", "a-list", "junk-after", "newline", "not-utf8", "too-long"],
)
def test_malformed_base64url_json_is_a_message_error(text: str) -> None:
    with pytest.raises(MessageError):
        decode_json(text)


@pytest.mark.parametrize(
    ("pan", "status", "eci"),
    [
        ("4111111111111111", "Y", "05"),
        ("4111111111111111", "A", "06"),
        ("4111111111111111", "N", "07"),
        ("4111111111111111", "U", "07"),
        ("6011000990139424", "Y", "05"),
        ("5200000000001005", "Y", "02"),
        ("5200000000001005", "A", "01"),
        ("5200000000001005", "N", "00"),
        ("5200000000001005", "U", "00"),
        ("2221000000000009", "Y", "02"),
        ("6759000000000000", "A", "01"),
    ],
)
def test_eci_follows_the_scheme_and_the_status(pan: str, status: str, eci: str) -> None:
    assert eci_for(pan, status) == eci


def test_generate_key_pair_writes_a_private_key_only_its_owner_reads_and_keeps_it(tmp_path: Path) -> None:
    private, public = generate_key_pair(tmp_path)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert (private.name, public.name) == ("acs_signing.pem", "acs_signing.pub.pem")
    before = private.read_bytes(), public.read_bytes()
    assert generate_key_pair(tmp_path) == (private, public)
    assert (private.read_bytes(), public.read_bytes()) == before
    public.unlink()
    generate_key_pair(tmp_path)
    assert public.read_bytes() == before[1]
    assert fingerprint(public.read_bytes()) == fingerprint(Signer.load(private).public_pem())


def test_a_missing_or_wrong_key_file_is_a_message_error(tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_text("not a key")
    with pytest.raises(MessageError):
        Signer.load(tmp_path / "junk.pem")
    with pytest.raises(MessageError):
        Verifier.load(tmp_path / "missing.pem")
    with pytest.raises(MessageError):
        Verifier.load(tmp_path / "junk.pem")
