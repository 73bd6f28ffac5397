"""Cutting SIP messages out of a TCP/TLS byte stream (RFC 3261 §18.3, RFC 5626 §3.5.1).

On a stream, a message ends after its header block plus Content-Length body bytes
(Content-Length is mandatory there). CRLFs between messages are ignored (§7.5); a
double CRLF is an RFC 5626 keepalive "ping" that the receiver answers with one CRLF.
After a framing error the stream cannot be resynchronised: the connection is closed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from appliance.sip.message import DEFAULT_LIMITS, Limits

_LENGTH = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(\S*)[ \t]*$", re.IGNORECASE | re.M)


@dataclass(frozen=True)
class Framed:
    """One complete message's bytes."""

    data: bytes


@dataclass(frozen=True)
class Ping:
    """A CRLFCRLF keepalive; answer with a single CRLF (RFC 5626 §3.5.1)."""


@dataclass(frozen=True)
class FramingError:
    """The stream is unusable; ``head`` holds the header block when there was one."""

    reason: str
    head: bytes = b""


StreamEvent = Framed | Ping | FramingError


class StreamFramer:
    """Feed bytes in, get whole messages out."""

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self._buffer = bytearray()
        self._failed = False
        self._blank_lines = 0  # line feeds seen between messages, across reads

    def feed(self, data: bytes) -> list[StreamEvent]:
        """Add received bytes; return every event they complete."""
        if self._failed:
            return []
        self._buffer += data
        events: list[StreamEvent] = []
        while True:
            event = self._next()
            if event is None:
                break
            events.append(event)
            if isinstance(event, FramingError):
                self._failed = True
                self._buffer.clear()
                break
        return events

    def _next(self) -> StreamEvent | None:
        buf = self._buffer
        while buf and buf[0] in b"\r\n":
            if buf[0] == 0x0A:
                self._blank_lines += 1
            del buf[0]
            if self._blank_lines == 2:
                self._blank_lines = 0
                return Ping()
        if not buf:
            return None
        self._blank_lines = 0
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > self.limits.max_size:
                return FramingError(f"no end of header within {self.limits.max_size} bytes")
            return None
        head = bytes(buf[:end])
        match = _LENGTH.search(head)
        if match is None:
            return FramingError("Content-Length is required on stream transports", head)
        raw = match.group(1)
        if not raw.isdigit():
            return FramingError(f"bad Content-Length {raw[:20]!r}", head)
        length = int(raw)
        total = end + 4 + length
        if total > self.limits.max_size:
            return FramingError(f"message of {total} bytes exceeds {self.limits.max_size}", head)
        if len(buf) < total:
            return None
        message = bytes(buf[:total])
        del buf[:total]
        return Framed(message)

    @property
    def pending(self) -> int:
        """Bytes held waiting for the rest of a message."""
        return len(self._buffer)
