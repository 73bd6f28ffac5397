"""RTP packets (RFC 3550 §5.1) byte for byte, RTCP demultiplexing (RFC 5761 §4), and the
relay's stream rewriting: one SSRC, sequence numbers +1 mod 2^16 across source changes,
timestamps that keep wall-clock time, payload types mapped between the legs."""

from __future__ import annotations

import struct
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.media.rtp import RtpError, RtpPacket, StreamRewriter, is_rtcp

# ----- byte-exact vectors, laid out by hand from RFC 3550 §5.1 ---------------------------
#
#  0                   1                   2                   3
#  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
# |V=2|P|X|  CC   |M|     PT      |       sequence number         |
# |                           timestamp                           |
# |           synchronization source (SSRC) identifier            |
# |            contributing source (CSRC) identifiers             |

MINIMAL = bytes.fromhex(
    "80 00 1234"  # V=2 P=0 X=0 CC=0 | M=0 PT=0 (PCMU) | seq 0x1234
    "deadbeef"  # timestamp
    "01020304"  # SSRC
    "ffff7f00"  # payload
)

FULL = bytes.fromhex(
    "b2"  # V=2, P=1, X=1, CC=2
    "e0"  # M=1, PT=96
    "fffe"  # sequence 65534
    "00000a00"  # timestamp 2560
    "cafebabe"  # SSRC
    "11111111 22222222"  # two CSRCs
    "bede 0001"  # extension: profile 0xBEDE (RFC 8285 one-byte), 1 word
    "10aa0000"  # extension data
    "616263"  # payload "abc"
    "000003"  # 3 octets of padding, the last one counting them (§5.1 P bit)
)


def test_minimal_packet_vector() -> None:
    packet = RtpPacket.parse(MINIMAL)
    assert packet == RtpPacket(
        payload_type=0, sequence=0x1234, timestamp=0xDEADBEEF, ssrc=0x01020304,
        marker=False, payload=b"\xff\xff\x7f\x00",
    )  # fmt: skip
    assert packet.serialize() == MINIMAL


def test_csrc_extension_padding_and_marker_vector() -> None:
    packet = RtpPacket.parse(FULL)
    assert packet.marker is True
    assert packet.payload_type == 96
    assert packet.sequence == 65534
    assert packet.timestamp == 2560
    assert packet.ssrc == 0xCAFEBABE
    assert packet.csrcs == (0x11111111, 0x22222222)
    assert packet.extension == (0xBEDE, bytes.fromhex("10aa0000"))
    assert packet.payload == b"abc"  # padding removed
    # Serialization writes no padding: the same packet, P bit clear, 3 octets shorter.
    out = packet.serialize()
    assert out == bytes([FULL[0] & ~0x20]) + FULL[1:-3]


def test_serialize_pads_extension_to_whole_words() -> None:
    packet = RtpPacket(8, 1, 2, 3, extension=(0x1000, b"\x01\x02\x03"), payload=b"x")
    data = packet.serialize()
    assert data[0] == 0x90  # V=2, X=1
    assert data[12:16] == bytes.fromhex("1000 0001")  # one 32-bit word of extension
    assert data[16:20] == b"\x01\x02\x03\x00"
    assert data[20:] == b"x"


def test_empty_payload_and_padding_only_packet() -> None:
    header = bytes.fromhex("a0 08 0001 00000000 00000001")  # P=1, PT=8
    assert RtpPacket.parse(header + b"\x00\x00\x00\x04").payload == b""
    assert RtpPacket.parse(bytes.fromhex("80 08 0001 00000000 00000001")).payload == b""


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "shorter than an RTP header"),
        (MINIMAL[:11], "shorter than an RTP header"),
        (bytes([0x40]) + MINIMAL[1:], "RTP version 1"),
        (bytes([0x00]) + MINIMAL[1:], "RTP version 0"),
        (bytes([0xC0]) + MINIMAL[1:], "RTP version 3"),
        (bytes([0x83]) + MINIMAL[1:12] + b"\0" * 8, "truncated CSRC list"),
        (bytes([0x90]) + MINIMAL[1:12] + b"\xbe\xde", "truncated header extension"),
        (bytes([0x90]) + MINIMAL[1:12] + bytes.fromhex("bede0002 00000000"), "truncated"),
        (bytes([0xA0]) + MINIMAL[1:12] + b"ab\x00", "bad padding length"),
        (bytes([0xA0]) + MINIMAL[1:12] + b"ab\x04", "bad padding length"),
        (bytes([0xB0]) + MINIMAL[1:12] + bytes.fromhex("bede0000") + b"\x05", "bad padding"),
    ],
)
def test_malformed_packets_are_rejected_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(RtpError, match=reason):
        RtpPacket.parse(data)


