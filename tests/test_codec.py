"""Property tests for switch.wire.codec: the fast path must agree with pyiso8583.

pyiso8583 is the reference. For every shipped dialect the compiled fast path
must produce the same bytes when encoding, the same dict when decoding, and
must reject (with :class:`switch.wire.codec.DecodeError`, never anything else) the
same frames pyiso8583 rejects.
"""

from __future__ import annotations

from typing import Any

import iso8583
import iso8583.specs
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from switch.wire.codec import Codec, DecodeError, EncodeError, peek_mti
from switch.wire.dialect import DIALECTS, load_spec

Spec = dict[str, dict[str, Any]]

PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))
# Bytes that turn a valid frame into a nearly valid one: blanks and signs in
# length prefixes, lower-case hex in bitmaps, digits, non-ASCII.
INTERESTING_BYTES = b" \t+-_0123456789abcdefABCDEF\x00\x1c\x7f\x80\xff"

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

dialects = pytest.mark.parametrize("dialect", DIALECTS)


def data_fields(spec: Spec) -> list[int]:
    """Field numbers a message may carry: 2..128 minus 65, which is a bitmap."""
    return [n for n in range(2, 129) if str(n) in spec and n != 65]


def field_value(field: dict[str, Any], size: int) -> st.SearchStrategy[str]:
    if field["data_enc"] == "b":  # pyiso8583 binary field: upper-case hex text
        return st.binary(min_size=size, max_size=size).map(lambda b: b.hex().upper())
    return st.text(PRINTABLE, min_size=size, max_size=size)


@st.composite
def messages(draw: st.DrawFn, spec: Spec, max_fields: int = 12) -> dict[str, str]:
    """A valid message for ``spec``: MTI plus a random subset of data fields."""
    msg = {"t": draw(st.text("0123456789", min_size=4, max_size=4))}
    for n in draw(st.lists(st.sampled_from(data_fields(spec)), unique=True, max_size=max_fields)):
        f = spec[str(n)]
        size = f["max_len"] if f["len_type"] == 0 else draw(st.integers(0, f["max_len"]))
        msg[str(n)] = draw(field_value(f, size))
    return msg


def ref_encode(msg: dict[str, str], spec: Spec) -> bytes:
    s, _ = iso8583.encode(dict(msg), spec)  # copy: pyiso8583 writes "p"/"1" into it
    return bytes(s)


def ref_decode(frame: bytes, spec: Spec) -> dict[str, str] | None:
    """pyiso8583's decoded dict, or None if it rejects ``frame``."""
    try:
        dec, _ = iso8583.decode(bytearray(frame), spec)
    except iso8583.DecodeError:
        return None
    except KeyError as e:
        # Bit 65 announces a tertiary bitmap; pyiso8583 then looks fields
        # 129-192 up in a spec that has none and crashes instead of raising
        # DecodeError. A rejection all the same.
        assert int(e.args[0]) > 128
        return None
    return dict(dec)


def fast_decode(codec: Codec, frame: bytes) -> dict[str, str] | None:
    """Codec.decode's dict, or None on DecodeError. Any other exception fails the test."""
    try:
        msg = codec.decode(frame)
    except DecodeError as e:
        assert isinstance(e.field, str)
        assert 0 <= e.pos <= len(frame)
        return None
    assert all(type(k) is str and type(v) is str for k, v in msg.items())
    return msg


def expected_bitmaps(msg: dict[str, str]) -> dict[str, str]:
    """The "p" (and "1") entries decoding adds, computed from the field numbers."""
    nums = {int(k) for k in msg if k != "t"}
    secondary = any(n > 64 for n in nums)
    if secondary:
        nums.add(1)
    out = {"p": f"{sum(1 << (64 - n) for n in nums if n <= 64):016X}"}
    if secondary:
        out["1"] = f"{sum(1 << (128 - n) for n in nums if n > 64):016X}"
    return out


