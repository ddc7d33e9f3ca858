"""Tests for switch.wire.framing: length headers and the incremental deframer."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switch.wire.framing import FRAMINGS, Deframer, Framing, FramingError

PROPS = settings(max_examples=100, deadline=None)

framings = pytest.mark.parametrize("name", sorted(FRAMINGS))

frame_lists = st.lists(st.binary(max_size=300), max_size=8)


def chunked(stream: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(set(cuts)), len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds)]


def feed_all(deframer: Deframer, chunks: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for chunk in chunks:
        out += deframer.feed(chunk)
    return out


def test_both_framings_are_registered_with_their_header_sizes() -> None:
    assert FRAMINGS["binary2"] == Framing("binary2", 2, False, 0xFFFF)
    assert FRAMINGS["ascii4"] == Framing("ascii4", 4, True, 9999)


@pytest.mark.parametrize(
    ("name", "msg", "packed"),
    [
        ("binary2", b"0800", b"\x00\x040800"),
        ("binary2", b"", b"\x00\x00"),
        ("binary2", b"x" * 300, b"\x01\x2c" + b"x" * 300),
        ("ascii4", b"0800", b"00040800"),
        ("ascii4", b"", b"0000"),
        ("ascii4", b"x" * 300, b"0300" + b"x" * 300),
    ],
)
def test_pack_prefixes_the_message_with_its_length_header(name: str, msg: bytes, packed: bytes) -> None:
    assert FRAMINGS[name].pack(msg) == packed


@framings
def test_pack_accepts_a_message_of_exactly_the_maximum_length(name: str) -> None:
    framing = FRAMINGS[name]
    msg = b"a" * framing.max_len
    packed = framing.pack(msg)
    assert len(packed) == framing.header_len + framing.max_len
    assert Deframer(framing).feed(packed) == [msg]


@framings
def test_pack_refuses_a_message_longer_than_the_framing_allows(name: str) -> None:
    framing = FRAMINGS[name]
    with pytest.raises(ValueError, match="exceeds"):
        framing.pack(b"a" * (framing.max_len + 1))


@framings
@PROPS
@given(frames=frame_lists, data=st.data())
def test_stream_split_at_random_points_yields_the_same_frames_in_order(
    name: str, frames: list[bytes], data: st.DataObject
) -> None:
    framing = FRAMINGS[name]
    stream = b"".join(framing.pack(f) for f in frames)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=20))
    deframer = Deframer(framing)
    assert feed_all(deframer, chunked(stream, cuts)) == frames
    assert deframer.buffered == 0


@framings
@PROPS
@given(frames=frame_lists)
def test_stream_fed_one_byte_at_a_time_yields_each_frame_on_its_last_byte(name: str, frames: list[bytes]) -> None:
    framing = FRAMINGS[name]
    deframer = Deframer(framing)
    stream = b"".join(framing.pack(f) for f in frames)
    ends: dict[int, bytes] = {}  # every frame, even an empty one, ends at its own offset
    pos = 0
    for f in frames:
        pos += framing.header_len + len(f)
        ends[pos] = f
    got: list[bytes] = []
    for i in range(len(stream)):
        out = deframer.feed(stream[i : i + 1])
        assert out == ([ends[i + 1]] if i + 1 in ends else [])
        assert all(type(f) is bytes for f in out)
        got += out
    assert got == frames
    assert deframer.buffered == 0


@framings
@PROPS
@given(frames=frame_lists)
def test_whole_stream_in_one_chunk_yields_every_frame(name: str, frames: list[bytes]) -> None:
    framing = FRAMINGS[name]
    deframer = Deframer(framing)
    assert deframer.feed(b"".join(framing.pack(f) for f in frames)) == frames
    assert deframer.buffered == 0


@framings
def test_feeding_nothing_yields_nothing(name: str) -> None:
    deframer = Deframer(FRAMINGS[name])
    assert deframer.feed(b"") == []
    assert deframer.buffered == 0


@framings
@PROPS
@given(msg=st.binary(min_size=1, max_size=300), data=st.data())
def test_partial_header_and_partial_body_stay_buffered(name: str, msg: bytes, data: st.DataObject) -> None:
    framing = FRAMINGS[name]
    packed = framing.pack(msg)
    cut = data.draw(st.integers(1, len(packed) - 1))
    deframer = Deframer(framing)
    assert deframer.feed(packed[:cut]) == []
    assert deframer.buffered == cut
    assert deframer.feed(packed[cut:]) == [msg]
    assert deframer.buffered == 0


@framings
def test_bytes_after_the_last_whole_frame_stay_buffered(name: str) -> None:
    framing = FRAMINGS[name]
    second = framing.pack(b"second")
    deframer = Deframer(framing)
    assert deframer.feed(framing.pack(b"first") + second[:3]) == [b"first"]
    assert deframer.buffered == 3
    assert deframer.feed(second[3:]) == [b"second"]
    assert deframer.buffered == 0


non_digit_headers = st.binary(min_size=4, max_size=4).filter(lambda h: not h.isdigit())


@PROPS
@given(header=non_digit_headers | st.sampled_from([b" 123", b"+123", b"-001", b"12 3", b"0x10", b"\xd9\xa3\x00\x00"]))
def test_ascii4_header_that_is_not_four_digits_raises_framing_error(header: bytes) -> None:
    with pytest.raises(FramingError):
        Deframer(FRAMINGS["ascii4"]).feed(header + b"0800")


def test_ascii4_bad_header_raises_once_its_fourth_byte_arrives() -> None:
    deframer = Deframer(FRAMINGS["ascii4"])
    assert deframer.feed(b"00a") == []
    assert deframer.buffered == 3
    with pytest.raises(FramingError):
        deframer.feed(b"1")


def test_ascii4_bad_header_after_a_good_frame_raises_framing_error() -> None:
    deframer = Deframer(FRAMINGS["ascii4"])
    assert deframer.feed(b"0002hi") == [b"hi"]
    with pytest.raises(FramingError):
        deframer.feed(b"00x2hi")


@PROPS
@given(header=st.binary(min_size=2, max_size=2))
def test_binary2_reads_any_two_bytes_as_a_big_endian_length(header: bytes) -> None:
    n = int.from_bytes(header, "big")
    deframer = Deframer(FRAMINGS["binary2"])
    assert deframer.feed(header + b"z" * (n - 1)) == ([] if n else [b""])
    if n:
        assert deframer.buffered == 2 + n - 1
        assert deframer.feed(b"z") == [b"z" * n]
    assert deframer.buffered == 0