@given(st.binary(max_size=80))
@settings(max_examples=400, deadline=None)
def test_any_bytes_parse_or_raise_rtp_error(data: bytes) -> None:
    try:
        packet = RtpPacket.parse(data)
    except RtpError:
        return
    assert data[0] >> 6 == 2
    assert len(packet.payload) <= len(data) - 12


@given(st.binary(min_size=12, max_size=80))
@settings(max_examples=300, deadline=None)
def test_version_2_bytes_parse_or_raise_rtp_error(tail: bytes) -> None:
    data = bytes([0x80 | (tail[0] & 0x3F)]) + tail[1:]
    try:
        packet = RtpPacket.parse(data)
    except RtpError:
        return
    # What parsed re-serializes to the same header fields.
    again = RtpPacket.parse(packet.serialize())
    assert again == packet


packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    marker=st.booleans(),
    payload=st.binary(max_size=200),
    csrcs=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15).map(tuple),
    extension=st.none()
    | st.tuples(
        st.integers(0, 0xFFFF),
        st.integers(0, 8).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n)),
    ),
)


@settings(deadline=None)
@given(packets)
def test_round_trip(packet: RtpPacket) -> None:
    data = packet.serialize()
    assert RtpPacket.parse(data) == packet
    assert RtpPacket.parse(data).serialize() == data
    assert len(data) == 12 + 4 * len(packet.csrcs) + len(packet.payload) + (
        4 + len(packet.extension[1]) if packet.extension else 0
    )


@settings(deadline=None)
@given(packets, st.integers(1, 255))
def test_padding_is_stripped_whatever_its_length(packet: RtpPacket, padding: int) -> None:
    data = bytearray(packet.serialize())
    data[0] |= 0x20
    data += b"\0" * (padding - 1) + bytes([padding])
    assert RtpPacket.parse(bytes(data)) == packet


@pytest.mark.parametrize(
    "packet",
    [
        RtpPacket(128, 1, 1, 1),
        RtpPacket(-1, 1, 1, 1),
        RtpPacket(0, 1, 1, 1, csrcs=tuple(range(16))),
        RtpPacket(0, 1, 1, 1 << 32),
        RtpPacket(0, 1, 1, 1, extension=(0x10000, b"")),
        RtpPacket(0, 1, 1, 1, extension=(1, bytes(4 * 0x10000))),
    ],
)
def test_serialize_refuses_fields_that_do_not_fit(packet: RtpPacket) -> None:
    with pytest.raises(RtpError):
        packet.serialize()


# ----- RFC 5761 §4: RTP and RTCP on one port --------------------------------------------


@pytest.mark.parametrize("packet_type", [192, 200, 201, 202, 203, 204, 205, 206, 207, 223])
def test_rtcp_packet_types_are_recognised(packet_type: int) -> None:
    assert is_rtcp(bytes([0x80, packet_type]) + b"\0" * 6)


@pytest.mark.parametrize("payload_type", [0, 8, 9, 18, 63, 96, 101, 127])
def test_rtp_payload_types_are_not_rtcp(payload_type: int) -> None:
    for marker in (0, 0x80):
        assert not is_rtcp(RtpPacket(payload_type, 1, 1, 1, marker=bool(marker)).serialize())


def test_too_short_is_not_rtcp() -> None:
    assert not is_rtcp(b"")
    assert not is_rtcp(b"\x80")


# ----- StreamRewriter ---------------------------------------------------------------------

RATE = 8000


def stream(
    ssrc: int, first_seq: int, first_ts: int, count: int, pt: int = 0, step: int = 160
) -> list[RtpPacket]:
    """``count`` 20 ms packets of one source."""
    return [
        RtpPacket(pt, (first_seq + i) & 0xFFFF, (first_ts + i * step) & 0xFFFFFFFF, ssrc,
                  payload=bytes([i & 0xFF]) * 160)
        for i in range(count)
    ]  # fmt: skip


