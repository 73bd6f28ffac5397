"""RTCP toward a phone (RFC 3550 §6): the packets, reception statistics and the report
schedule of one RTP session, sans-I/O (times are passed in, bytes come out).

The relay ends RTCP on each leg rather than forwarding it: the two legs carry different
SSRCs, sequence numbers and timestamps, so one leg's reports mean nothing on the other.
The browser leg's reports are aiortc's own. Toward a phone this module makes the box an
ordinary participant: a receiver report (or a sender report while it sends) with a
CNAME every few seconds (§6.2, §6.4, §6.5.1), so phones that watch RTCP for liveness or
call quality see a live peer, and a BYE when the call ends (§6.6). The phone's reports
are read for the delay since its last sender report (§6.4.1 LSR/DLSR) and for what it
says about the stream the box sends.
"""

from __future__ import annotations

import base64
import math
import os
import random
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from appliance.media.rtp import MAX_DROPOUT, MAX_MISORDER

SR, RR, SDES, BYE, APP = 200, 201, 202, 203, 204  # §12.1
CNAME = 1  # §6.5.1
NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900 (NTP, §4) to 1970 (Unix)
MIN_INTERVAL = 5.0  # §6.2: the recommended minimum between reports
COMPENSATION = math.e - 1.5  # §6.3.1: for the timer reconsideration's bias
MAX_REPORT_BLOCKS = 31  # five bits of report count (§6.4.1)

_HEADER = struct.Struct("!BBH")
_BLOCK = struct.Struct("!IB3sIIII")
_SENDER_INFO = struct.Struct("!QIII")


class RtcpError(ValueError):
    """Bytes that are not a valid compound RTCP packet (RFC 3550 §6.1, A.2)."""


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """What a receiver says about one source (§6.4.1)."""

    ssrc: int
    fraction_lost: int  # of 256, since the previous report
    cumulative_lost: int  # signed 24-bit: duplicates can make it negative
    highest_sequence: int  # extended: cycles << 16 | highest sequence number
    jitter: int  # in timestamp units
    lsr: int  # middle 32 bits of the NTP timestamp of the source's last SR, or 0
    dlsr: int  # delay since that SR, in 1/65536 s

    def serialize(self) -> bytes:
        lost = max(-0x800000, min(0x7FFFFF, self.cumulative_lost)) & 0xFFFFFF
        return _BLOCK.pack(
            self.ssrc, self.fraction_lost, lost.to_bytes(3, "big"),
            self.highest_sequence & 0xFFFFFFFF, self.jitter & 0xFFFFFFFF, self.lsr, self.dlsr,
        )  # fmt: skip

    @classmethod
    def parse(cls, data: bytes, offset: int) -> ReportBlock:
        ssrc, fraction, lost, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, offset)
        cumulative = int.from_bytes(lost, "big")
        if cumulative & 0x800000:
            cumulative -= 0x1000000
        return cls(ssrc, fraction, cumulative, highest, jitter, lsr, dlsr)


@dataclass(frozen=True, slots=True)
class SenderInfo:
    """A sender report's sender information (§6.4.1)."""

    ntp_timestamp: int  # 64-bit fixed point, seconds since 1900
    rtp_timestamp: int  # the same instant on the RTP clock
    packet_count: int
    octet_count: int  # payload octets only


