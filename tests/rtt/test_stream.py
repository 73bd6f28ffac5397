"""RTP framing for a text stream (RFC 3550 §5.1) around the sender and receiver."""

from __future__ import annotations

from appliance.rtt.receiver import RttReceiver
from appliance.rtt.sender import RttSender
from appliance.rtt.stream import RtpPacket, RtpTextStream, feed_datagram
from tests.rtt.vectors import RED_PT, RED_SEQ_102, SSRC, T140_PT


def test_vector_1_parses_with_the_media_layers_packet() -> None:
    packet = RtpPacket.parse(RED_SEQ_102)
    assert (packet.payload_type, packet.sequence, packet.timestamp, packet.ssrc) == (
        RED_PT,
        102,
        1600,
        SSRC,
    )
    assert not packet.marker
    assert packet.payload == RED_SEQ_102[12:]
    assert packet.serialize() == RED_SEQ_102


def test_stream_numbers_packets_consecutively_across_the_wrap() -> None:
    stream = RtpTextStream(RttSender(T140_PT, RED_PT), SSRC, first_seq=0xFFFE)
    stream.sender.write("a", 0.0)
    seqs = []
    now = 0.0
    while True:
        seqs += [p.sequence for p in stream.poll(now)]
        deadline = stream.next_deadline()
        if deadline is None:
            break
        now = deadline
    assert seqs == [0xFFFE, 0xFFFF, 0]


def test_feed_datagram_counts_garbage() -> None:
    receiver = RttReceiver(T140_PT, RED_PT)
    assert not feed_datagram(receiver, b"garbage", 0.0)
    assert not feed_datagram(receiver, b"\x40" + b"\x00" * 11, 0.0)
    assert receiver.stats.malformed == 2
