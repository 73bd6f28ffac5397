"""RTCP toward phones (RFC 3550 §6, A.1-A.3, A.8): packets byte for byte and against
aiortc's independent parser, reception statistics, and the report schedule with sender
reports, receiver reports, CNAME and BYE."""

from __future__ import annotations

import struct

import pytest
from aiortc.rtp import (
    RtcpByePacket,
    RtcpPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.media.rtcp import (
    COMPENSATION,
    NTP_UNIX_OFFSET,
    Goodbye,
    OtherRtcp,
    ReceiverReport,
    ReceptionStats,
    ReportBlock,
    RtcpError,
    RtcpSession,
    SenderInfo,
    SenderReport,
    SourceDescription,
    ntp_timestamp,
    parse_compound,
    serialize,
    serialize_compound,
)

BOX, PHONE = 0xB0B0B0B0, 0x5EED

# ----- packets byte for byte -----------------------------------------------------------------

EMPTY_RR = bytes.fromhex("80c90001 00005eed")  # V=2 RC=0 PT=201 length=1, SSRC

SR_ONE_BLOCK = bytes.fromhex(
    "81c8000c"  # V=2 RC=1 PT=200 length 12 words
    "b0b0b0b0"  # sender SSRC
    "e8a9f1c0 80000000"  # NTP: 3903459776.5 s since 1900
    "0000a000"  # RTP timestamp 40960
    "00000032 00001f40"  # 50 packets, 8000 octets
    "00005eed"  # report about the phone
    "19 00000a"  # 25/256 lost, 10 in all
    "00010064"  # extended highest sequence: one wrap, then 100
    "0000000c"  # jitter 12
    "11223344 00008000"  # LSR, DLSR 0.5 s
)

SDES_CNAME = bytes.fromhex("81ca0003 b0b0b0b0 0103626f 78000000")  # CNAME "box"

BYE_WITH_REASON = bytes.fromhex("81cb0003 b0b0b0b0 04627965 21000000")  # "bye!"


def test_sender_report_vector() -> None:
    packet = SenderReport(
        BOX,
        SenderInfo(0xE8A9F1C0_80000000, 40960, 50, 8000),
        (ReportBlock(PHONE, 25, 10, 0x10064, 12, 0x11223344, 0x8000),),
    )
    assert serialize(packet) == SR_ONE_BLOCK
    assert parse_compound(SR_ONE_BLOCK) == [packet]


def test_receiver_report_sdes_and_bye_vectors() -> None:
    assert serialize(ReceiverReport(PHONE)) == EMPTY_RR
    assert serialize(SourceDescription(((BOX, ((1, b"box"),)),))) == SDES_CNAME
    assert serialize(Goodbye((BOX,), b"bye!")) == BYE_WITH_REASON
    compound = EMPTY_RR + SDES_CNAME + BYE_WITH_REASON
    parsed = parse_compound(compound)
    assert parsed == [
        ReceiverReport(PHONE),
        SourceDescription(((BOX, ((1, b"box"),)),)),
        Goodbye((BOX,), b"bye!"),
    ]
    assert isinstance(parsed[1], SourceDescription) and parsed[1].cname(BOX) == b"box"
    assert serialize_compound(parsed) == compound


def test_negative_cumulative_loss_is_24_bit_twos_complement() -> None:
    """Duplicates can make the count negative (§6.4.1); it is clamped to 24 bits."""
    block = ReportBlock(1, 0, -3, 5, 0, 0, 0)
    assert block.serialize()[5:8] == b"\xff\xff\xfd"
    assert ReportBlock.parse(block.serialize(), 0) == block
    huge = ReportBlock(1, 0, 10**9, 5, 0, 0, 0).serialize()
    assert huge[5:8] == b"\x7f\xff\xff"


def test_sdes_chunk_ending_on_a_word_boundary_gets_a_whole_null_word() -> None:
    """§6.5: the item list ends with at least one null octet, then pads to 32 bits."""
    data = serialize(SourceDescription(((BOX, ((1, b"ab"),)),)))  # 4 + 2 + 2 = 8 octets
    assert data[4:] == bytes.fromhex("b0b0b0b0 01026162 00000000")
    assert parse_compound(EMPTY_RR + data)[1] == SourceDescription(((BOX, ((1, b"ab"),)),))


def test_unknown_packet_types_are_kept_whole() -> None:
    app = bytes.fromhex("80cc0002 b0b0b0b0 6e616d65")  # APP "name"
    assert parse_compound(EMPTY_RR + app)[1] == OtherRtcp(204, 0, bytes.fromhex("b0b0b0b06e616d65"))
    assert serialize_compound(parse_compound(EMPTY_RR + app)) == EMPTY_RR + app


def test_padding_in_the_last_packet_is_removed() -> None:
    padded = bytes.fromhex("a1cb0002 b0b0b0b0 00000004")  # BYE with 4 octets of padding
    assert parse_compound(EMPTY_RR + padded)[1] == Goodbye((BOX,))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"\x80\xc9", "truncated RTCP header"),
        (bytes.fromhex("40c90001 00005eed"), "version 1"),
        (bytes.fromhex("80c90002 00005eed"), "beyond the datagram"),
        (SDES_CNAME, "starts with SR or RR"),
        (bytes.fromhex("a0c90002 00005eed 00000004") + SDES_CNAME, "padding before the last"),
        (EMPTY_RR + bytes.fromhex("a0cb0001 00000000"), "bad RTCP padding"),
        (EMPTY_RR + bytes.fromhex("a0cb0001 00000009"), "bad RTCP padding"),
        (bytes.fromhex("81c90001 00005eed"), "shorter than its reports"),
        (bytes.fromhex("80c80001 00005eed"), "shorter than its reports"),
        (EMPTY_RR + bytes.fromhex("82ca0002 b0b0b0b0 01000000"), "truncated SDES chunk"),
        (EMPTY_RR + bytes.fromhex("81ca0002 b0b0b0b0 01090000"), "truncated SDES item"),
        (EMPTY_RR + bytes.fromhex("81ca0002 b0b0b0b0 01026162"), "without its end"),
        (EMPTY_RR + bytes.fromhex("82cb0001 b0b0b0b0"), "BYE shorter"),
        (EMPTY_RR + bytes.fromhex("81cb0002 b0b0b0b0 09000000"), "truncated BYE reason"),
        (bytes.fromhex("0001 0000 2112a442") + bytes(12), "version 0"),  # STUN
    ],
)
def test_invalid_compounds_are_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(RtcpError, match=reason):
        parse_compound(data)