def feed(
    rewriter: StreamRewriter, packets: list[RtpPacket], start: float, gap: float = 0.02
) -> list[RtpPacket]:
    out = []
    for i, packet in enumerate(packets):
        rewritten = rewriter.rewrite(packet, start + i * gap)
        assert rewritten is not None
        out.append(rewritten)
    return out


def assert_continuous(out: list[RtpPacket]) -> None:
    for before, after in pairwise(out):
        assert after.sequence == (before.sequence + 1) & 0xFFFF


def ts_delta(a: int, b: int) -> int:
    return (b - a) & 0xFFFFFFFF


def test_payload_is_untouched_and_pt_is_mapped() -> None:
    rewriter = StreamRewriter(RATE, {96: 111, 0: 0})
    packet = RtpPacket(96, 7, 70, 5, payload=b"\x01\x02opus")
    out = rewriter.rewrite(packet, 1.0)
    assert out is not None
    assert (out.payload_type, out.payload) == (111, b"\x01\x02opus")
    assert out.ssrc == rewriter.ssrc
    assert rewriter.forwarded == 1


def test_unmapped_payload_type_is_dropped_and_counted() -> None:
    rewriter = StreamRewriter(RATE, {0: 0})
    assert rewriter.rewrite(RtpPacket(13, 1, 1, 1), 0.0) is None  # comfort noise, not relayed
    assert rewriter.dropped_payload_type == 1
    assert rewriter.forwarded == 0


def test_set_payload_map_applies_to_later_packets() -> None:
    rewriter = StreamRewriter(RATE, {0: 0})
    rewriter.set_payload_map({0: 8})
    out = rewriter.rewrite(RtpPacket(0, 1, 1, 1), 0.0)
    assert out is not None and out.payload_type == 8


def test_first_packet_starts_a_talkspurt_and_later_ones_keep_the_marker() -> None:
    rewriter = StreamRewriter(RATE, {0: 0})
    out = feed(rewriter, stream(1, 100, 1000, 3), 0.0)
    assert [p.marker for p in out] == [True, False, False]
    quiet = RtpPacket(0, 103, 1480 + 8000, 1, marker=True)
    again = rewriter.rewrite(quiet, 1.5)
    assert again is not None and again.marker  # the source's own talkspurt marker passes


def test_one_source_keeps_its_spacing_across_sequence_wrap() -> None:
    rewriter = StreamRewriter(RATE, {0: 0})
    out = feed(rewriter, stream(9, 65530, 0xFFFFFF00, 12), 0.0)
    assert_continuous(out)
    assert all(ts_delta(a.timestamp, b.timestamp) == 160 for a, b in pairwise(out))
    assert {p.ssrc for p in out} == {rewriter.ssrc}


@settings(deadline=None)
@given(
    first=st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF), st.integers(0, 2**32 - 1)),
    second=st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF), st.integers(0, 2**32 - 1)),
    pause=st.floats(0.0, 30.0),
)
def test_source_switch_keeps_sequence_ssrc_and_wall_clock(
    first: tuple[int, int, int], second: tuple[int, int, int], pause: float
) -> None:
    """A re-INVITE or a phone restarting its stream: a new SSRC, random sequence and
    timestamp. The far leg sees +1 sequence, the same SSRC, and a timestamp advanced by
    the wall time that passed (RFC 3550 §5.1: timestamps from a clock that runs)."""
    if first[2] == second[2]:
        second = (second[0], second[1], (second[2] + 1) & 0xFFFFFFFF)
    rewriter = StreamRewriter(RATE, {0: 0})
    a = feed(rewriter, stream(first[2], first[0], first[1], 5), 10.0)
    switch_at = 10.0 + 4 * 0.02 + 0.02 + pause
    b = feed(rewriter, stream(second[2], second[0], second[1], 5), switch_at)
    out = a + b
    assert_continuous(out)
    assert {p.ssrc for p in out} == {rewriter.ssrc}
    assert b[0].marker  # §5.1: the new source starts a talkspurt
    elapsed = switch_at - (10.0 + 4 * 0.02)
    advance = ts_delta(a[-1].timestamp, b[0].timestamp)
    assert abs(advance - elapsed * RATE) <= 2
    assert all(ts_delta(x.timestamp, y.timestamp) == 160 for x, y in pairwise(b))


