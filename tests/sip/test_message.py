"""Message parsing and serialization (RFC 3261 §7, §18.3, §20, §25)."""

from __future__ import annotations

import pytest

from appliance.sip.grammar import SipSyntaxError
from appliance.sip.headers import CSeq, Headers, NameAddr, Via, canonical_name
from appliance.sip.message import (
    Limits,
    ParseError,
    Request,
    Response,
    make_response,
    parse_message,
)
from appliance.sip.uri import SipUri

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds, "
    b"SIP/2.0/TCP proxy.example.com:5070;branch=z9hG4bKnashds8;received=192.0.2.1\r\n"
    b"Max-Forwards: 70\r\n"
    b'To: "Bob" <sip:bob@biloxi.example.com>\r\n'
    b"f: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"i: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"m: <sip:alice@pc33.atlanta.example.com>\r\n"
    b"c: application/sdp\r\n"
    b"l: 4\r\n\r\n"
    b"v=0\r\n"
)


def test_parse_request_with_compact_forms_and_lists() -> None:
    request = parse_message(INVITE)
    assert isinstance(request, Request)
    assert request.method == "INVITE"
    assert request.uri == SipUri.parse("sip:bob@biloxi.example.com")
    assert request.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert request.cseq == CSeq(314159, "INVITE")
    assert request.from_.display_name == "Alice" and request.from_.tag == "1928301774"
    assert request.to.display_name == "Bob" and request.to.tag is None
    vias = request.vias
    assert [v.transport for v in vias] == ["UDP", "TCP"]
    assert vias[1].port == 5070 and vias[1].params["received"] == "192.0.2.1"
    assert request.content_type == "application/sdp"
    assert request.body == b"v=0\r"  # Content-Length 4: the extra datagram byte is dropped


def test_round_trip_keeps_meaning() -> None:
    request = parse_message(INVITE)
    again = parse_message(request.encode())
    assert isinstance(again, Request)
    assert list(again.headers)[:-1] == list(request.headers)[:-1]
    assert again.body == request.body
    assert b"Content-Length: 4\r\n" in request.encode()
    assert b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n" in request.encode()