@settings(deadline=None)
@given(st.binary(max_size=120))
def test_any_bytes_parse_or_raise_rtcp_error(data: bytes) -> None:
    try:
        packets = parse_compound(data)
    except RtcpError:
        return
    assert packets and isinstance(packets[0], SenderReport | ReceiverReport)


@settings(deadline=None)
@given(st.binary(min_size=4, max_size=120))
def test_rtcp_shaped_bytes_parse_or_raise_rtcp_error(tail: bytes) -> None:
    words = (len(tail) - 4) // 4
    data = (
        bytes([0x80 | (tail[0] & 0x3F), 200 + (tail[1] % 6)]) + struct.pack("!H", words) + tail[4:]
    )
    try:
        packets = parse_compound(data[: 4 + 4 * words])
    except RtcpError:
        return
    assert parse_compound(serialize_compound(packets)) == packets


u32 = st.integers(0, 0xFFFFFFFF)
blocks = st.builds(
    ReportBlock, u32, st.integers(0, 255), st.integers(-0x800000, 0x7FFFFF), u32, u32, u32, u32
)
report_packets = st.one_of(
    st.builds(ReceiverReport, u32, st.lists(blocks, max_size=3).map(tuple)),
    st.builds(
        SenderReport,
        u32,
        st.builds(SenderInfo, st.integers(0, 2**64 - 1), u32, u32, u32),
        st.lists(blocks, max_size=3).map(tuple),
    ),
)
others = st.one_of(
    st.builds(
        SourceDescription,
        st.lists(
            st.tuples(
                u32,
                st.lists(st.tuples(st.integers(1, 8), st.binary(max_size=40)), max_size=3).map(
                    tuple
                ),
            ),
            max_size=3,
        ).map(tuple),
    ),
    st.builds(Goodbye, st.lists(u32, max_size=3).map(tuple), st.binary(max_size=40)),
)


