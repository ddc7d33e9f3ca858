"""AES-CMAC of the ISO listener (switch/listener_mac.py) against RFC 4493's known answers.

The listener's own tests sign and verify with the module's functions, which
would agree with each other if both were wrong the same way; these vectors
(RFC 4493 section 4, AES-128, key 2b7e1516 28aed2a6 abf71588 09cf4f3c) come
from outside. The field holds the first 8 bytes of the CMAC in hex.
"""

from __future__ import annotations

import pytest

from switch.listener_mac import mac_of, verify

pytestmark = pytest.mark.timeout(10)

KEY = bytes.fromhex("2b7e1516 28aed2a6 abf71588 09cf4f3c")
_M = (
    "6bc1bee2 2e409f96 e93d7e11 7393172a ae2d8a57 1e03ac9c 9eb76fac 45af8e51 "
    "30c81c46 a35ce411 e5fbc119 1a0a52ef f69f2445 df4f9b17 ad2b417b e66c3710"
)
M = bytes.fromhex(_M)

# RFC 4493 section 4: (message length in bytes, AES-CMAC).
EXAMPLES = [
    (0, "bb1d6929 e9593728 7fa37d12 9b756746"),
    (16, "070a16b4 6b4d4144 f79bdd9d d04a287c"),
    (40, "dfa66747 de9ae630 30ca3261 1497c827"),
    (64, "51f0bebf 7e3b9d92 fc497417 79363cfe"),
]


@pytest.mark.parametrize(("length", "cmac"), EXAMPLES, ids=[f"example {i + 1}" for i in range(4)])
def test_mac_of_gives_the_first_8_bytes_of_rfc_4493s_aes_cmac(length: int, cmac: str) -> None:
    assert mac_of(M[:length], KEY) == bytes.fromhex(cmac)[:8].hex().upper()


@pytest.mark.parametrize(("length", "cmac"), EXAMPLES, ids=[f"example {i + 1}" for i in range(4)])
def test_verify_accepts_a_frame_whose_mac_field_is_rfc_4493s_answer(length: int, cmac: str) -> None:
    # The MAC covers every byte before the MAC field, which comes last: the RFC's message, then the field.
    value = bytes.fromhex(cmac)[:8].hex().upper()
    frame = M[:length] + value.encode("ascii")
    assert verify({"t": "0800", "64": value}, frame, KEY)
    assert verify({"t": "0800", "64": value.lower()}, M[:length] + value.lower().encode("ascii"), KEY)
    wrong = f"{int(value, 16) ^ 1:016X}"
    assert not verify({"t": "0800", "64": wrong}, M[:length] + wrong.encode("ascii"), KEY)