def test_response_and_empty_reason() -> None:
    response = parse_message(
        b"SIP/2.0 100 \r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n"
        b"CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    assert isinstance(response, Response)
    assert (response.status, response.reason) == (100, "")


@pytest.mark.parametrize(
    "data,fragment,status",
    [
        (b"INVITE  sip:a@b SIP/2.0\r\n\r\n", "malformed request line", 400),
        (b"INVITE sip:a@b SIP/2.0 \r\n\r\n", "malformed request line", 400),
        (b"INVITE <sip:a@b> SIP/2.0\r\n\r\n", "bad Request-URI", 400),
        (b"OPTIONS sip:a@b SIP/7.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n\r\n", "version", 505),
        (b"SIP/2.0 4294967301 big\r\n\r\n", "malformed status line", 400),
        (b"SIP/2.0 099 low\r\n\r\n", "out of range", 400),
        (b"OPTIONS sip:a@b SIP/2.0\r\nBad Header\r\n\r\n", "malformed header line", 400),
        (b"OPTIONS sip:a@b SIP/2.0\r\n continued\r\n\r\n", "continuation line", 400),
        (b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -999\r\n\r\n", "bad Content-Length", 400),
        (b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 9999\r\n\r\nabc", "is larger than", 400),
        (b"OPTIONS sip:a@b SIP/2.0\r\nl: 1\r\nContent-Length: 2\r\n\r\nab", "conflicting", 400),
    ],
)
def test_rejected_with_reason(data: bytes, fragment: str, status: int) -> None:
    with pytest.raises(ParseError) as caught:
        parse_message(data)
    assert fragment in caught.value.reason
    assert caught.value.status == status


def test_head_kept_for_a_400() -> None:
    with pytest.raises(ParseError) as caught:
        parse_message(
            b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n"
            b"Content-Length: 10\r\n\r\nshort"
        )
    assert caught.value.head is not None
    assert caught.value.head.top_via.branch == "z9hG4bKx"


def test_limits() -> None:
    small = Limits(max_size=100, max_headers=3, max_line=20)
    with pytest.raises(ParseError) as caught:
        parse_message(b"x" * 101, limits=small)
    assert caught.value.status == 513
    with pytest.raises(ParseError, match="more than 3 header lines"):
        parse_message(
            b"OPTIONS sip:a@b SIP/2.0\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\n\r\n", limits=small
        )
    with pytest.raises(ParseError, match="longer than 20"):
        parse_message(
            b"OPTIONS sip:a@b SIP/2.0\r\nSubject: " + b"x" * 30 + b"\r\n\r\n", limits=small
        )


def test_stream_requires_content_length() -> None:
    with pytest.raises(ParseError, match="required on stream"):
        parse_message(
            b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKx\r\n\r\n", stream=True
        )


def test_non_utf8_bytes_survive() -> None:
    data = b"OPTIONS sip:a@b SIP/2.0\r\nSubject: caf\xe9\r\nContent-Length: 0\r\n\r\n"
    message = parse_message(data)
    assert b"Subject: caf\xe9\r\n" in message.encode()


def test_make_response_copies_the_right_headers() -> None:
    request = parse_message(INVITE)
    assert isinstance(request, Request)
    request.headers.add("Timestamp", "54")
    trying = make_response(request, 100, "Trying", to_tag="abc")
    assert trying.headers.get("To") == '"Bob" <sip:bob@biloxi.example.com>'  # no tag on 100
    assert trying.headers.get("Timestamp") == "54"  # §8.2.6.1
    ok = make_response(request, 200, "OK", to_tag="abc")
    assert ok.to.tag == "abc"
    assert ok.headers.lines("Via") == request.headers.lines("Via")
    assert ok.cseq == request.cseq and ok.call_id == request.call_id
    assert "Timestamp" not in ok.headers


def test_headers_multimap() -> None:
    headers = Headers([("v", "SIP/2.0/UDP a"), ("Via", "SIP/2.0/UDP b, SIP/2.0/UDP c")])
    assert headers.values("VIA") == ["SIP/2.0/UDP a", "SIP/2.0/UDP b", "SIP/2.0/UDP c"]
    headers.prepend("Via", "SIP/2.0/UDP z")
    assert headers.lines("via")[0] == "SIP/2.0/UDP z"
    headers.set("Subject", "x")
    headers.set("subject", "y")
    assert headers.lines("Subject") == ["y"]
    headers.remove("via")
    assert "Via" not in headers
    assert canonical_name("i") == "Call-ID" and canonical_name("X-Custom") == "X-Custom"


@pytest.mark.parametrize(
    "text,display,params",
    [
        (
            '"J Rosenberg \\\\\\"" <sip:jdrosen@example.com>;tag=98asjd8',
            'J Rosenberg \\"',
            {"tag": "98asjd8"},
        ),
        ("caller<sip:caller@example.com>;tag=323", "caller", {"tag": "323"}),
        ("sip:+19725552222@gw1.example.net;unknownparam", None, {"unknownparam": None}),
        ("Bob  Smith <sip:bob@example.com>", "Bob Smith", {}),
    ],
)
def test_name_addr(text: str, display: str | None, params: dict[str, str | None]) -> None:
    address = NameAddr.parse(text)
    assert address.display_name == display
    assert address.params == params
    assert NameAddr.parse(str(address)) == address


@pytest.mark.parametrize(
    "text",
    [
        "Bell, Alexander <sip:a.g.bell@example.com>",
        '"unterminated <sip:a@b>',
        "< sip:t.watson@example.org >",
        "sip:a@b?x=y",
        "<sip:a@b",
    ],
)
def test_name_addr_rejected(text: str) -> None:
    with pytest.raises(SipSyntaxError):
        NameAddr.parse(text)


def test_via_with_white_space_everywhere() -> None:
    via = Via.parse("SIP  / 2.0  / TCP     spindle.example.com   ;  branch  =   z9hG4bK9ikj8")
    assert (via.transport, via.host, via.branch) == ("TCP", "spindle.example.com", "z9hG4bK9ikj8")
    assert str(Via.parse("SIP/2.0/UDP [2001:db8::9]:5080;branch=z9hG4bKa;rport")) == (
        "SIP/2.0/UDP [2001:db8::9]:5080;branch=z9hG4bKa;rport"
    )
    with pytest.raises(SipSyntaxError):
        Via.parse("SIP/2.0/UDP 192.0.2.15;;,;,,")
    with pytest.raises(SipSyntaxError):
        Via.parse("SIP/2.0/UDP host;branch=")


def test_cseq_bounds() -> None:
    assert CSeq.parse("0009 INVITE") == CSeq(9, "INVITE")
    with pytest.raises(SipSyntaxError):
        CSeq.parse(f"{2**31} INVITE")
    with pytest.raises(SipSyntaxError):
        CSeq.parse("1")