@settings(deadline=None)
@given(report_packets, st.lists(others, max_size=3))
def test_compound_round_trip(
    first: ReceiverReport | SenderReport, rest: list[SourceDescription | Goodbye]
) -> None:
    packets = [first, *rest]
    data = serialize_compound(packets)
    assert len(data) % 4 == 0
    assert parse_compound(data) == packets


# ----- against aiortc's parser and serializer (an independent implementation) ---------------


def test_aiortc_reads_what_the_box_sends() -> None:
    session = RtcpSession(BOX, 8000, 0.0, cname="box@example", wall_offset=1_700_000_000.0)
    for i in range(5):
        session.rtp_received(PHONE, 100 + i, 160 * i, 0.02 * i)
        session.rtp_sent(320 * i, 160, 0.02 * i)
    packets = RtcpPacket.parse(session.report(1.0))
    sr, sdes = packets
    assert isinstance(sr, RtcpSrPacket) and isinstance(sdes, RtcpSdesPacket)
    assert sr.ssrc == BOX
    assert (sr.sender_info.packet_count, sr.sender_info.octet_count) == (5, 800)
    assert sr.reports[0].ssrc == PHONE and sr.reports[0].highest_sequence == 104
    assert sdes.chunks[0].ssrc == BOX and sdes.chunks[0].items == [(1, b"box@example")]
    bye = RtcpPacket.parse(session.bye(2.0) or b"")
    assert isinstance(bye[-1], RtcpByePacket) and bye[-1].sources == [BOX]


def test_the_box_reads_what_aiortc_sends() -> None:
    info = RtcpReceiverInfo(
        ssrc=BOX, fraction_lost=3, packets_lost=-2, highest_sequence=70000, jitter=40,
        lsr=0xABCD0000, dlsr=65536,
    )  # fmt: skip
    data = (
        bytes(
            RtcpSrPacket(ssrc=PHONE, sender_info=RtcpSenderInfo(1 << 40, 9, 8, 7), reports=[info])
        )
        + bytes(RtcpSdesPacket(chunks=[RtcpSourceInfo(ssrc=PHONE, items=[(1, b"phone@lan")])]))
        + bytes(RtcpByePacket(sources=[PHONE]))
    )
    sr, sdes, bye = parse_compound(data)
    assert sr == SenderReport(
        PHONE,
        SenderInfo(1 << 40, 9, 8, 7),
        (ReportBlock(BOX, 3, -2, 70000, 40, 0xABCD0000, 65536),),
    )
    assert isinstance(sdes, SourceDescription) and sdes.cname(PHONE) == b"phone@lan"
    assert bye == Goodbye((PHONE,))
    rr = bytes(RtcpRrPacket(ssrc=PHONE, reports=[info]))
    assert parse_compound(rr) == [
        ReceiverReport(PHONE, (ReportBlock(BOX, 3, -2, 70000, 40, 0xABCD0000, 65536),))
    ]


def test_ntp_timestamps() -> None:
    assert ntp_timestamp(0.0) == NTP_UNIX_OFFSET << 32
    assert ntp_timestamp(0.5) == NTP_UNIX_OFFSET << 32 | 0x80000000
    assert ntp_timestamp(1_700_000_000.25) == (1_700_000_000 + NTP_UNIX_OFFSET) << 32 | 0x40000000


# ----- reception statistics (A.1, A.3, A.8) ----------------------------------------------------


def feed(stats: ReceptionStats, sequences: list[int], start: float = 0.0) -> None:
    for i, seq in enumerate(sequences):
        stats.add(seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, start + 0.02 * i)


def test_loss_fraction_and_cumulative_count() -> None:
    stats = ReceptionStats(PHONE, 8000, 1000)
    feed(stats, [s for s in range(1000, 1100) if s % 10 != 3])  # 10 of 100 lost
    block = stats.block()
    assert (block.cumulative_lost, block.highest_sequence) == (10, 1099)
    assert block.fraction_lost == (10 << 8) // 100  # 25
    feed(stats, list(range(1100, 1150)), 2.0)  # a clean interval
    block = stats.block()
    assert (block.fraction_lost, block.cumulative_lost) == (0, 10)


