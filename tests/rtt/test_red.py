"""RFC 2198 RED for text (RFC 4103 §4): the digest's vectors, strictness, round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.rtt.red import (
    MAX_LENGTH,
    MAX_OFFSET,
    RedError,
    RedPayload,
    RedundantBlock,
    decode_red,
    encode_red,
    parse_red_fmtp,
)
from tests.rtt.vectors import RED_SEQ_102, T140_PT, TAIL_SEQ_103, TAIL_SEQ_104


def payload(packet: bytes) -> bytes:
    """The payload of a vector packet (12-byte header, no CSRC)."""
    return packet[12:]


def test_vector_1_decodes_to_two_generations_and_primary() -> None:
    red = decode_red(payload(RED_SEQ_102), T140_PT)
    assert red == RedPayload(
        (RedundantBlock(600, b"H"), RedundantBlock(300, b"EL")),
        b"P",
    )


def test_vector_1_encodes_byte_exact() -> None:
    blocks = [RedundantBlock(600, b"H"), RedundantBlock(300, b"EL")]
    assert encode_red(T140_PT, blocks, b"P") == payload(RED_SEQ_102)


def test_vector_2_idle_tail_round_trips() -> None:
    first = decode_red(payload(TAIL_SEQ_103), T140_PT)
    assert first == RedPayload((RedundantBlock(600, b"EL"), RedundantBlock(300, b"P")), b"")
    second = decode_red(payload(TAIL_SEQ_104), T140_PT)
    assert second == RedPayload((RedundantBlock(600, b"P"), RedundantBlock(300, b"")), b"")
    for red, packet in ((first, TAIL_SEQ_103), (second, TAIL_SEQ_104)):
        assert encode_red(T140_PT, red.redundant, red.primary) == payload(packet)


def test_primary_only() -> None:
    assert encode_red(T140_PT, [], b"x") == b"\x62x"
    assert decode_red(b"\x62", T140_PT) == RedPayload((), b"")


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "ends inside its block headers"),
        (b"\xe2\x09\x60", "inside a redundant block header"),
        (b"\xe2\x09\x60\x01", "ends inside its block headers"),
        (b"\xe2\x09\x60\x05\x62ab", "inside a redundant block"),
        (b"\xe2\x09\x60\x01\xe2\x04\xb0\x02\x62H", "inside a redundant block"),
        (b"\x61x", "is not the t140 type 98"),
        (b"\xe1\x09\x60\x01\x62Hx", "is not the t140 type 98"),
        (b"\xe2\x09\x60\x01\x00Hx", "is not the t140 type 98"),
    ],
)
def test_strict_decoding_rejects(data: bytes, why: str) -> None:
    with pytest.raises(RedError, match=why):
        decode_red(data, T140_PT)


def test_encode_refuses_what_the_fields_cannot_hold() -> None:
    with pytest.raises(RedError, match="offset"):
        encode_red(T140_PT, [RedundantBlock(MAX_OFFSET + 1, b"a")], b"")
    with pytest.raises(RedError, match="offset"):
        encode_red(T140_PT, [RedundantBlock(-1, b"a")], b"")
    with pytest.raises(RedError, match="exceeds"):
        encode_red(T140_PT, [RedundantBlock(0, b"a" * (MAX_LENGTH + 1))], b"")
    with pytest.raises(RedError, match="0-127"):
        encode_red(128, [], b"")
    assert decode_red(
        encode_red(T140_PT, [RedundantBlock(MAX_OFFSET, b"a" * MAX_LENGTH)], b""), T140_PT
    ).redundant == (RedundantBlock(MAX_OFFSET, b"a" * MAX_LENGTH),)


@given(
    pt=st.integers(0, 127),
    blocks=st.lists(
        st.builds(
            RedundantBlock,
            st.integers(0, MAX_OFFSET),
            st.binary(max_size=40),
        ),
        max_size=4,
    ),
    primary=st.binary(max_size=60),
)
def test_round_trip(pt: int, blocks: list[RedundantBlock], primary: bytes) -> None:
    assert decode_red(encode_red(pt, blocks, primary), pt) == RedPayload(tuple(blocks), primary)


@given(data=st.binary(max_size=64), pt=st.integers(0, 127))
def test_arbitrary_bytes_decode_or_raise_red_error(data: bytes, pt: int) -> None:
    try:
        red = decode_red(data, pt)
    except RedError:
        return
    assert encode_red(pt, red.redundant, red.primary) == data


def test_fmtp_generations() -> None:
    assert parse_red_fmtp("98/98/98", 98) == 2
    assert parse_red_fmtp(" 98/98 ", 98) == 1
    assert parse_red_fmtp("98", 98) == 0
    with pytest.raises(RedError, match="other than t140"):
        parse_red_fmtp("98/0/98", 98)
    with pytest.raises(RedError, match="not a list"):
        parse_red_fmtp("98/x", 98)
