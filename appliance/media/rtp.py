"""RTP packets (RFC 3550 §5.1) and the rewriting a relay needs between two legs.

The relay never touches payloads. :class:`StreamRewriter` gives the far leg one steady
stream — one SSRC, sequence numbers that never jump back, timestamps that keep time —
while the near leg's source changes under it (re-INVITE, hold/resume, a phone
restarting its stream), and maps payload-type numbers when the legs chose different
ones (RFC 3264 §5.1 lets each side number dynamic types its own way).
"""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass

FIXED_HEADER = struct.Struct("!BBHII")
"""The 12 octets every RTP packet starts with (RFC 3550 §5.1): V/P/X/CC, M/PT, sequence
number, timestamp, SSRC."""
AFTER_FIRST_OCTET = struct.Struct("!BHII")
"""The fixed header after its first octet (RFC 3550 §5.1): M/PT, sequence number,
timestamp, SSRC; for plain headers whose first octet was already looked at."""
_EXTENSION = struct.Struct("!HH")  # profile-defined bits and length in words (§5.3.1)
MAX_DROPOUT = 3000  # RFC 3550 A.1: a forward jump beyond this is a restarted stream
MAX_MISORDER = 100  # RFC 3550 A.1: a packet further behind than this is a restart too


class RtpError(ValueError):
    """Bytes that are not an RTP packet."""


def plain_payload_start(data: bytes) -> int:
    """Where the payload starts when the header is a plain one: no padding, no CSRCs and
    at most one header extension block (RFC 3550 §5.1, §5.3.1), what phones and browsers
    send; 0 for any other packet (for :meth:`RtpPacket.parse` to read or refuse)."""
    size = len(data)
    if size < 12:
        return 0
    first = data[0]
    if first == 0x80:
        return 12
    if first == 0x90 and size >= 16:
        end = 16 + 4 * (data[14] << 8 | data[15])
        return end if end <= size else 0
    return 0


def is_rtcp(data: bytes) -> bool:
    """RTCP on a multiplexed port: packet types 192-223 (RFC 5761 §4)."""
    return len(data) >= 2 and 64 <= (data[1] & 0x7F) <= 95


