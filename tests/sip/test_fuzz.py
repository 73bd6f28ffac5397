"""Hypothesis: no byte string makes the parser or the core raise (RFC 3261 §8.2, §18.3)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.sip.address import Peer
from appliance.sip.framing import StreamFramer
from appliance.sip.message import ParseError, parse_message
from tests.sip.scripted import Phone, harness

VALID = [
    Phone().request("INVITE", body=b"v=0\r\n"),
    Phone().request("REGISTER", "sip:box.example", to="<sip:1001@box.example>"),
    Phone().request("OPTIONS"),
    Phone().request("BYE", to_tag="x"),
    b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa\r\nFrom: <sip:a@b>;tag=1\r\n"
    b"To: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid message with bytes flipped, cut, duplicated or inserted."""
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "dup"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[pos : pos + draw(st.integers(1, 40))]
        elif op == "insert":
            data[pos:pos] = draw(
                st.sampled_from(
                    [
                        b"\r\n",
                        b" ",
                        b";",
                        b",",
                        b"<",
                        b">",
                        b'"',
                        b"\\",
                        b"%",
                        b":",
                        b"\x00",
                        b"\r\n ",
                        b"Via: SIP/2.0/UDP x\r\n",
                        b"Content-Length: 99\r\n",
                        b"\xff",
                    ]
                )
            )
        else:
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 60))]
    return bytes(data)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(mutated(), st.binary(max_size=400)))
def test_parser_raises_only_parse_errors(data: bytes) -> None:
    for stream in (False, True):
        try:
            message = parse_message(data, stream=stream)
        except ParseError:
            continue
        message.encode()  # whatever parsed can be written out again


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated(), min_size=1, max_size=6))
def test_core_never_raises_and_never_logs_an_internal_error(messages: list[bytes]) -> None:
    h = harness()
    source = Peer("udp", "192.0.2.10", 5062)
    for data in messages:
        h.core.receive(data, source, h.now)
        h.collect()
        h.advance(h.now + 1)
    assert "errors" not in h.core.stats  # the safety net in receive() never fired


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(mutated(), st.binary(max_size=64)), max_size=5), st.integers(1, 97))
def test_stream_framer_never_raises(chunks: list[bytes], size: int) -> None:
    framer = StreamFramer()
    stream = b"".join(chunks)
    for i in range(0, len(stream), size):
        framer.feed(stream[i : i + size])
