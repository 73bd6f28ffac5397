"""RTP framing for one text stream: sequence numbers and SSRC around the sans-I/O cores.

:class:`RttSender` decides payloads and timestamps; :class:`RtpTextStream` numbers them
(consecutively, as RFC 4103 §4.2 needs) and frames them as RTP packets (RFC 3550 §5.1).
:func:`feed_datagram` parses a received datagram into :meth:`RttReceiver.feed`.

:class:`RtpPacket` is the minimal fixed-header codec these need; it mirrors the
``RtpPacket.parse``/``serialize`` shape of the shared media layer so the two can be
swapped by changing one import.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from appliance.rtt.receiver import RttReceiver
from appliance.rtt.sender import RttSender

_HEADER = struct.Struct("!BBHII")


class RtpError(ValueError):
    """A datagram that is not a well-formed RTP packet (RFC 3550 §5.1)."""


@dataclass(frozen=True)
class RtpPacket:
    """An RTP packet: the fixed header fields and the payload (CSRCs and extensions are
    skipped on parsing and never written)."""

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse a datagram (RFC 3550 §5.1, §5.3.1 extension, padding in the last byte)."""
        if len(data) < _HEADER.size:
            raise RtpError(f"{len(data)} bytes is shorter than an RTP header")
        first, second, seq, ts, ssrc = _HEADER.unpack_from(data)
        if first >> 6 != 2:
            raise RtpError(f"RTP version {first >> 6} is not 2")
        pos = _HEADER.size + 4 * (first & 0x0F)
        end = len(data)
        if first & 0x20:
            if end == pos or data[-1] == 0 or data[-1] > end - pos:
                raise RtpError("RTP padding length does not fit the packet")
            end -= data[-1]
        if first & 0x10:
            if pos + 4 > end:
                raise RtpError("RTP header extension is truncated")
            pos += 4 + 4 * int.from_bytes(data[pos + 2 : pos + 4], "big")
        if pos > end:
            raise RtpError("RTP header runs past the end of the packet")
        return cls(second & 0x7F, seq, ts, ssrc, bytes(data[pos:end]), bool(second & 0x80))

    def serialize(self) -> bytes:
        """The datagram: version 2, no padding, no extension, no CSRC."""
        second = (0x80 if self.marker else 0) | (self.payload_type & 0x7F)
        header = _HEADER.pack(
            0x80, second, self.sequence_number & 0xFFFF, self.timestamp & 0xFFFFFFFF, self.ssrc
        )
        return header + self.payload


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
                RtpPacket(out.pt, self._seq, out.timestamp, self.ssrc, out.payload, out.marker)
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
    receiver.feed(
        packet.sequence_number,
        packet.timestamp,
        packet.payload,
        packet.payload_type,
        now,
        ssrc=packet.ssrc,
        marker=packet.marker,
    )
    return True