@dataclass(frozen=True, slots=True)
class SenderReport:
    """SR, packet type 200 (§6.4.1)."""

    ssrc: int
    info: SenderInfo
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """RR, packet type 201 (§6.4.2)."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class SourceDescription:
    """SDES, packet type 202 (§6.5): per source, (item type, value) pairs."""

    chunks: tuple[tuple[int, tuple[tuple[int, bytes], ...]], ...]

    def cname(self, ssrc: int) -> bytes | None:
        """The CNAME item of ``ssrc``, if this packet carries one."""
        for source, items in self.chunks:
            if source == ssrc:
                for kind, value in items:
                    if kind == CNAME:
                        return value
        return None


@dataclass(frozen=True, slots=True)
class Goodbye:
    """BYE, packet type 203 (§6.6)."""

    sources: tuple[int, ...]
    reason: bytes = b""


@dataclass(frozen=True, slots=True)
class OtherRtcp:
    """APP, XR, feedback and other packet types: kept whole, not interpreted."""

    packet_type: int
    count: int
    body: bytes


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Goodbye | OtherRtcp


def _packet(packet_type: int, count: int, body: bytes) -> bytes:
    if len(body) % 4:
        raise ValueError("an RTCP packet body is whole 32-bit words")
    return _HEADER.pack(0x80 | count, packet_type, len(body) // 4) + body


def serialize(packet: RtcpPacket) -> bytes:
    """One RTCP packet, header included (§6.4-§6.6)."""
    if isinstance(packet, SenderReport | ReceiverReport):
        blocks = b"".join(b.serialize() for b in packet.reports[:MAX_REPORT_BLOCKS])
        count = min(len(packet.reports), MAX_REPORT_BLOCKS)
        if isinstance(packet, SenderReport):
            info = packet.info
            body = struct.pack("!I", packet.ssrc) + _SENDER_INFO.pack(
                info.ntp_timestamp & 0xFFFFFFFFFFFFFFFF, info.rtp_timestamp & 0xFFFFFFFF,
                info.packet_count & 0xFFFFFFFF, info.octet_count & 0xFFFFFFFF,
            )  # fmt: skip
            return _packet(SR, count, body + blocks)
        return _packet(RR, count, struct.pack("!I", packet.ssrc) + blocks)
    if isinstance(packet, SourceDescription):
        body = b""
        for ssrc, items in packet.chunks:
            chunk = struct.pack("!I", ssrc)
            for kind, value in items:
                chunk += bytes([kind, len(value[:255])]) + value[:255]
            chunk += b"\0" * (4 - len(chunk) % 4)  # at least one null octet ends the list
            body += chunk
        return _packet(SDES, len(packet.chunks), body)
    if isinstance(packet, Goodbye):
        body = b"".join(struct.pack("!I", s) for s in packet.sources)
        if packet.reason:
            reason = bytes([len(packet.reason[:255])]) + packet.reason[:255]
            body += reason + b"\0" * (-len(reason) % 4)
        return _packet(BYE, len(packet.sources), body)
    return _packet(packet.packet_type, packet.count, packet.body)


def serialize_compound(packets: Iterable[RtcpPacket]) -> bytes:
    """A compound packet: the packets back to back (§6.1)."""
    return b"".join(serialize(p) for p in packets)


def parse_compound(data: bytes) -> list[RtcpPacket]:
    """Parse a compound packet; RtcpError unless it passes the checks of RFC 3550 A.2:
    version 2 throughout, an SR or RR first, padding only in the last packet, and
    lengths that add up to the datagram."""
    packets: list[RtcpPacket] = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < 4:
            raise RtcpError("truncated RTCP header")
        first, packet_type, words = _HEADER.unpack_from(data, offset)
        end = offset + 4 + 4 * words
        if first >> 6 != 2:
            raise RtcpError(f"RTCP version {first >> 6}, expected 2")
        if end > len(data):
            raise RtcpError("RTCP length beyond the datagram")
        body = data[offset + 4 : end]
        if first & 0x20:
            if end != len(data):
                raise RtcpError("padding before the last packet of a compound")
            if not body or body[-1] == 0 or body[-1] > len(body):
                raise RtcpError("bad RTCP padding length")
            body = body[: -body[-1]]
        if not packets and packet_type not in (SR, RR):
            raise RtcpError(f"a compound packet starts with SR or RR, not type {packet_type}")
        packets.append(_parse_one(packet_type, first & 0x1F, bytes(body)))
        offset = end
    if not packets:
        raise RtcpError("empty RTCP datagram")
    return packets


def _parse_one(packet_type: int, count: int, body: bytes) -> RtcpPacket:
    if packet_type in (SR, RR):
        fixed = 24 if packet_type == SR else 4
        if len(body) < fixed + 24 * count:
            raise RtcpError(f"{'SR' if packet_type == SR else 'RR'} shorter than its reports")
        ssrc = struct.unpack_from("!I", body)[0]
        blocks = tuple(ReportBlock.parse(body, fixed + 24 * i) for i in range(count))
        if packet_type == RR:
            return ReceiverReport(ssrc, blocks)
        return SenderReport(ssrc, SenderInfo(*_SENDER_INFO.unpack_from(body, 4)), blocks)
    if packet_type == SDES:
        chunks = []
        offset = 0
        for _ in range(count):
            if offset + 4 > len(body):
                raise RtcpError("truncated SDES chunk")
            ssrc = struct.unpack_from("!I", body, offset)[0]
            offset += 4
            items = []
            while True:
                if offset >= len(body):
                    raise RtcpError("SDES chunk without its end")
                kind = body[offset]
                if kind == 0:
                    offset = (offset + 4) & ~3  # to the next 32-bit boundary
                    break
                if offset + 2 > len(body) or offset + 2 + body[offset + 1] > len(body):
                    raise RtcpError("truncated SDES item")
                length = body[offset + 1]
                items.append((kind, body[offset + 2 : offset + 2 + length]))
                offset += 2 + length
            chunks.append((ssrc, tuple(items)))
        return SourceDescription(tuple(chunks))
    if packet_type == BYE:
        if len(body) < 4 * count:
            raise RtcpError("BYE shorter than its sources")
        sources = struct.unpack_from(f"!{count}I", body)
        rest = body[4 * count :]
        reason = b""
        if rest:
            if 1 + rest[0] > len(rest):
                raise RtcpError("truncated BYE reason")
            reason = rest[1 : 1 + rest[0]]
        return Goodbye(tuple(sources), reason)
    return OtherRtcp(packet_type, count, body)


def ntp_timestamp(wall: float) -> int:
    """Unix time as a 64-bit NTP timestamp (§4)."""
    seconds = wall + NTP_UNIX_OFFSET
    whole = int(seconds)
    return (whole << 32 | int((seconds - whole) * (1 << 32))) & 0xFFFFFFFFFFFFFFFF


class ReceptionStats:
    """Reception statistics of one source (RFC 3550 A.1, A.3, A.8)."""

    def __init__(self, ssrc: int, clock_rate: int, sequence: int) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self._restart(sequence)
        self.jitter = 0.0
        self._transit: int | None = None
        self._last_timestamp: int | None = None

    def _restart(self, sequence: int) -> None:
        """A.1 init_seq."""
        self.base_seq = sequence
        self.max_seq = sequence
        self.bad_seq = 0x10001  # never a sequence number
        self.cycles = 0
        self.received = 0
        self.expected_prior = 0
        self.received_prior = 0

    def add(self, sequence: int, timestamp: int, arrival: float) -> bool:
        """Count one packet (A.1 update_seq); False when it looks like another stream."""
        delta = (sequence - self.max_seq) & 0xFFFF
        if delta < MAX_DROPOUT:
            if sequence < self.max_seq:
                self.cycles += 0x10000  # wrapped
            self.max_seq = sequence
        elif delta <= 0x10000 - MAX_MISORDER:
            if sequence != self.bad_seq:
                self.bad_seq = (sequence + 1) & 0xFFFF
                return False
            self._restart(sequence)  # two in a row: the source restarted
        # else: a duplicate or a late packet, counted but not moving max_seq
        self.received += 1
        if timestamp != self._last_timestamp:  # RFC 4733 events repeat a timestamp
            transit = int(arrival * self.clock_rate) - timestamp
            if self._transit is not None:
                d = ((transit - self._transit + 0x80000000) & 0xFFFFFFFF) - 0x80000000
                self.jitter += (abs(d) - self.jitter) / 16  # A.8
            self._transit = transit
            self._last_timestamp = timestamp
        return True

    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        return self.extended_max - self.base_seq + 1

    @property
    def lost(self) -> int:
        """Cumulative loss (A.3): negative when duplicates outnumber losses."""
        return self.expected - self.received

    def block(self, lsr: int = 0, dlsr: int = 0) -> ReportBlock:
        """The report block for this source, closing the interval (A.3)."""
        expected_interval = self.expected - self.expected_prior
        received_interval = self.received - self.received_prior
        self.expected_prior, self.received_prior = self.expected, self.received
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        return ReportBlock(
            ssrc=self.ssrc, fraction_lost=fraction, cumulative_lost=self.lost,
            highest_sequence=self.extended_max & 0xFFFFFFFF, jitter=int(self.jitter),
            lsr=lsr, dlsr=dlsr,
        )  # fmt: skip


class RtcpSession:
    """The box's RTCP participant in one RTP session toward a phone (sans-I/O).

    ``now`` is a monotonic clock in seconds; wall-clock time for the NTP timestamps of
    sender reports is ``now + wall_offset``.
    """

    def __init__(
        self,
        ssrc: int,
        clock_rate: int,
        now: float,
        *,
        cname: str | None = None,
        wall_offset: float | None = None,
        min_interval: float = MIN_INTERVAL,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        # RFC 7022 §4.2: a random CNAME of 96 bits, new for each session.
        self.cname = cname or base64.b64encode(os.urandom(12)).decode()
        self.wall_offset = time.time() - time.monotonic() if wall_offset is None else wall_offset
        self.min_interval = min_interval
        self._rand = rand
        self.sources: dict[int, ReceptionStats] = {}
        self._heard: list[int] = []
        self.packets_sent = 0
        self.octets_sent = 0
        self._anchor: tuple[int, float] | None = None  # (RTP timestamp, when) last sent
        self._sent_this_interval = False
        self._sent_last_interval = False
        self._their_sr: dict[int, tuple[int, float]] = {}
        self.remote_reports: dict[int, ReportBlock] = {}  # reporter -> block about us
        self.remote_cname: bytes | None = None
        self.peer_left = False
        self.reports_sent = 0
        self.closed = False
        self._sent_anything = False
        self._next = now + self._interval(initial=True)

    def _interval(self, *, initial: bool = False) -> float:
        """§6.3.1 and §6.2: for two members the minimum interval applies (halved for the
        first report), spread over [0.5, 1.5] of it and divided by e - 3/2."""
        base = self.min_interval / 2 if initial else self.min_interval
        return base * (0.5 + self._rand()) / COMPENSATION

    # ----- what the endpoint tells the session ---------------------------------------------

    def rtp_received(self, ssrc: int, sequence: int, timestamp: int, now: float) -> None:
        """A valid RTP packet from the phone: its SSRC, sequence number and timestamp."""
        stats = self.sources.get(ssrc)
        if stats is None:
            stats = self.sources[ssrc] = ReceptionStats(ssrc, self.clock_rate, sequence)
        if stats.add(sequence, timestamp, now) and ssrc not in self._heard:
            self._heard.append(ssrc)

    def rtp_sent(self, timestamp: int, payload_size: int, now: float) -> None:
        """An RTP packet the box sent to the phone: its timestamp and payload octets."""
        self.packets_sent += 1
        self.octets_sent += payload_size  # RFC 3550 §6.4.1: payload octets only
        self._sent_this_interval = self._sent_anything = True
        if self._anchor is None or timestamp != self._anchor[0]:
            self._anchor = (timestamp, now)

    def rtcp_received(self, data: bytes, now: float) -> list[RtcpPacket]:
        """A compound RTCP packet from the phone (already SRTCP-verified); RtcpError if
        it is not valid."""
        packets = parse_compound(data)
        for packet in packets:
            if isinstance(packet, SenderReport):
                lsr = (packet.info.ntp_timestamp >> 16) & 0xFFFFFFFF
                self._their_sr[packet.ssrc] = (lsr, now)
            if isinstance(packet, SenderReport | ReceiverReport):
                for block in packet.reports:
                    if block.ssrc == self.ssrc:
                        self.remote_reports[packet.ssrc] = block
            elif isinstance(packet, SourceDescription):
                for ssrc, _ in packet.chunks:
                    if ssrc != self.ssrc:
                        self.remote_cname = packet.cname(ssrc) or self.remote_cname
            elif isinstance(packet, Goodbye) and self.ssrc not in packet.sources:
                self.peer_left = True
        return packets

    # ----- what the session sends -----------------------------------------------------------

    def get_timer(self) -> float:
        """When the next report is due (monotonic seconds)."""
        return self._next

    def handle_timer(self, now: float) -> bytes | None:
        """The report to send if one is due, else None."""
        if self.closed or now < self._next:
            return None
        self._next = now + self._interval()
        return self.report(now)

    def report(self, now: float, extra: Iterable[RtcpPacket] = ()) -> bytes:
        """A compound packet: SR or RR, then SDES CNAME (§6.1), then ``extra``."""
        blocks = []
        for ssrc in self._heard[:MAX_REPORT_BLOCKS]:
            lsr, dlsr = 0, 0
            if ssrc in self._their_sr:
                lsr, at = self._their_sr[ssrc]
                dlsr = min(0xFFFFFFFF, int((now - at) * 65536))
            blocks.append(self.sources[ssrc].block(lsr, dlsr))
        self._heard = self._heard[MAX_REPORT_BLOCKS:]
        first: RtcpPacket
        if self._sent_this_interval or self._sent_last_interval:  # §6.4
            first = SenderReport(self.ssrc, self._sender_info(now), tuple(blocks))
        else:
            first = ReceiverReport(self.ssrc, tuple(blocks))
        self._sent_last_interval, self._sent_this_interval = self._sent_this_interval, False
        sdes = SourceDescription(((self.ssrc, ((CNAME, self.cname.encode()),)),))
        self.reports_sent += 1
        self._sent_anything = True
        return serialize_compound([first, sdes, *extra])

    def _sender_info(self, now: float) -> SenderInfo:
        rtp_timestamp = 0
        if self._anchor is not None:
            timestamp, at = self._anchor
            rtp_timestamp = (timestamp + round((now - at) * self.clock_rate)) & 0xFFFFFFFF
        return SenderInfo(
            ntp_timestamp(now + self.wall_offset), rtp_timestamp,
            self.packets_sent & 0xFFFFFFFF, self.octets_sent & 0xFFFFFFFF,
        )  # fmt: skip

    def bye(self, now: float, reason: str = "") -> bytes | None:
        """The last compound packet, ending with BYE (§6.6); None when the box never sent
        RTP or RTCP in this session, which then must not send BYE (§6.3.7)."""
        if self.closed:
            return None
        self.closed = True
        if not self._sent_anything:
            return None
        return self.report(now, [Goodbye((self.ssrc,), reason.encode()[:255])])