@st.composite
def mutated_frames(draw: st.DrawFn, spec: Spec) -> bytes:
    """A valid frame damaged by 1-4 bit flips, byte changes, truncations, insertions or deletions."""
    frame = bytearray(ref_encode(draw(messages(spec, max_fields=6)), spec))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "case", "truncate", "insert", "delete"]))
        # Half the time aim at the MTI/bitmaps/first fields, where damage is subtle.
        at = draw(st.one_of(st.integers(0, 40), st.integers(0, max(len(frame), 1))))
        at = min(at, len(frame))
        if op == "truncate":
            del frame[at:]
        elif op == "insert":
            frame[at:at] = draw(
                st.one_of(
                    st.binary(min_size=1, max_size=4), st.sampled_from(INTERESTING_BYTES).map(lambda b: bytes([b]))
                )
            )
        elif at < len(frame):
            if op == "flip":
                frame[at] ^= 1 << draw(st.integers(0, 7))
            elif op == "set":
                frame[at] = draw(st.sampled_from(INTERESTING_BYTES))
            elif op == "case":  # "A" -> "a": same bitmap, different text
                frame[at] = ord(chr(frame[at]).swapcase()) if frame[at] < 0x80 else frame[at]
            else:
                del frame[at]
    return bytes(frame)


@st.composite
def header_shaped_frames(draw: st.DrawFn, spec: Spec) -> bytes:
    """MTI + bitmap-sized prefix + junk: random bytes that get past the first checks."""
    bml = 8 if spec["p"]["data_enc"] == "b" else 16
    if bml == 16:
        bitmap = draw(st.text("0123456789abcdefABCDEF ", min_size=32, max_size=32)).encode()
    else:
        bitmap = draw(st.binary(min_size=16, max_size=16))
    tail = draw(st.binary(max_size=60) | st.text(PRINTABLE, max_size=60).map(str.encode))
    cut = draw(st.sampled_from([bml, 2 * bml, 3 * bml]))
    return b"0200" + bitmap[:cut] + tail


# -- the shipped dialects use the fast path ----------------------------------


@dialects
def test_shipped_dialects_compile_to_the_fast_path(dialect: str) -> None:
    assert Codec(load_spec(dialect)).fast


@dialects
def test_field_65_is_the_bitmap_extension_and_is_never_generated(dialect: str) -> None:
    spec = load_spec(dialect)
    assert "bitmap" in spec["65"]["desc"].lower()
    assert 65 not in data_fields(spec)
    # pyiso8583 drops a "65" key on encode; so must the fast path.
    codec = Codec(spec)
    msg = {"t": "0800", "70": "301", "65": "0" * 16}
    assert codec.encode(msg) == ref_encode(msg, spec)


# -- valid messages: byte-for-byte agreement ----------------------------------


def test_fast_encoder_matches_pyiso8583_for_ascii_dialect() -> None:
    check_encoder_matches_pyiso8583("ascii")


def test_fast_encoder_matches_pyiso8583_for_binary_bitmap_dialect() -> None:
    check_encoder_matches_pyiso8583("binary-bitmap")


def check_encoder_matches_pyiso8583(dialect: str) -> None:
    spec = load_spec(dialect)
    codec = Codec(spec)

    @FAST
    @given(messages(spec))
    def prop(msg: dict[str, str]) -> None:
        before = dict(msg)
        assert codec.encode(msg) == ref_encode(msg, spec)
        assert msg == before  # encode does not touch its argument

    prop()


@dialects
@FAST
@given(data=st.data())
def test_fast_decoder_matches_pyiso8583_on_valid_frames(dialect: str, data: st.DataObject) -> None:
    spec = load_spec(dialect)
    frame = ref_encode(data.draw(messages(spec)), spec)
    decoded = Codec(spec).decode(frame)
    assert decoded == ref_decode(frame, spec)


@dialects
@FAST
@given(data=st.data())
def test_decode_of_encode_returns_the_message_plus_bitmap_entries(dialect: str, data: st.DataObject) -> None:
    spec = load_spec(dialect)
    codec = Codec(spec)
    msg = data.draw(messages(spec))
    assert codec.decode(codec.encode(msg)) == msg | expected_bitmaps(msg)


@dialects
@FAST
@given(data=st.data())
def test_secondary_bitmap_is_present_iff_a_field_above_64_is(dialect: str, data: st.DataObject) -> None:
    spec = load_spec(dialect)
    codec = Codec(spec)
    msg = data.draw(messages(spec))
    frame = codec.encode(msg)
    high = any(int(k) > 64 for k in msg if k != "t")
    first = frame[4] if spec["p"]["data_enc"] == "b" else int(frame[4:5], 16) << 4
    assert bool(first & 0x80) == high
    assert ("1" in codec.decode(frame)) == high


