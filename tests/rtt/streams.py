"""Helpers that make real RFC 4103 packet streams with the sender, for receiver tests."""

from __future__ import annotations

from collections.abc import Iterable

from appliance.rtt.receiver import Origin, ReceivedBlock, RttReceiver
from appliance.rtt.sender import RttSender
from appliance.rtt.stream import RtpPacket, RtpTextStream, feed_datagram
from appliance.rtt.t140 import BOM, LOSS_MARK_BYTES
from tests.rtt.vectors import RED_PT, SSRC, T140_PT

Timed = list[tuple[float, RtpPacket]]
BOM_BYTES = BOM.encode()


def send(
    writes: Iterable[tuple[float, str]],
    *,
    generations: int = 2,
    red: bool = True,
    first_seq: int = 98,
    ssrc: int = SSRC,
    timestamp_base: int = 0,
    keepalive: float | None = None,
    until: float = 1000.0,
    bom: bool = True,
) -> Timed:
    """The packets an :class:`RttSender` sends for ``writes``, with their send times; with
    ``bom`` the first write starts with the BOM a session's text starts with."""
    sender = RttSender(
        T140_PT,
        RED_PT if red else None,
        generations=generations,
        cps=None,
        keepalive=keepalive,
        timestamp_base=timestamp_base,
    )
    stream = RtpTextStream(sender, ssrc, first_seq)
    pending = sorted(writes, key=lambda write: write[0])
    if bom and pending:
        pending[0] = (pending[0][0], BOM + pending[0][1])
    out: Timed = []
    now = 0.0
    while True:
        while pending and pending[0][0] <= now:
            sender.write(pending.pop(0)[1], now)
        out.extend((now, packet) for packet in stream.poll(now))
        times = [t for t in (stream.next_deadline(),) if t is not None]
        if pending:
            times.append(pending[0][0])
        if not times or min(times) > until:
            return out
        now = max(now, min(times))


def rtp(pt: int, seq: int, ts: int, payload: bytes, marker: bool = False) -> RtpPacket:
    """A packet of the vectors' SSRC."""
    return RtpPacket(
        payload_type=pt, sequence=seq, timestamp=ts, ssrc=SSRC, marker=marker, payload=payload
    )


def receiver(generations: int = 2, *, red: bool = True, hold: float = 1.0) -> RttReceiver:
    """A receiver for the vectors' payload types."""
    return RttReceiver(T140_PT, RED_PT if red else None, generations=generations, hold=hold)


def feed(rx: RttReceiver, packet: RtpPacket | bytes, now: float) -> list[ReceivedBlock]:
    """Feed one packet (or datagram) and return what became ready."""
    data = packet.serialize() if isinstance(packet, RtpPacket) else packet
    assert feed_datagram(rx, data, now)
    return rx.poll(now)


def shown(blocks: Iterable[ReceivedBlock]) -> bytes:
    """The byte stream a receiver's blocks make (a lost block is its U+FFFD), BOMs left
    out."""
    return b"".join(block.data for block in blocks).replace(BOM_BYTES, b"")


def fates(blocks: Iterable[ReceivedBlock]) -> list[tuple[int, bytes, Origin]]:
    """(seq, data, origin) per block."""
    return [(block.seq, block.data, block.origin) for block in blocks]


MARK = LOSS_MARK_BYTES