def test_sequence_wrap_is_counted_in_the_extended_number() -> None:
    stats = ReceptionStats(PHONE, 8000, 65530)
    feed(stats, list(range(65530, 65546)))
    block = stats.block()
    assert block.highest_sequence == 0x10000 + 9
    assert block.cumulative_lost == 0


def test_duplicates_make_loss_negative_and_fraction_zero() -> None:
    stats = ReceptionStats(PHONE, 8000, 5)
    feed(stats, [5, 6, 6, 7, 7, 8])
    block = stats.block()
    assert block.cumulative_lost == -2 and block.fraction_lost == 0


def test_a_restarted_source_is_learned_after_two_in_a_row() -> None:
    """A.1: one packet far away is held back; a second in sequence restarts the count."""
    stats = ReceptionStats(PHONE, 8000, 100)
    feed(stats, list(range(100, 110)))
    assert not stats.add(40000, 0, 1.0)
    assert stats.add(40001, 160, 1.02)
    feed(stats, list(range(40002, 40010)), 1.04)
    block = stats.block()
    assert (block.highest_sequence, block.cumulative_lost) == (40009, 0)


def test_jitter_is_zero_on_a_steady_clock_and_grows_with_variation() -> None:
    steady = ReceptionStats(PHONE, 8000, 0)
    feed(steady, list(range(50)))
    assert steady.block().jitter == 0
    shaky = ReceptionStats(PHONE, 8000, 0)
    for i in range(200):
        arrival = 0.02 * i + (0.01 if i % 2 else 0.0)  # every other packet 10 ms late
        shaky.add(i, i * 160, arrival)
    # |D| is 80 timestamp units each time; J converges on it (A.8: J += (|D| - J) / 16).
    assert 75 <= shaky.block().jitter <= 80


def test_repeated_timestamps_of_events_do_not_count_as_jitter() -> None:
    """RFC 4733 packets of one event share a timestamp while time passes."""
    stats = ReceptionStats(PHONE, 8000, 0)
    for i in range(20):
        stats.add(i, 4000, 0.05 * i)
    assert stats.block().jitter == 0


# ----- the session: schedule and content of reports ---------------------------------------------


def session(rand: float = 0.5, **kwargs: float) -> RtcpSession:
    return RtcpSession(
        BOX, 8000, 100.0, cname="box", wall_offset=1_700_000_000.0, rand=lambda: rand, **kwargs
    )


@pytest.mark.parametrize("rand", [0.0, 0.5, 0.999])
def test_report_interval_follows_rfc_3550_6_3_1(rand: float) -> None:
    s = session(rand)
    first = s.get_timer() - 100.0
    assert first == pytest.approx(2.5 * (0.5 + rand) / COMPENSATION)  # half the minimum
    assert s.handle_timer(100.0 + first - 0.001) is None  # not yet
    assert s.handle_timer(100.0 + first) is not None
    second = s.get_timer() - (100.0 + first)
    assert second == pytest.approx(5.0 * (0.5 + rand) / COMPENSATION)
    assert 2.05 <= second <= 6.16


def test_receiver_report_until_the_box_sends() -> None:
    s = session()
    data = s.report(101.0)
    rr, sdes = parse_compound(data)
    assert rr == ReceiverReport(BOX)
    assert isinstance(sdes, SourceDescription) and sdes.cname(BOX) == b"box"


def test_sender_report_while_sending_and_one_interval_after() -> None:
    """§6.4: an SR when the box sent RTP since the last report or the one before it."""
    s = session()
    for i in range(50):
        s.rtp_sent(1000 + 160 * i, 160, 100.0 + 0.02 * i)
    first = parse_compound(s.report(101.5))[0]
    assert isinstance(first, SenderReport)
    assert (first.info.packet_count, first.info.octet_count) == (50, 8000)
    # The RTP timestamp is the last packet's, moved on by the wall time since (§6.4.1).
    last_ts, last_at = 1000 + 160 * 49, 100.0 + 0.02 * 49
    assert first.info.rtp_timestamp == last_ts + round((101.5 - last_at) * 8000)
    assert first.info.ntp_timestamp == ntp_timestamp(1_700_000_000.0 + 101.5)
    assert isinstance(parse_compound(s.report(106.0))[0], SenderReport)  # the interval after
    assert isinstance(parse_compound(s.report(111.0))[0], ReceiverReport)  # then RR again