def test_encoding_the_module_example_gives_the_documented_bytes() -> None:
    codec = Codec(load_spec("ascii"))
    frame = codec.encode({"t": "0210", "3": "111111", "39": "05"})
    assert frame == b"0210200000000200000011111105"
    assert peek_mti(frame) == "0210"
    assert peek_mti(b"02") is None
    assert peek_mti(b"02x0" + frame[4:]) is None


# -- damaged input: same verdict as pyiso8583, only DecodeError ----------------


@dialects
@FUZZ
@given(frame=st.binary(max_size=200))
def test_fast_decoder_rejects_arbitrary_bytes_exactly_when_pyiso8583_does(dialect: str, frame: bytes) -> None:
    spec = load_spec(dialect)
    assert fast_decode(Codec(spec), frame) == ref_decode(frame, spec)


@dialects
@FUZZ
@given(data=st.data())
def test_fast_decoder_rejects_header_shaped_junk_exactly_when_pyiso8583_does(dialect: str, data: st.DataObject) -> None:
    spec = load_spec(dialect)
    frame = data.draw(header_shaped_frames(spec))
    assert fast_decode(Codec(spec), frame) == ref_decode(frame, spec)


@dialects
@FUZZ
@given(data=st.data())
def test_fast_decoder_rejects_mutated_frames_exactly_when_pyiso8583_does(dialect: str, data: st.DataObject) -> None:
    spec = load_spec(dialect)
    frame = data.draw(mutated_frames(spec))
    assert fast_decode(Codec(spec), frame) == ref_decode(frame, spec)


# Frames pyiso8583 reads in a way that is easy to get wrong. Each must decode
# (or fail) the same way on the fast path.
ASCII_EDGE_FRAMES = [
    pytest.param(b"02104000000000000000 512345", id="blank-padded-length"),
    pytest.param(b"02104000000000000000+512345", id="signed-length"),
    pytest.param(b"02104000000000000000-0", id="negative-zero-length"),
    pytest.param(b"02104000000000000000-112345", id="negative-length"),
    pytest.param(b"02104000000000000000\x1c512345", id="control-char-in-length"),
    pytest.param(b"0210000000000000000a000000", id="lower-case-bitmap"),
    pytest.param(b"0210000000000000 20 123", id="blanks-in-bitmap"),
    pytest.param(b"0210" + b" " * 16, id="all-blank-bitmap"),
    pytest.param(b"0210 0000000000000 0123", id="blank-splitting-a-hex-pair"),
    pytest.param(b"02108000000000000000" + b"8000000000000000" + b"0" * 16, id="empty-tertiary-bitmap"),
    pytest.param(b"02108000000000000000" + b"8000000000000000" + b"0" * 15 + b"1", id="tertiary-bitmap-with-bits"),
    pytest.param(b"02108000000000000000" + b"8000000000000000" + b"0" * 14, id="short-tertiary-bitmap"),
    pytest.param(b"0210c000000000000000" + b"8000000000000000" + b"0" * 16 + b"00", id="tertiary-bitmap-then-field"),
]


@pytest.mark.parametrize("frame", ASCII_EDGE_FRAMES)
def test_fast_decoder_matches_pyiso8583_on_ascii_edge_frames(frame: bytes) -> None:
    spec = load_spec("ascii")
    assert fast_decode(Codec(spec), frame) == ref_decode(frame, spec)


BINARY_EDGE_FRAMES = [
    pytest.param(b"0210\x80" + b"\0" * 7 + b"\x80" + b"\0" * 7 + b"\0" * 8, id="empty-tertiary-bitmap"),
    pytest.param(b"0210\x80" + b"\0" * 7 + b"\x80" + b"\0" * 7 + b"\0" * 7 + b"\x01", id="tertiary-bitmap-with-bits"),
    pytest.param(b"0210\x80" + b"\0" * 7 + b"\x80" + b"\0" * 7 + b"\0" * 16, id="tertiary-bitmap-then-junk"),
    pytest.param(b"0210\xc0" + b"\0" * 7 + b"\x80" + b"\0" * 7 + b"\0" * 8 + b"00", id="tertiary-bitmap-then-field"),
    pytest.param(b"0210\x40" + b"\0" * 7 + b" 512345", id="blank-padded-length"),
]


