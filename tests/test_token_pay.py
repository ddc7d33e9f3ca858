"""Wallet tokens (switch.wire.wallet) and POST /orders/token_pay, DSRP through secure3d: real crypto, the real
simulator's wallet minting the tokens, PostgreSQL, the 0100 as the simulator received it."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pg
import pytest
import test_orders_fixtures
from sim_helpers import running_sim
from test_orders_fixtures import NEXT_YEAR, Rig
from wallet_helpers import Front, Keys, make_keys, mint, open_front

from acquirer_sim import SimServer
from switch.orders.errors import InvalidInput, Rejected
from switch.wire.wallet import MAX_LIFETIME, Gateway, PaymentData, TokenError, Wallet

database, fresh_dsn, pg_dsn, scratch_dir = pg.database, pg.fresh_dsn, pg.pg_dsn, pg.scratch_dir
rig = test_orders_fixtures.rig

pytestmark = pytest.mark.timeout(60)

PAN = "4111111111111111"
CRYPTOGRAM = "Af9x/QwAA/DjmU65oyc1MAABAAA="


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return make_keys(tmp_path / "keys")


@pytest.fixture
async def sim(keys: Keys) -> AsyncIterator[SimServer]:
    """The simulator, its wallet holding the signing key and the gateway's public key."""
    async with running_sim(wallet_signing_key=str(keys.signing), wallet_merchant_key=str(keys.merchant_public)) as s:
        yield s


@pytest.fixture
def wallet_rig(rig: Rig, keys: Keys) -> Rig:
    rig.orders.service.wallet = Gateway.load(keys.merchant, keys.signing_public)
    return rig


@pytest.fixture
async def front(sim: SimServer, fresh_dsn: str, scratch_dir: Path) -> AsyncIterator[Front]:
    make_keys(scratch_dir / "keys")  # where `isoswitch up` keeps them: the runtime finds them by default
    async for f in open_front(sim, fresh_dsn, scratch_dir):
        yield f


def _pay(token: str, amount: str = "9.99", kind: str = "apple_pay", **extra: Any) -> dict[str, Any]:
    return {"amount": amount, "dsrp": {"type": kind, "token": token}, "location": {"ip": "6.6.6.6"}, **extra}


async def _refused(rig: Rig, *args: Any) -> InvalidInput:
    """``token_pay(project, body)``'s refusal; the rig's project when only the body is given."""
    project, body = args if len(args) == 2 else (rig.project, args[0])
    with pytest.raises(InvalidInput) as info:
        await rig.orders.token_pay(project, body)
    return info.value


# -- the format ----------------------------------------------------------------------


def test_a_minted_token_opens_to_its_card_amount_and_cryptogram(keys: Keys) -> None:
    data = PaymentData(PAN, "301231", "840", 999, CRYPTOGRAM, "05")
    token = Wallet.load(keys.signing).mint(data, keys.merchant_public, wallet_type="google_pay")
    doc = json.loads(base64.b64decode(token))["paymentData"]
    assert doc["version"] == "ECv2" and set(doc) == {"version", "data", "header", "signature"}
    assert set(doc["header"]) == {"ephemeralPublicKey", "publicKeyHash", "transactionId"}
    assert PAN not in base64.b64decode(doc["data"]).decode("latin-1")  # the PAN travels encrypted only
    payment = Gateway.load(keys.merchant, keys.signing_public).open(token, wallet_type="google_pay")
    assert (payment.pan, payment.amount, payment.cryptogram, payment.eci) == (PAN, 999, CRYPTOGRAM, "05")
    assert payment.transaction_id == doc["header"]["transactionId"] and PAN not in repr(payment)


def _tampered(token: str, part: str) -> str:
    doc = json.loads(base64.b64decode(token))
    inner = doc["paymentData"]
    if part == "data":
        raw = bytearray(base64.b64decode(inner["data"]))
        raw[3] ^= 1
        inner["data"] = base64.b64encode(bytes(raw)).decode()
    else:
        inner["header"]["transactionId"] = "0" * 32
    return base64.b64encode(json.dumps(doc).encode()).decode()


@pytest.mark.parametrize("part", ["data", "header"])
def test_a_token_changed_after_signing_is_refused(keys: Keys, part: str) -> None:
    token = Wallet.load(keys.signing).mint(PaymentData(PAN, "301231", "840", 999, CRYPTOGRAM), keys.merchant_public)
    with pytest.raises(TokenError, match="signature"):
        Gateway.load(keys.merchant, keys.signing_public).open(_tampered(token, part), wallet_type="apple_pay")