def test_switching_back_and_forth_never_reuses_a_sequence_number() -> None:
    rewriter = StreamRewriter(RATE, {0: 0})
    now = 0.0
    out: list[RtpPacket] = []
    for round_ in range(6):
        ssrc = 1 if round_ % 2 == 0 else 2
        seq = 1000 if ssrc == 1 else 50000
        out += feed(rewriter, stream(ssrc, seq + 10 * round_, 160 * 10 * round_, 10), now)
        now += 0.5
    assert_continuous(out)
    assert len({p.sequence for p in out}) == len(out)


def test_restart_with_a_large_forward_jump_is_reanchored() -> None:
    """Same SSRC, sequence jumped by more than MAX_DROPOUT (RFC 3550 A.1): a restart."""
    rewriter = StreamRewriter(RATE, {0: 0})
    a = feed(rewriter, stream(5, 100, 0, 5), 0.0)
    b = feed(rewriter, stream(5, 20000, 777777, 3), 2.0)
    assert_continuous(a + b)
    assert abs(ts_delta(a[-1].timestamp, b[0].timestamp) - (2.0 - 0.08) * RATE) <= 2


def test_restart_a_little_behind_never_repeats_sequence_numbers() -> None:
    """Same SSRC restarting 500 behind: more than MAX_MISORDER (100, RFC 3550 A.1), so a
    restart, not a late packet. Repeating numbers already sent would make the far end
    drop ten seconds of audio as duplicates."""
    rewriter = StreamRewriter(RATE, {0: 0})
    a = feed(rewriter, stream(5, 1000, 0, 10), 0.0)
    b = feed(rewriter, stream(5, 500, 123456, 10), 1.0)
    seen = {p.sequence for p in a}
    assert not seen & {p.sequence for p in b}
    assert_continuous(a + b)


def test_reordered_packet_keeps_its_place() -> None:
    """A late packet (within MAX_MISORDER) keeps its relative sequence and timestamp."""
    rewriter = StreamRewriter(RATE, {0: 0})
    packets = stream(5, 10, 0, 4)
    out = [rewriter.rewrite(packets[i], 0.02 * i) for i in (0, 1, 3, 2)]
    assert all(p is not None for p in out)
    seqs = [p.sequence for p in out if p is not None]
    assert seqs == [seqs[0], seqs[0] + 1, seqs[0] + 3, seqs[0] + 2]
    stamps = [p.timestamp for p in out if p is not None]
    assert ts_delta(stamps[0], stamps[3]) == 320


def test_lost_packets_leave_a_gap_not_a_jump_back() -> None:
    rewriter = StreamRewriter(RATE, {0: 0})
    packets = stream(5, 10, 0, 10)
    out = [rewriter.rewrite(p, 0.02 * i) for i, p in enumerate(packets) if i not in (3, 4)]
    seqs = [p.sequence for p in out if p is not None]
    assert seqs[3] - seqs[2] == 3  # the far end sees the loss as loss


def test_next_sequence_interleaves_with_relayed_packets() -> None:
    """Packets the relay makes itself (RFC 4733 events) take numbers in the same space."""
    rewriter = StreamRewriter(RATE, {0: 0})
    first = rewriter.rewrite(RtpPacket(0, 40, 0, 5), 0.0)
    assert first is not None
    own = [rewriter.next_sequence() for _ in range(3)]
    nxt = rewriter.rewrite(RtpPacket(0, 41, 160, 5), 0.02)
    assert nxt is not None
    assert own == [(first.sequence + i) & 0xFFFF for i in (1, 2, 3)]
    assert nxt.sequence == (first.sequence + 4) & 0xFFFF


def test_timestamp_at_follows_wall_clock_after_the_last_packet() -> None:
    rewriter = StreamRewriter(48000, {111: 111})
    out = rewriter.rewrite(RtpPacket(111, 1, 5000, 1), 100.0)
    assert out is not None
    assert rewriter.timestamp_at(100.0) == out.timestamp
    assert ts_delta(out.timestamp, rewriter.timestamp_at(100.25)) == 12000
    assert rewriter.timestamp_at(99.0) == out.timestamp  # never backwards


def test_two_rewriters_have_distinct_random_origins() -> None:
    a, b = StreamRewriter(RATE, {}), StreamRewriter(RATE, {})
    starts = struct.pack("!IHI", a.ssrc, a.next_sequence(), a.timestamp_at(0.0))
    assert starts != struct.pack("!IHI", b.ssrc, b.next_sequence(), b.timestamp_at(0.0))