@pytest.mark.parametrize("frame", BINARY_EDGE_FRAMES)
def test_fast_decoder_matches_pyiso8583_on_binary_bitmap_edge_frames(frame: bytes) -> None:
    spec = load_spec("binary-bitmap")
    assert fast_decode(Codec(spec), frame) == ref_decode(frame, spec)


# -- invalid messages: EncodeError and nothing else ----------------------------


@st.composite
def valid_base(draw: st.DrawFn, spec: Spec) -> dict[str, str]:
    return draw(messages(spec, max_fields=4))


def fields_where(spec: Spec, fixed: bool) -> list[int]:
    return [n for n in data_fields(spec) if (spec[str(n)]["len_type"] == 0) == fixed]


def assert_both_refuse(codec: Codec, msg: dict[Any, Any], spec: Spec, field: str) -> None:
    with pytest.raises(EncodeError) as exc:
        codec.encode(msg)
    assert exc.value.field == field
    with pytest.raises(iso8583.EncodeError):
        iso8583.encode(dict(msg), spec)


@dialects
@FAST
@given(data=st.data())
def test_encoder_refuses_fixed_field_of_wrong_length(dialect: str, data: st.DataObject) -> None:
    spec = load_spec(dialect)
    msg = data.draw(valid_base(spec))
    n = data.draw(st.sampled_from(fields_where(spec, fixed=True)))
    max_len = spec[str(n)]["max_len"]
    size = data.draw(st.integers(0, max_len + 5).filter(lambda s: s != max_len))
    msg[str(n)] = data.draw(st.text(PRINTABLE, min_size=size, max_size=size))
    assert_both_refuse(Codec(spec), msg, spec, str(n))


@dialects
@FAST
@given(data=st.data())
def test_encoder_refuses_variable_field_longer_than_its_maximum(dialect: str, data: st.DataObject) -> None:
    spec = load_spec(dialect)
    msg = data.draw(valid_base(spec))
    n = data.draw(st.sampled_from(fields_where(spec, fixed=False)))
    max_len = spec[str(n)]["max_len"]
    size = data.draw(st.integers(max_len + 1, max_len + 20))
    msg[str(n)] = data.draw(st.text(PRINTABLE, min_size=size, max_size=size))
    assert_both_refuse(Codec(spec), msg, spec, str(n))


@dialects
@FAST
@given(data=st.data())
def test_encoder_refuses_non_ascii_field_data(dialect: str, data: st.DataObject) -> None:
    spec = load_spec(dialect)
    msg = data.draw(valid_base(spec))
    n = data.draw(st.sampled_from(data_fields(spec)))
    f = spec[str(n)]
    size = f["max_len"] if f["len_type"] == 0 else data.draw(st.integers(1, f["max_len"]))
    text = list(data.draw(st.text(PRINTABLE, min_size=size, max_size=size)))
    text[data.draw(st.integers(0, size - 1))] = data.draw(st.characters(min_codepoint=0x80, exclude_categories=["Cs"]))
    msg[str(n)] = "".join(text)
    assert_both_refuse(Codec(spec), msg, spec, str(n))


@dialects
@FAST
@given(data=st.data(), value=st.one_of(st.integers(), st.none(), st.binary(max_size=4), st.lists(st.text())))
def test_encoder_refuses_non_string_field_data(dialect: str, data: st.DataObject, value: object) -> None:
    spec = load_spec(dialect)
    msg: dict[str, Any] = data.draw(valid_base(spec))
    n = str(data.draw(st.sampled_from(data_fields(spec))))
    msg[n] = value
    with pytest.raises(EncodeError) as exc:
        Codec(spec).encode(msg)
    assert exc.value.field == n


def is_field_key(k: object) -> bool:
    """Keys the fast encoder accepts: the MTI, bitmap keys it ignores, "h", and "2".."128"."""
    if k in ("t", "p", "1", "65", "h"):
        return True
    return isinstance(k, str) and k.isascii() and k.isdigit() and str(int(k)) == k and 2 <= int(k) <= 128


unknown_keys = st.one_of(
    st.sampled_from(["02", " 2", "2 ", "+2", "-1", "0", "1_0", "٣", "129", "192", "999", "x", "", "P", "T"]),
    st.text(max_size=5),
    st.integers(),
    st.none(),
    st.floats(allow_nan=False),
    st.binary(max_size=3),
).filter(lambda k: not is_field_key(k))


