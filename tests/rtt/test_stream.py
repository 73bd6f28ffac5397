"""RTP framing for a text stream (RFC 3550 §5.1) around the sender and receiver."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.rtt.receiver import RttReceiver
from appliance.rtt.sender import RttSender
from appliance.rtt.stream import RtpError, RtpPacket, RtpTextStream, feed_datagram
from tests.rtt.vectors import RED_PT, RED_SEQ_102, SSRC, T140_PT


def test_vector_1_parses() -> None:
    packet = RtpPacket.parse(RED_SEQ_102)
    assert packet == RtpPacket(RED_PT, 102, 1600, SSRC, RED_SEQ_102[12:], False)
    assert packet.serialize() == RED_SEQ_102


def test_csrc_extension_and_padding_are_skipped() -> None:
    header = bytes([0x80 | 0x20 | 0x10 | 0x01, 0x80 | T140_PT]) + b"\x00\x07" + b"\x00" * 8
    csrc = b"\x00\x00\x00\x01"
    extension = b"\xbe\xde\x00\x01" + b"\x01\x02\x03\x04"
    data = header + csrc + extension + b"hi" + b"\x00\x00\x03"
    packet = RtpPacket.parse(data)
    assert (packet.payload, packet.sequence_number, packet.marker) == (b"hi", 7, True)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\x80\x62\x00", "shorter than an RTP header"),
        (b"\x40" + b"\x00" * 11, "version 1"),
        (b"\xa0\x62" + b"\x00" * 10, "padding"),
        (b"\xa0\x62" + b"\x00" * 10 + b"a\x05", "padding"),
        (b"\x90\x62" + b"\x00" * 10 + b"\x00\x00", "extension is truncated"),
        (b"\x90\x62" + b"\x00" * 10 + b"\x00\x00\x00\x05", "runs past"),
        (b"\x8f\x62" + b"\x00" * 10, "runs past"),
    ],
)
def test_malformed_datagrams(data: bytes, why: str) -> None:
    with pytest.raises(RtpError, match=why):
        RtpPacket.parse(data)


@given(st.binary(max_size=40))
def test_any_datagram_parses_or_raises_rtp_error(data: bytes) -> None:
    try:
        packet = RtpPacket.parse(data)
    except RtpError:
        return
    assert len(packet.payload) <= len(data) - 12
    assert packet.payload in data
    assert packet.serialize()[12:] == packet.payload


def test_stream_numbers_packets_consecutively_across_the_wrap() -> None:
    stream = RtpTextStream(RttSender(T140_PT, RED_PT), SSRC, first_seq=0xFFFE)
    stream.sender.write("a", 0.0)
    seqs = []
    now = 0.0
    while True:
        seqs += [p.sequence_number for p in stream.poll(now)]
        deadline = stream.next_deadline()
        if deadline is None:
            break
        now = deadline
    assert seqs == [0xFFFE, 0xFFFF, 0]


def test_feed_datagram_counts_garbage() -> None:
    receiver = RttReceiver(T140_PT, RED_PT)
    assert not feed_datagram(receiver, b"garbage", 0.0)
    assert receiver.stats.malformed == 1
