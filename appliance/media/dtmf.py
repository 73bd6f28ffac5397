"""DTMF as RTP events (RFC 4733 §2.3): payloads, the sender's packet train, the receiver."""

from __future__ import annotations

import struct

EVENTS = "0123456789*#ABCD"  # event codes 0-15 (RFC 4733 §3.2)
VOLUME = 10  # -10 dBm0, a typical DTMF power level (§2.5.2.2)


def encode_event(event: int, end: bool, volume: int, duration: int) -> bytes:
    """``event | E R volume | duration`` (§2.3)."""
    return struct.pack("!BBH", event, (0x80 if end else 0) | (volume & 0x3F), duration & 0xFFFF)


def decode_event(payload: bytes) -> tuple[int, bool, int, int]:
    """(event, end, volume, duration); ValueError when too short (§2.3)."""
    if len(payload) < 4:
        raise ValueError("telephone-event payload shorter than 4 bytes")
    event, flags, duration = struct.unpack_from("!BBH", payload)
    return event, bool(flags & 0x80), flags & 0x3F, duration


class DtmfSender:
    """The packets of one digit: a start with marker, updates every 50 ms, three ends."""

    def __init__(self, duration_ms: int = 160, interval_ms: int = 50, clock_rate: int = 8000):
        self.duration_ms = duration_ms
        self.interval_ms = interval_ms
        self.clock_rate = clock_rate

    def packets(self, digit: str, timestamp: int) -> list[tuple[bool, int, bytes]]:
        """(marker, timestamp, payload) in sending order (§2.5.1.2, §2.5.1.4).

        ValueError unless ``digit`` is one of ``0-9 * # A-D`` (§3.2).
        """
        if len(digit) != 1 or digit.upper() not in EVENTS:
            raise ValueError(f"{digit!r} is not a DTMF digit")
        event = EVENTS.index(digit.upper())
        per_ms = self.clock_rate // 1000
        out: list[tuple[bool, int, bytes]] = []
        elapsed = self.interval_ms
        while elapsed < self.duration_ms:
            payload = encode_event(event, False, VOLUME, elapsed * per_ms)
            out.append((not out, timestamp, payload))
            elapsed += self.interval_ms
        end = encode_event(event, True, VOLUME, self.duration_ms * per_ms)
        out += [(not out, timestamp, end)] + [(False, timestamp, end)] * 2
        return out


class DtmfReceiver:
    """Reports each event once, at its first packet to arrive (§2.5.2).

    An event is known by its RTP timestamp (§2.5.1.1: every packet of one event carries
    the event's start). Any of its packets says a key was pressed, so losing the start,
    the updates or all three ends (§2.5.1.4) still reports the digit, and the repeats
    never report it twice. The relay tells the page of the press; it plays no tone, so
    the duration does not matter here.
    """

    def __init__(self) -> None:
        self._seen: list[int] = []

    def feed(self, timestamp: int, payload: bytes) -> str | None:
        """The digit when this packet is the first seen of a new event, else None."""
        try:
            event, _, _, _ = decode_event(payload)
        except ValueError:
            return None
        if event >= len(EVENTS) or timestamp in self._seen:
            return None
        self._seen = [*self._seen[-15:], timestamp]
        return EVENTS[event]
