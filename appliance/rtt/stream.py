"""RTP framing for one text stream: sequence numbers and SSRC around the sans-I/O cores.

:class:`RttSender` decides payloads and timestamps; :class:`RtpTextStream` numbers them
(consecutively, as RFC 4103 §4.2 needs) and frames them as RTP packets (RFC 3550 §5.1)
of the media layer. :func:`feed_packet` and :func:`feed_datagram` hand received packets
to :meth:`RttReceiver.feed`.
"""

from __future__ import annotations

from appliance.media.rtp import RtpError, RtpPacket
from appliance.rtt.receiver import RttReceiver
from appliance.rtt.sender import RttSender

__all__ = ["RtpError", "RtpPacket", "RtpTextStream", "feed_datagram", "feed_packet"]


class RtpTextStream:
    """Numbers and frames an :class:`RttSender`'s payloads for one SSRC.

    ``first_seq`` should be random (RFC 3550 §5.1); sequence numbers then increase by one
    per packet with no gaps, which RFC 4103's redundancy relies on (§4.2).
    """

    def __init__(self, sender: RttSender, ssrc: int, first_seq: int) -> None:
        self.sender = sender
        self.ssrc = ssrc & 0xFFFFFFFF
        self._seq = first_seq & 0xFFFF

    def poll(self, now: float) -> list[RtpPacket]:
        """The packets due at ``now``."""
        packets = []
        for out in self.sender.poll(now):
            packets.append(
                RtpPacket(
                    payload_type=out.pt,
                    sequence=self._seq,
                    timestamp=out.timestamp,
                    ssrc=self.ssrc,
                    marker=out.marker,
                    payload=out.payload,
                )
            )
            self._seq = (self._seq + 1) & 0xFFFF
        return packets

    def next_deadline(self) -> float | None:
        """The sender's next deadline."""
        return self.sender.next_deadline()


def feed_datagram(receiver: RttReceiver, data: bytes, now: float) -> bool:
    """Parse ``data`` and feed it to ``receiver``; False (and nothing fed) when malformed."""
    try:
        packet = RtpPacket.parse(data)
    except RtpError:
        receiver.stats.malformed += 1
        return False
    feed_packet(receiver, packet, now)
    return True


def feed_packet(receiver: RttReceiver, packet: RtpPacket, now: float) -> None:
    """Feed one parsed RTP packet to ``receiver``."""
    receiver.feed(
        packet.sequence,
        packet.timestamp,
        packet.payload,
        packet.payload_type,
        now,
        ssrc=packet.ssrc,
        marker=packet.marker,
    )
