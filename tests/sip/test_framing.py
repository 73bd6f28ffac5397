"""Stream framing (RFC 3261 §18.3) and CRLF keepalives (RFC 5626 §3.5.1)."""

from __future__ import annotations

from appliance.sip.framing import Framed, FramingError, Ping, StreamFramer
from appliance.sip.message import Limits

MSG = b"OPTIONS sip:a@b SIP/2.0\r\nl: 5\r\n\r\nhello"


def test_messages_cut_at_any_byte_boundary() -> None:
    stream = b"\r\n" + MSG + MSG + b"\r\n\r\n" + MSG
    for size in (1, 2, 3, 7, 50, len(stream)):
        framer = StreamFramer()
        events = []
        for i in range(0, len(stream), size):
            events += framer.feed(stream[i : i + size])
        assert events == [Framed(MSG), Framed(MSG), Ping(), Framed(MSG)], size
        assert framer.pending == 0


def test_missing_or_bad_length_closes_the_stream() -> None:
    framer = StreamFramer()
    events = framer.feed(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n" + MSG)
    assert len(events) == 1 and isinstance(events[0], FramingError)
    assert events[0].head.startswith(b"OPTIONS")
    assert framer.feed(MSG) == []  # nothing more from a desynchronised stream
    bad = StreamFramer().feed(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n")
    assert isinstance(bad[0], FramingError) and "bad Content-Length" in bad[0].reason


def test_size_limits() -> None:
    framer = StreamFramer(Limits(max_size=64))
    events = framer.feed(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 1000\r\n\r\n")
    assert isinstance(events[0], FramingError)
    framer = StreamFramer(Limits(max_size=64))
    assert isinstance(framer.feed(b"x" * 65)[0], FramingError)