@dialects
@FAST
@given(data=st.data(), key=unknown_keys)
def test_encoder_refuses_unknown_field_keys(dialect: str, data: st.DataObject, key: object) -> None:
    spec = load_spec(dialect)
    msg: dict[Any, str] = data.draw(valid_base(spec))
    msg[key] = "1"
    with pytest.raises(EncodeError):
        Codec(spec).encode(msg)


@dialects
def test_encoder_refuses_a_field_given_twice_under_different_spellings(dialect: str) -> None:
    with pytest.raises(EncodeError):
        Codec(load_spec(dialect)).encode({"t": "0200", "3": "000000", "03": "999999"})


@dialects
@FAST
@given(data=st.data())
def test_encoder_refuses_message_without_mti(dialect: str, data: st.DataObject) -> None:
    spec = load_spec(dialect)
    msg = data.draw(valid_base(spec))
    del msg["t"]
    assert_both_refuse(Codec(spec), msg, spec, "t")


@dialects
@FAST
@given(
    data=st.data(),
    mti=st.one_of(
        st.text(PRINTABLE, max_size=8).filter(lambda s: len(s) != 4),
        st.text(min_size=4, max_size=4).filter(lambda s: not s.isascii()),
        st.integers(),
        st.none(),
        st.just(b"0200"),
    ),
)
def test_encoder_refuses_malformed_mti(dialect: str, data: st.DataObject, mti: object) -> None:
    spec = load_spec(dialect)
    msg: dict[str, Any] = data.draw(valid_base(spec))
    msg["t"] = mti
    with pytest.raises(EncodeError) as exc:
        Codec(spec).encode(msg)
    assert exc.value.field == "t"


# -- specs outside the fast subset fall back to pyiso8583 ----------------------

DEFAULT_SPEC: Spec = iso8583.specs.default


def test_pyiso8583_default_spec_is_not_on_the_fast_path() -> None:
    assert not Codec(DEFAULT_SPEC).fast


def test_fallback_codec_round_trips_a_message_with_binary_fields() -> None:
    codec = Codec(DEFAULT_SPEC)
    msg = {
        "t": "0200",
        "2": "4111111111111111",
        "3": "000000",
        "4": "000000001000",
        "11": "000001",
        "52": "0123456789ABCDEF",
        "55": "9F2608AABBCCDDEEFF0011",
        "70": "301",
        "128": "FEDCBA9876543210",
    }
    frame = codec.encode(msg)
    assert frame == ref_encode(msg, DEFAULT_SPEC)
    assert codec.decode(frame) == msg | expected_bitmaps(msg)


@FAST
@given(msg=messages(DEFAULT_SPEC))
def test_fallback_codec_round_trips_generated_messages(msg: dict[str, str]) -> None:
    codec = Codec(DEFAULT_SPEC)
    frame = codec.encode(msg)
    assert frame == ref_encode(msg, DEFAULT_SPEC)
    assert codec.decode(frame) == msg | expected_bitmaps(msg)


def test_fallback_codec_raises_its_own_error_types() -> None:
    codec = Codec(DEFAULT_SPEC)
    with pytest.raises(EncodeError) as enc:
        codec.encode({"t": "0200", "3": "12"})
    assert enc.value.field == "3"
    with pytest.raises(DecodeError) as dec:
        codec.decode(b"0200")
    assert dec.value.field == "p"


@pytest.mark.parametrize("key", ["129", "02", "0"])
def test_fallback_encoder_refuses_field_keys_outside_the_spec(key: str) -> None:
    with pytest.raises(EncodeError):
        Codec(DEFAULT_SPEC).encode({"t": "0200", key: "1"})


@FUZZ
@given(frame=st.one_of(st.binary(max_size=120), mutated_frames(DEFAULT_SPEC)))
@example(frame=b"0200\x80" + b"\0" * 7 + b"\x80" + b"\0" * 7 + b"\0" * 7 + b"\x01")  # field 192 via tertiary bitmap
def test_fallback_decoder_raises_only_decode_error_on_arbitrary_bytes(frame: bytes) -> None:
    fast_decode(Codec(DEFAULT_SPEC), frame)