def test_event_packets_do_not_move_the_rtp_clock_anchor() -> None:
    """RFC 4733 packets repeat the event's start timestamp over 300 ms; the SR's RTP
    timestamp still matches the wall clock."""
    s = session()
    for i in range(6):
        s.rtp_sent(8000, 4, 100.0 + 0.05 * i)  # an RFC 4733 event: one timestamp
    sr = parse_compound(s.report(101.0))[0]
    assert isinstance(sr, SenderReport) and sr.info.rtp_timestamp == 8000 + 8000


def test_report_blocks_cover_the_sources_heard_since_the_last_report() -> None:
    s = session()
    for i in range(10):
        s.rtp_received(PHONE, 500 + i, 160 * i, 100.0 + 0.02 * i)
    rr = parse_compound(s.report(101.0))[0]
    assert isinstance(rr, ReceiverReport) and [b.ssrc for b in rr.reports] == [PHONE]
    assert rr.reports[0].highest_sequence == 509
    rr = parse_compound(s.report(106.0))[0]
    assert isinstance(rr, ReceiverReport) and rr.reports == ()  # silent since: no block
    s.rtp_received(0x2222, 1, 0, 107.0)  # a new source after a re-INVITE
    rr = parse_compound(s.report(111.0))[0]
    assert isinstance(rr, ReceiverReport) and [b.ssrc for b in rr.reports] == [0x2222]


def test_lsr_and_dlsr_answer_the_phones_sender_report() -> None:
    s = session()
    s.rtp_received(PHONE, 1, 0, 100.0)
    phone_sr = serialize(SenderReport(PHONE, SenderInfo(0x1122334455667788, 0, 1, 160)))
    s.rtcp_received(phone_sr, 100.5)
    block = parse_compound(s.report(101.0))[0]
    assert isinstance(block, ReceiverReport)
    assert block.reports[0].lsr == 0x33445566  # the middle 32 bits (§6.4.1)
    assert block.reports[0].dlsr == 0x8000  # 0.5 s in 1/65536 s


def test_what_the_phone_reports_about_the_box_is_kept() -> None:
    s = session()
    about_us = ReportBlock(BOX, 12, 3, 900, 7, 0, 0)
    about_other = ReportBlock(0x999, 0, 0, 1, 0, 0, 0)
    data = serialize_compound(
        [
            ReceiverReport(PHONE, (about_other, about_us)),
            SourceDescription(((PHONE, ((1, b"ph"),)),)),
        ]
    )
    s.rtcp_received(data, 101.0)
    assert s.remote_reports == {PHONE: about_us}
    assert s.remote_cname == b"ph"
    assert not s.peer_left
    s.rtcp_received(serialize_compound([ReceiverReport(PHONE), Goodbye((PHONE,))]), 102.0)
    assert s.peer_left


def test_invalid_rtcp_from_the_phone_raises_rtcp_error_and_changes_nothing() -> None:
    s = session()
    with pytest.raises(RtcpError):
        s.rtcp_received(SDES_CNAME, 101.0)
    assert s.remote_cname is None


def test_bye_ends_the_session() -> None:
    s = session()
    s.report(101.0)
    data = s.bye(102.0, "call ended")
    assert data is not None
    packets = parse_compound(data)
    assert isinstance(packets[0], ReceiverReport)
    assert isinstance(packets[1], SourceDescription)
    assert packets[2] == Goodbye((BOX,), b"call ended")
    assert s.bye(103.0) is None  # once
    assert s.handle_timer(1000.0) is None  # and no reports after it


def test_no_bye_from_a_session_that_never_sent_anything() -> None:
    """§6.3.7: a participant that never sent RTP or RTCP must not send BYE."""
    s = session()
    s.rtp_received(PHONE, 1, 0, 100.0)
    assert s.bye(100.5) is None


def test_bye_after_rtp_only() -> None:
    s = session()
    s.rtp_sent(0, 0, 100.0)
    data = s.bye(100.5)
    assert data is not None and isinstance(parse_compound(data)[0], SenderReport)


def test_cname_is_random_per_session() -> None:
    a = RtcpSession(1, 8000, 0.0)
    b = RtcpSession(1, 8000, 0.0)
    assert a.cname != b.cname and len(a.cname) == 16  # RFC 7022: 96 random bits, base64
