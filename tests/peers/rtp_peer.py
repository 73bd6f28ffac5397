"""A phone's media end for tests: an RTP socket that sends a G.711 tone or RFC 4733
events and records what it receives (decoded audio, events)."""

from __future__ import annotations

import asyncio
import math
import os
import struct
import time
from dataclasses import dataclass, field
from typing import cast


def ulaw_encode(sample: int) -> int:
    """One 16-bit sample to µ-law (ITU-T G.711 §3)."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = 7
    mask = 0x4000
    while exponent > 0 and not magnitude & mask:
        exponent -= 1
        mask >>= 1
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | exponent << 4 | mantissa) & 0xFF


def ulaw_decode(code: int) -> int:
    """One µ-law byte to a 16-bit sample (ITU-T G.711 §3)."""
    code = ~code & 0xFF
    magnitude = (((code & 0x0F) << 3) + 0x84) << ((code >> 4) & 0x07)
    return 0x84 - magnitude if code & 0x80 else magnitude - 0x84


def ulaw_tone(frequency: float, seconds: float, rate: int = 8000) -> bytes:
    """A µ-law sine, as raw bytes (sipp's rtp_stream plays such a file)."""
    return bytes(
        ulaw_encode(int(10000 * math.sin(2 * math.pi * frequency * n / rate)))
        for n in range(int(seconds * rate))
    )


def goertzel(samples: list[int], frequency: float, rate: int = 8000) -> float:
    """Signal power at one frequency (Goertzel's algorithm)."""
    coefficient = 2 * math.cos(2 * math.pi * frequency / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coefficient * s1 - s2, s1
    return s1 * s1 + s2 * s2 - coefficient * s1 * s2


def dominant_frequency(samples: list[int], low: float, high: float, rate: int = 8000) -> float:
    """The strongest frequency in [low, high], scanned in 1 Hz steps."""
    best = max(range(int(low), int(high) + 1), key=lambda f: goertzel(samples, f, rate))
    return float(best)


EVENTS = "0123456789*#ABCD"


@dataclass
class Received:
    """What the peer got."""

    audio: list[tuple[int, bytes]] = field(default_factory=list)  # (payload type, payload)
    events: list[str] = field(default_factory=list)
    event_timestamps: set[int] = field(default_factory=set)
    sources: set[tuple[str, int]] = field(default_factory=set)
    last: float = 0.0
    rtcp: list[bytes] = field(default_factory=list)  # RFC 5761: muxed on the RTP port


class RtpPeer(asyncio.DatagramProtocol):
    """Binds a UDP port on loopback; the box's RTP for the phone lands here."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.received = Received()
        self.remote: tuple[str, int] | None = None
        self.ssrc = int.from_bytes(os.urandom(4), "big")
        self.sequence = 0
        self.timestamp = 0
        self._sender: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, port: int = 0) -> RtpPeer:
        loop = asyncio.get_running_loop()
        _, peer = await loop.create_datagram_endpoint(cls, local_addr=("127.0.0.1", port))
        return peer

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if len(data) >= 8 and data[0] >> 6 == 2 and 64 <= data[1] & 0x7F <= 95:
            self.received.rtcp.append(data)
            return
        if len(data) < 12 or data[0] >> 6 != 2:
            return  # noise
        self.received.sources.add((str(addr[0]), int(addr[1])))
        self.received.last = time.monotonic()
        pt = data[1] & 0x7F
        count = data[0] & 0x0F
        payload = data[12 + 4 * count :]
        timestamp = struct.unpack("!I", data[4:8])[0]
        if pt == 101 and len(payload) >= 4:
            if payload[1] & 0x80 and timestamp not in self.received.event_timestamps:
                self.received.event_timestamps.add(timestamp)
                self.received.events.append(EVENTS[payload[0]] if payload[0] < 16 else "?")
            return
        self.received.audio.append((pt, payload))

    def decoded(self, last_seconds: float = 1.0) -> list[int]:
        """The last ``last_seconds`` of received PCMU audio as samples."""
        chunks = [p for pt, p in self.received.audio if pt == 0]
        data = b"".join(chunks)[-int(8000 * last_seconds) :]
        return [ulaw_decode(b) for b in data]

    def _send(
        self, pt: int, payload: bytes, marker: bool = False, timestamp: int | None = None
    ) -> None:
        if self.transport is None or self.remote is None:
            return
        self.sequence = (self.sequence + 1) & 0xFFFF
        header = struct.pack(
            "!BBHII", 0x80, (0x80 if marker else 0) | pt, self.sequence,
            self.timestamp if timestamp is None else timestamp, self.ssrc,
        )  # fmt: skip
        self.transport.sendto(header + payload, self.remote)

    def start_tone(self, remote: tuple[str, int], frequency: float) -> None:
        """Send a PCMU tone in 20 ms packets until stopped."""
        self.remote = remote
        tone = ulaw_tone(frequency, 1.0)

        async def run() -> None:
            start = time.monotonic()
            n = 0
            while True:
                chunk = tone[(n * 160) % 8000 : (n * 160) % 8000 + 160]
                self._send(0, chunk, marker=n == 0)
                self.timestamp += 160
                n += 1
                await asyncio.sleep(max(0.0, start + n * 0.02 - time.monotonic()))

        self._sender = asyncio.get_running_loop().create_task(run())

    def stop_sending(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            self._sender = None

    async def send_event(self, digit: str, duration_ms: int = 160) -> None:
        """One RFC 4733 event: start with marker, updates, three end packets (§2.5.1)."""
        event = EVENTS.index(digit)
        start = self.timestamp
        for step in range(1, duration_ms // 20 + 1):
            self._send(
                101, struct.pack("!BBH", event, 10, step * 160), marker=step == 1, timestamp=start
            )
            await asyncio.sleep(0.02)
        for _ in range(3):
            self._send(101, struct.pack("!BBH", event, 0x80 | 10, duration_ms * 8), timestamp=start)

    def close(self) -> None:
        self.stop_sending()
        if self.transport is not None:
            self.transport.close()
