"""switch.store.vault: AES-GCM sealing of PANs, key loading and rotation."""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switch.store import DecryptError, UnknownKey, Vault, VaultConfigError
from switch.store.vault import KEY_FILE

PAN = b"4111111111111111"
K1, K2 = bytes(range(32)), bytes(range(1, 33))


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


@given(st.binary(max_size=64), st.binary(max_size=32))
def test_seal_then_open_gives_the_plaintext_back(plaintext: bytes, aad: bytes) -> None:
    v = Vault({"k1": K1}, current="k1")
    key_id, blob = v.seal(plaintext, aad)
    assert key_id == "k1"
    assert v.open(key_id, blob, aad) == plaintext
    if len(plaintext) >= 8:  # shorter ones can turn up by chance
        assert plaintext not in blob


def test_the_same_pan_seals_differently_each_time_and_never_in_clear() -> None:
    v = Vault({"k1": K1}, current="k1")
    a, b = v.seal(PAN, b"a")[1], v.seal(PAN, b"a")[1]
    assert a != b
    assert PAN not in a and PAN not in b


def test_an_unknown_key_id_is_refused() -> None:
    v = Vault({"k1": K1}, current="k1")
    _, blob = v.seal(PAN, b"order:1")
    with pytest.raises(UnknownKey, match="k9"):
        v.open("k9", blob, b"order:1")


@pytest.mark.parametrize("where", [0, 5, 12, 20, -1])
def test_a_tampered_blob_fails_authentication(where: int) -> None:
    v = Vault({"k1": K1}, current="k1")
    key_id, blob = v.seal(PAN, b"order:1")
    bad = bytearray(blob)
    bad[where] ^= 0x01
    with pytest.raises(DecryptError):
        v.open(key_id, bytes(bad), b"order:1")


def test_a_blob_moved_to_another_row_fails_through_its_associated_data() -> None:
    v = Vault({"k1": K1}, current="k1")
    key_id, blob = v.seal(PAN, b"order:1")
    with pytest.raises(DecryptError):
        v.open(key_id, blob, b"order:2")
    with pytest.raises(DecryptError):
        v.open(key_id, blob[:20], b"order:1")


def test_the_wrong_key_under_the_right_id_fails() -> None:
    _, blob = Vault({"k1": K1}, current="k1").seal(PAN, b"")
    with pytest.raises(DecryptError):
        Vault({"k1": K2}, current="k1").open("k1", blob, b"")


def test_old_ciphertexts_still_open_after_rotation() -> None:
    old = Vault({"k1": K1}, current="k1")
    sealed = old.seal(PAN, b"x")
    new = Vault({"k1": K1, "k2": K2}, current="k2")
    assert new.seal(PAN, b"x")[0] == "k2"
    assert new.open(*sealed, b"x") == PAN


@pytest.mark.parametrize(
    ("keys", "current"),
    [({"k1": bytes(16)}, "k1"), ({"k1": K1}, "k2"), ({"": K1}, ""), ({"k\n": K1}, "k\n")],
)
def test_bad_key_sets_are_refused(keys: dict[str, bytes], current: str) -> None:
    with pytest.raises(VaultConfigError):
        Vault(keys, current)


def test_repr_shows_no_key_material() -> None:
    text = repr(Vault({"k1": K1}, current="k1"))
    assert "k1" in text and b64(K1) not in text and "\\x00\\x01" not in text


# -- from_env_or_dir --------------------------------------------------------


def test_without_env_a_key_is_generated_0600_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="isoswitch.store"):
        v = Vault.from_env_or_dir(tmp_path / "data", env={})
    path = tmp_path / "data" / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc["id"] == v.current and len(base64.b64decode(doc["key"])) == 32
    assert any("generated" in r.getMessage() for r in caplog.records)
    assert all(doc["key"] not in r.getMessage() and doc["key"] not in str(r.__dict__) for r in caplog.records)
    assert [p.name for p in path.parent.iterdir()] == [KEY_FILE]  # no temp files left


def test_the_generated_key_is_reused_on_the_next_start(tmp_path: Path) -> None:
    first = Vault.from_env_or_dir(tmp_path, env={})
    sealed = first.seal(PAN, b"x")
    second = Vault.from_env_or_dir(tmp_path, env={})
    assert second.current == first.current
    assert second.open(*sealed, b"x") == PAN


def test_the_env_key_is_used_and_no_file_is_written(tmp_path: Path) -> None:
    v = Vault.from_env_or_dir(tmp_path, env={"ISOSWITCH_PAN_KEY": b64(K1), "ISOSWITCH_PAN_KEY_ID": "prod-1"})
    assert v.current == "prod-1"
    assert Vault({"prod-1": K1}, "prod-1").open(*v.seal(PAN, b""), b"") == PAN
    assert not (tmp_path / KEY_FILE).exists()
    assert Vault.from_env_or_dir(tmp_path, env={"ISOSWITCH_PAN_KEY": b64(K1)}).current == "k1"


def test_old_keys_from_env_and_a_previous_generated_key_still_open(tmp_path: Path) -> None:
    generated = Vault.from_env_or_dir(tmp_path, env={})
    from_generated = generated.seal(PAN, b"a")
    from_k1 = Vault({"k1": K1}, "k1").seal(PAN, b"b")
    env = {
        "ISOSWITCH_PAN_KEY": b64(K2),
        "ISOSWITCH_PAN_KEY_ID": "k2",
        "ISOSWITCH_PAN_KEYS_OLD": json.dumps({"k1": b64(K1)}),
    }
    v = Vault.from_env_or_dir(tmp_path, env=env)
    assert v.current == "k2"
    assert v.key_ids == {"k1", "k2", generated.current}
    assert v.open(*from_generated, b"a") == PAN
    assert v.open(*from_k1, b"b") == PAN


@pytest.mark.parametrize(
    "env",
    [
        {"ISOSWITCH_PAN_KEY": "not base64!"},
        {"ISOSWITCH_PAN_KEY": b64(bytes(16))},
        {"ISOSWITCH_PAN_KEY": b64(K1), "ISOSWITCH_PAN_KEYS_OLD": "{"},
        {"ISOSWITCH_PAN_KEY": b64(K1), "ISOSWITCH_PAN_KEYS_OLD": '["k0"]'},
        {"ISOSWITCH_PAN_KEY": b64(K1), "ISOSWITCH_PAN_KEYS_OLD": json.dumps({"k1": b64(K2)})},
    ],
)
def test_bad_env_keys_are_refused_without_echoing_them(tmp_path: Path, env: dict[str, str]) -> None:
    with pytest.raises(VaultConfigError) as e:
        Vault.from_env_or_dir(tmp_path, env=env)
    assert env["ISOSWITCH_PAN_KEY"] not in str(e.value)
    assert b64(K2) not in str(e.value)


def test_a_corrupt_key_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE).write_text("{}")
    os.chmod(tmp_path / KEY_FILE, 0o600)
    with pytest.raises(VaultConfigError):
        Vault.from_env_or_dir(tmp_path, env={})