@dataclass(slots=True)
class RtpPacket:
    """One RTP packet; padding is removed when parsed."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    marker: bool = False
    payload: bytes = b""
    csrcs: tuple[int, ...] = ()
    extension: tuple[int, bytes] | None = None

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse a packet (RFC 3550 §5.1, §5.3.1); RtpError when it is not one."""
        if len(data) < 12:
            raise RtpError(f"{len(data)} bytes is shorter than an RTP header")
        first, second, sequence, timestamp, ssrc = FIXED_HEADER.unpack_from(data)
        if first >> 6 != 2:
            raise RtpError(f"RTP version {first >> 6}, expected 2")
        if first == 0x80:  # no padding, extension or CSRCs: a phone's audio, every 20 ms
            return cls(second & 0x7F, sequence, timestamp, ssrc, second > 0x7F, data[12:])
        if first == 0x90 and (end := plain_payload_start(data)):  # a browser's audio
            block = (data[12] << 8 | data[13], data[16:end])
            marker, payload = second > 0x7F, data[end:]
            return cls(second & 0x7F, sequence, timestamp, ssrc, marker, payload, (), block)
        count = first & 0x0F
        offset = 12 + 4 * count
        if len(data) < offset:
            raise RtpError("truncated CSRC list")
        csrcs = struct.unpack_from(f"!{count}I", data, 12) if count else ()
        extension = None
        if first & 0x10:
            if len(data) < offset + 4:
                raise RtpError("truncated header extension")
            profile, words = _EXTENSION.unpack_from(data, offset)
            end = offset + 4 + 4 * words
            if len(data) < end:
                raise RtpError("truncated header extension")
            extension = (profile, data[offset + 4 : end])
            offset = end
        end = len(data)
        if first & 0x20:
            padding = data[-1]  # RFC 3550 §5.1: the last octet counts the padding
            if padding == 0 or offset + padding > end:
                raise RtpError("bad padding length")
            end -= padding
        marker, payload = second > 0x7F, data[offset:end]
        return cls(second & 0x7F, sequence, timestamp, ssrc, marker, payload, csrcs, extension)

    @property
    def sequence_number(self) -> int:
        """The sequence number under the name aiortc's receiver statistics read."""
        return self.sequence

    def serialize(self) -> bytes:
        """The packet's bytes (no padding); RtpError when a field does not fit (§5.1)."""
        if not 0 <= self.payload_type <= 127:
            raise RtpError(f"payload type {self.payload_type} does not fit in 7 bits")
        if not self.csrcs and self.extension is None:  # what a relay sends, every 20 ms
            try:
                header = FIXED_HEADER.pack(
                    0x80,
                    (0x80 if self.marker else 0) | self.payload_type,
                    self.sequence & 0xFFFF,
                    self.timestamp & 0xFFFFFFFF,
                    self.ssrc,
                )
            except struct.error:
                raise RtpError("SSRC and CSRC identifiers are 32-bit") from None
            return header + self.payload
        if len(self.csrcs) > 15:
            raise RtpError(f"{len(self.csrcs)} CSRCs, at most 15 fit")
        if not 0 <= self.ssrc <= 0xFFFFFFFF or not all(0 <= c <= 0xFFFFFFFF for c in self.csrcs):
            raise RtpError("SSRC and CSRC identifiers are 32-bit")
        if self.extension is not None and (
            not 0 <= self.extension[0] <= 0xFFFF or len(self.extension[1]) > 4 * 0xFFFF
        ):
            raise RtpError("header extension profile or length does not fit in 16 bits")
        first = 0x80 | len(self.csrcs) | (0x10 if self.extension is not None else 0)
        out = [
            FIXED_HEADER.pack(
                first,
                (0x80 if self.marker else 0) | self.payload_type,
                self.sequence & 0xFFFF,
                self.timestamp & 0xFFFFFFFF,
                self.ssrc,
            ),
            struct.pack(f"!{len(self.csrcs)}I", *self.csrcs),
        ]
        if self.extension is not None:
            profile, data = self.extension
            data += b"\0" * (-len(data) % 4)
            out.append(struct.pack("!HH", profile, len(data) // 4) + data)
        out.append(self.payload)
        return b"".join(out)


class StreamRewriter:
    """Forward one leg's packets as a single continuous stream on the other leg."""

    def __init__(self, clock_rate: int, payload_map: dict[int, int]) -> None:
        self.clock_rate = clock_rate
        self.payload_map = dict(payload_map)
        self.ssrc = secrets.randbits(32)
        self._sequence = secrets.randbits(16)
        self._timestamp = secrets.randbits(32)
        self._source: int | None = None
        self._last_in_seq = 0
        self._seq_offset = 0
        self._ts_offset = 0
        self._last_out_ts = self._timestamp
        self._last_time: float | None = None
        self.forwarded = 0
        self.dropped_payload_type = 0

    def set_payload_map(self, payload_map: dict[int, int]) -> None:
        """New payload-type numbers after a re-negotiation."""
        self.payload_map = dict(payload_map)

    def timestamp_at(self, now: float) -> int:
        """The outgoing timestamp that corresponds to wall-clock ``now``."""
        if self._last_time is None:
            return self._last_out_ts
        elapsed = max(0.0, now - self._last_time)
        return (self._last_out_ts + round(elapsed * self.clock_rate)) & 0xFFFFFFFF

    def next_sequence(self) -> int:
        """Take a sequence number for a packet this side makes (RFC 4733 events)."""
        self._sequence = (self._sequence + 1) & 0xFFFF
        self._seq_offset = (self._seq_offset + 1) & 0xFFFF
        return self._sequence

    def rewrite(self, packet: RtpPacket, now: float) -> RtpPacket | None:
        """The packet as the far leg gets it; None when its payload type is not relayed."""
        out = self.forward(packet, now)
        if out is None:
            return None
        payload_type, sequence, timestamp, marker = out
        return RtpPacket(payload_type, sequence, timestamp, self.ssrc, marker, packet.payload)

    def forward(self, packet: RtpPacket, now: float) -> tuple[int, int, int, bool] | None:
        """:meth:`rewrite` as numbers: the far leg's payload type, sequence number,
        timestamp and marker (its SSRC is :attr:`ssrc`); None when not relayed."""
        return self.forward_numbers(
            packet.payload_type, packet.sequence, packet.timestamp, packet.ssrc, packet.marker, now
        )

    def forward_numbers(  # noqa: PLR0917 - per packet: fields, no packet object
        self, in_payload_type: int, in_sequence: int, in_timestamp: int, ssrc: int, in_marker: bool,
        now: float,
    ) -> tuple[int, int, int, bool] | None:  # fmt: skip
        """:meth:`forward` for a packet given as its header fields."""
        payload_type = self.payload_map.get(in_payload_type)
        if payload_type is None:
            self.dropped_payload_type += 1
            return None
        jump = (in_sequence - self._last_in_seq) & 0xFFFF
        if ssrc != self._source or MAX_DROPOUT < jump < 0x10000 - MAX_MISORDER:
            # RFC 3550 §8.2/A.1: a new source or a restarted stream. Continue our numbering
            # and advance our clock by the wall time that passed.
            self._seq_offset = (self._sequence + 1 - in_sequence) & 0xFFFF
            self._ts_offset = (self.timestamp_at(now) - in_timestamp) & 0xFFFFFFFF
            if self._source is not None and self._last_time is not None:
                self._ts_offset = (self._ts_offset + 1) & 0xFFFFFFFF
            self._source = ssrc
            marker = True
        else:
            marker = in_marker
        sequence = (in_sequence + self._seq_offset) & 0xFFFF
        timestamp = (in_timestamp + self._ts_offset) & 0xFFFFFFFF
        if ((sequence - self._sequence) & 0xFFFF) < 0x8000:  # newest so far
            self._sequence = sequence
            self._last_out_ts = timestamp
            self._last_time = now
        self._last_in_seq = in_sequence
        self.forwarded += 1
        return payload_type, sequence, timestamp, marker
