"""URIs (RFC 3261 §19.1, RFC 3966)."""

from __future__ import annotations

import pytest

from appliance.sip.grammar import SipSyntaxError
from appliance.sip.uri import AbsoluteUri, SipUri, TelUri, parse_uri


def test_parts_and_round_trip() -> None:
    text = (
        "sips:alice:secret@[2001:db8::1]:5061;transport=tls;lr;maddr=239.255.255.1?subject=hi&x=y"
    )
    uri = SipUri.parse(text)
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == (
        "sips",
        "alice",
        "secret",
        "[2001:db8::1]",
        5061,
    )
    assert uri.params == {"transport": "tls", "lr": None, "maddr": "239.255.255.1"}
    assert uri.headers == "subject=hi&x=y"
    assert str(uri) == text
    assert uri.transport == "tls"


def test_user_part_may_hold_semicolons_and_escapes() -> None:
    uri = SipUri.parse("sip:user;par=u%40example.net@example.com")  # RFC 4475 §3.1.1.9
    assert uri.user == "user;par=u%40example.net"
    assert uri.user_unescaped == "user;par=u@example.net"
    assert uri.host == "example.com"


@pytest.mark.parametrize(
    "a,b",
    [
        ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
        (
            "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
            "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
        ),
    ],
)
def test_equivalent_pairs_from_rfc3261_19_1_4(a: str, b: str) -> None:
    assert SipUri.parse(a).equivalent(SipUri.parse(b))


@pytest.mark.parametrize(
    "a,b",
    [
        ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
        ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),
    ],
)
def test_not_equivalent_pairs_from_rfc3261_19_1_4(a: str, b: str) -> None:
    assert not SipUri.parse(a).equivalent(SipUri.parse(b))


@pytest.mark.parametrize(
    "text",
    [
        "sip:user@example.com; lr",
        "sip:",
        "sip:@example.com",
        "sip:a@b@c",
        "sip:host:99999",
        "sip:host:12x",
        "sip:[::1",
        "sip:bad host",
        "sip:user@-bad-.example",
        "http://x",
        "sip:user@example.com;%zz",
    ],
)
def test_rejected(text: str) -> None:
    with pytest.raises(SipSyntaxError):
        SipUri.parse(text)


def test_tel_and_other_schemes() -> None:
    tel = parse_uri("tel:+1-201-555-0123;ext=1234")
    assert isinstance(tel, TelUri)
    assert tel.digits == "+12015550123"
    assert str(tel) == "tel:+1-201-555-0123;ext=1234"
    with pytest.raises(SipSyntaxError):
        TelUri.parse("tel:5550123")  # a local number needs phone-context (RFC 3966 §5.1.5)
    other = parse_uri("mailto:someone@example.net")
    assert isinstance(other, AbsoluteUri) and other.scheme == "mailto"
    with pytest.raises(SipSyntaxError):
        parse_uri("mailto:someone@example.net", strict=True)