def test_a_token_for_another_gateway_key_or_signed_by_another_wallet_is_refused(keys: Keys, tmp_path: Path) -> None:
    stranger = make_keys(tmp_path / "stranger")
    data = PaymentData(PAN, "301231", "840", 999, CRYPTOGRAM)
    gateway = Gateway.load(keys.merchant, keys.signing_public)
    other_gateway = Wallet.load(keys.signing).mint(data, stranger.merchant_public)
    with pytest.raises(TokenError, match="another key"):
        gateway.open(other_gateway, wallet_type="apple_pay")
    other_wallet = Wallet.load(stranger.signing).mint(data, keys.merchant_public)
    with pytest.raises(TokenError, match="signature"):
        gateway.open(other_wallet, wallet_type="apple_pay")


def _minted_with(keys: Keys, **changes: Any) -> str:
    """A token signed by the wallet's key whose plaintext has ``changes`` (None removes the field): what
    ``Wallet.mint`` never makes, made with the format's own cryptography."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from switch.wire import wallet as w

    tx = "ab" * 16
    plain: dict[str, Any] = {
        "applicationPrimaryAccountNumber": PAN,
        "applicationExpirationDate": "301231",
        "currencyCode": "840",
        "transactionAmount": 999,
        "paymentData": {"onlinePaymentCryptogram": CRYPTOGRAM},
        "transactionId": tx,
        "messageExpiration": str(int((time.time() + 600) * 1000)),
    }
    for name, value in changes.items():
        if value is None:
            plain.pop(name)
        else:
            plain[name] = value
    merchant = w._load_public(keys.merchant_public)
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    eph_der = w._der(ephemeral.public_key())
    key = w._aes_key(ephemeral.exchange(ec.ECDH(), merchant), eph_der, "EC_v1")
    sealed = AESGCM(key).encrypt(bytes(12), json.dumps(plain).encode(), tx.encode())
    header = {"ephemeralPublicKey": w._b64(eph_der), "publicKeyHash": w.public_key_hash(merchant), "transactionId": tx}
    token: dict[str, Any] = {"version": "EC_v1", "data": w._b64(sealed), "header": header}
    signing = w._load_private(keys.signing)
    token["signature"] = w._b64(signing.sign(w._signed_content(token), ec.ECDSA(hashes.SHA256())))
    return base64.b64encode(json.dumps({"paymentData": token}).encode()).decode()


@pytest.mark.parametrize(
    ("expiration", "words"),
    [
        (None, "no valid messageExpiration"),
        ("soon", "no valid messageExpiration"),
        (str(int((time.time() + MAX_LIFETIME + 3600) * 1000)), "too far ahead"),
        ("4102444800000", "too far ahead"),  # 2100-01-01: a token that would never expire
    ],
    ids=["missing", "not digits", "past the longest lifetime", "in 2100"],
)
def test_a_token_without_an_expiration_or_one_valid_for_too_long_is_refused(
    keys: Keys, expiration: str | None, words: str
) -> None:
    gateway = Gateway.load(keys.merchant, keys.signing_public)
    assert gateway.open(_minted_with(keys), wallet_type="apple_pay").amount == 999  # the same token, well dated
    with pytest.raises(TokenError, match=words):
        gateway.open(_minted_with(keys, messageExpiration=expiration), wallet_type="apple_pay")


# -- POST /orders/token_pay through the service --------------------------------------------


async def test_token_pay_authorizes_as_dsrp_with_the_tokens_eci_cryptogram_and_transaction_id(
    wallet_rig: Rig, sim: SimServer
) -> None:
    rig = wallet_rig
    token = await mint(sim, pan=PAN, amount="9.99", type="apple_pay", expiry=f"{NEXT_YEAR}-07")
    order = await rig.orders.token_pay(rig.project, _pay(token["token"]))
    assert order.status.value == "authorized" and order.pan_mask == "411111****1111"
    (wire,) = rig.sent
    assert (wire["t"], wire["2"], wire["14"], wire["22"]) == ("0100", PAN, f"{NEXT_YEAR % 100:02d}07", "810")
    assert (wire["121"], wire["123"]) == ("05", token["transaction_id"]) and len(wire["122"]) == 28
    assert "120" not in wire and "124" not in wire  # no CVV in a token; not a stored credential
    expected = {
        "authorization_status": "Y",
        "dsrp": "1",
        "dsrp_type": "apple_pay",
        "eci": "5",
        "reason": "dsrp",
        "scenario": "unknown",
        "version": "1",
        "xid": token["transaction_id"],
    }
    (row,) = await rig.rows("SELECT secure3d, card_holder FROM orders WHERE id = $1", order.id)
    assert order.secure3d == expected and row == {"secure3d": expected, "card_holder": None}  # never the cryptogram


async def test_a_token_without_eci_sends_no_de_121_and_shows_none(wallet_rig: Rig, sim: SimServer) -> None:
    token = await mint(sim, pan=PAN, amount="5.00", type="google_pay", eci=None)
    order = await wallet_rig.orders.token_pay(wallet_rig.project, _pay(token["token"], "5.00", "google_pay"))
    (wire,) = wallet_rig.sent
    assert "121" not in wire and wire["22"] == "810"
    assert "eci" not in order.secure3d and order.secure3d["dsrp_type"] == "google_pay"


@pytest.mark.parametrize(
    ("case", "field", "words"),
    [
        ("tampered", "dsrp/token", "signature"),
        ("wrong amount", "amount", "amount differs"),
        ("wrong currency", "currency", "currency differs"),
        ("expired", "dsrp/token", "expired"),
        ("other wallet type", "dsrp/token", "not a apple_pay token"),
        ("not a token", "dsrp/token", "not base64 of JSON"),
    ],
)
async def test_a_bad_token_is_refused_as_invalid_and_nothing_is_sent(
    wallet_rig: Rig, sim: SimServer, case: str, field: str, words: str
) -> None:
    token = (await mint(sim, pan=PAN, amount="9.99", type="google_pay" if case == "other wallet type" else "apple_pay",
                        ttl=-1 if case == "expired" else 3600))["token"]  # fmt: skip
    body = _pay(token)
    if case == "tampered":
        body = _pay(_tampered(token, "data"))
    elif case == "wrong amount":
        body = _pay(token, "99.90")
    elif case == "wrong currency":
        body = _pay(token, currency="EUR")
    elif case == "not a token":
        body = _pay("bm90IGEgdG9rZW4=")
    err = await _refused(wallet_rig, body)
    (problem,) = err.problems
    assert problem.field == field and words in problem.message and PAN not in problem.message
    assert wallet_rig.sent == [] and await wallet_rig.rows("SELECT id FROM orders") == []


async def test_a_token_pays_once_and_its_copy_is_refused_in_any_project(wallet_rig: Rig, sim: SimServer) -> None:
    token = await mint(sim, pan=PAN, amount="9.99")
    await wallet_rig.orders.token_pay(wallet_rig.project, _pay(token["token"]))
    other = await wallet_rig.project_with("other")
    for project in (wallet_rig.project, other):
        err = await _refused(wallet_rig, project, _pay(token["token"]))
        assert (err.problems[0].field, err.problems[0].message) == ("dsrp/token", "Invalid token: already used")
    assert len(wallet_rig.sent) == 1


async def test_two_concurrent_payments_with_one_token_authorize_once_and_refuse_the_other(
    wallet_rig: Rig, sim: SimServer
) -> None:
    rig = wallet_rig
    token = await mint(sim, pan=PAN, amount="9.99")
    results = await asyncio.gather(
        rig.orders.token_pay(rig.project, _pay(token["token"])),
        rig.orders.token_pay(rig.project, _pay(token["token"])),
        return_exceptions=True,
    )
    orders = [r for r in results if not isinstance(r, BaseException)]
    refusals = [r for r in results if isinstance(r, InvalidInput)]
    assert len(orders) == 1 and len(refusals) == 1, results
    assert orders[0].status.value == "authorized"
    assert (refusals[0].problems[0].field, refusals[0].problems[0].message) == (
        "dsrp/token",
        "Invalid token: already used",
    )
    assert [m["t"] for m in rig.sent] == ["0100"]
    claims = await rig.rows("SELECT transaction_id, order_id FROM wallet_tokens_used")
    assert claims == [{"transaction_id": token["transaction_id"], "order_id": orders[0].id}]
    assert len(await rig.rows("SELECT id FROM orders")) == 1  # the loser wrote no intent


async def test_without_wallet_keys_token_pay_is_refused_not_failed(rig: Rig, sim: SimServer) -> None:
    token = await mint(sim, pan=PAN, amount="9.99")
    err = await _refused(rig, _pay(token["token"]))
    assert err.problems[0].message == "Wallet payments are not configured" and rig.sent == []


# -- DSRP through secure3d (the merchant decrypted the token) ------------------------------


async def test_dsrp_through_secure3d_needs_no_cvv_or_holder_and_goes_as_a_tokenized_credential(rig: Rig) -> None:
    body = {
        "amount": "9.99",
        "pan": PAN,
        "card": {"expiration_month": 12, "expiration_year": NEXT_YEAR},
        "location": {"ip": "6.6.6.6"},
        "secure3d": {"dsrp": 1, "xid": "8Rg2xYbxLUGsfZlkoh1JxAQFBM=", "cavv": CRYPTOGRAM, "dsrp_type": "masterpass",
                     "dsrp_wallet_id": 765},
    }  # fmt: skip
    order = await rig.orders.authorize(rig.project, body)
    (wire,) = rig.sent
    assert (wire["22"], wire["122"], wire["123"]) == ("810", CRYPTOGRAM, "8Rg2xYbxLUGsfZlkoh1JxAQFBM=")
    assert "121" not in wire and "120" not in wire
    assert order.secure3d == {
        "authorization_status": "Y",
        "dsrp": "1",
        "dsrp_type": "masterpass",
        "dsrp_wallet_id": "765",
        "reason": "dsrp",
        "scenario": "unknown",
        "version": "1",
        "xid": "8Rg2xYbxLUGsfZlkoh1JxAQFBM=",
    }


@pytest.mark.parametrize(
    ("secure3d", "field"),
    [
        ({"dsrp": 1, "xid": "X1"}, "secure3d/cavv"),
        ({"dsrp": 1, "xid": "X1", "cavv": CRYPTOGRAM, "dsrp_wallet_id": 7}, "secure3d/dsrp_wallet_id"),
        ({"dsrp_type": "apple_pay", "eci": "05"}, "secure3d/dsrp_type"),
        ({"cavv": CRYPTOGRAM, "xid": "X1"}, "secure3d/eci"),
    ],
)
async def test_dsrp_fields_that_cannot_apply_are_refused_not_ignored(
    rig: Rig, secure3d: dict[str, Any], field: str
) -> None:
    body = test_orders_fixtures.body(secure3d=secure3d)
    with pytest.raises(InvalidInput) as info:
        await rig.orders.authorize(rig.project, body)
    assert info.value.problems[0].field == field and rig.sent == []


# -- over HTTP, with the keys where `isoswitch up` keeps them -------------------------------


async def test_post_token_pay_answers_the_seeds_order_and_a_bad_token_the_seeds_422(
    front: Front, sim: SimServer, scratch_dir: Path
) -> None:
    keys = scratch_dir / "keys"
    cmd = [sys.executable, "-m", "acquirer_sim", "wallet-token", "--pan", PAN, "--amount", "100", "--json"]
    cmd += ["--merchant-key", str(keys / "wallet_merchant.pub.pem"), "--signing-key", str(keys / "wallet_signing.pem")]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    minted = json.loads(out)
    body = _pay(minted["token"], "100", currency="USD", description="Pay for cinema", payment_type="card")
    status, doc = await front.call("POST", "/orders/token_pay", body)
    assert status == 200, doc
    (order,) = doc["orders"]
    assert (order["status"], order["amount"], order["pan"], order["description"]) == (
        "authorized", "100.00", "411111****1111", "Pay for cinema"
    )  # fmt: skip
    assert order["secure3d"]["reason"] == "dsrp" and "cavv" not in order["secure3d"]
    status, doc = await front.call("POST", "/orders/token_pay", _pay(minted["token"], "1.00"))
    assert status == 422 and doc["failure_type"] == "validation"
    assert doc["errors"] == [{"message": "Token amount differs from the request's", "uri": "#/amount"}]
    status, doc = await front.call("POST", "/orders/token_pay", {**_pay(minted["token"], "100"), "pan": PAN})
    assert status == 422 and {"message": "Unknown property", "uri": "#/pan"} in doc["errors"]
    assert [m["t"] for m in front.sent] == ["0100"]


async def test_a_wallet_switched_off_in_the_projects_settings_is_refused_before_anything_is_sent(
    wallet_rig: Rig, sim: SimServer
) -> None:
    rig = wallet_rig
    no_apple = await rig.project_with("noapple", apple_pay=False)
    no_google = await rig.project_with("nogoogle", google_pay_mobile=False)
    for project, kind in ((no_apple, "apple_pay"), (no_google, "google_pay")):
        token = await mint(sim, pan=PAN, amount="9.99", type=kind, expiry=f"{NEXT_YEAR}-07")
        with pytest.raises(Rejected, match=f"Payments by {kind} are not allowed"):
            await rig.orders.token_pay(project, _pay(token["token"], kind=kind))
    assert rig.sent == []
    # The other wallet of each project still pays.
    token = await mint(sim, pan=PAN, amount="9.99", type="google_pay", expiry=f"{NEXT_YEAR}-07")
    order = await rig.orders.token_pay(no_apple, _pay(token["token"], kind="google_pay"))
    assert order.status.value == "authorized"
