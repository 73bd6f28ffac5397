"""SDES ``a=crypto`` (RFC 4568) and the SRTP contexts built from it (RFC 3711, RFC 7714)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.media.rtp import RtpPacket
from appliance.media.sdes import (
    KEY_SALT_LENGTHS,
    SUITES,
    CryptoAttribute,
    SdesError,
    SrtpContext,
    SrtpError,
    choose_answer,
    new_crypto,
)

# RFC 4568 §9.1 (the offer, then the answer). Folded lines joined as they are on the wire.
RFC_OFFER_1 = (
    "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4 "
    "FEC_ORDER=FEC_SRTP"
)
RFC_OFFER_2 = (
    "2 F8_128_HMAC_SHA1_80 inline:MTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5QUJjZGVm|2^20|1:4;"
    "inline:QUJjZGVmMTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5|2^20|2:4 FEC_ORDER=FEC_SRTP"
)
RFC_ANSWER = "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4"

# What desk phones (Yealink, Snom, Linphone) send: no lifetime or MKI.
PHONE = "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"


def key(n: int, fill: int = 7) -> str:
    """A base64 key-salt of ``n`` octets."""
    return base64.b64encode(bytes([fill]) * n).decode()


def test_rfc_4568_offer_lines_parse() -> None:
    first = CryptoAttribute.parse(RFC_OFFER_1)
    assert (first.tag, first.suite) == (1, "AES_CM_128_HMAC_SHA1_80")
    assert first.key_salt == base64.b64decode("WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz")
    assert len(first.key_salt) == 30
    assert (first.lifetime, first.mki, first.session_params) == (
        "2^20",
        "1:4",
        "FEC_ORDER=FEC_SRTP",
    )
    second = CryptoAttribute.parse(RFC_OFFER_2)
    assert (second.tag, second.suite) == (2, "F8_128_HMAC_SHA1_80")
    # Several key-params: the first one is the one used.
    assert second.key_salt == base64.b64decode("MTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5QUJjZGVm")
    assert second.mki == "1:4"


def test_rfc_4568_answer_line_parses_and_formats_back() -> None:
    answer = CryptoAttribute.parse(RFC_ANSWER)
    assert answer.key_salt == base64.b64decode("PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR")
    assert (answer.lifetime, answer.mki) == ("2^20", "1:4")
    assert str(answer) == RFC_ANSWER


def test_mki_and_session_parameters_make_a_line_unusable() -> None:
    """The box does not do MKIs or session parameters (§6.3): such lines are passed over."""
    assert CryptoAttribute.parse(PHONE).usable
    assert not CryptoAttribute.parse(RFC_ANSWER).usable  # MKI 1:4
    assert not CryptoAttribute.parse(RFC_OFFER_1).usable
    assert not CryptoAttribute.parse(RFC_OFFER_2).usable  # F8 is not a suite we run
    assert CryptoAttribute.parse(PHONE + "|2^31").usable  # a lifetime alone is fine
    assert CryptoAttribute.parse(PHONE + "|2^31").lifetime == "2^31"
    assert CryptoAttribute.parse(PHONE + "|1048576").lifetime == "1048576"
    assert not CryptoAttribute.parse(PHONE + " UNENCRYPTED_SRTP").usable


def test_unpadded_and_padded_base64_both_read() -> None:
    padded = "1 AEAD_AES_128_GCM inline:" + key(28)
    assert padded.endswith("=")
    assert CryptoAttribute.parse(padded).key_salt == bytes([7]) * 28
    assert CryptoAttribute.parse(padded.rstrip("=")).key_salt == bytes([7]) * 28


@pytest.mark.parametrize(
    ("suite", "length"),
    [
        ("AES_CM_128_HMAC_SHA1_80", 30),  # RFC 4568 §6.2.1: 128-bit key + 112-bit salt
        ("AES_CM_128_HMAC_SHA1_32", 30),
        ("AEAD_AES_128_GCM", 28),  # RFC 7714 §12: 128-bit key + 96-bit salt
        ("AEAD_AES_256_GCM", 44),  # RFC 7714 §12: 256-bit key + 96-bit salt
    ],
)
def test_key_length_is_checked_per_suite(suite: str, length: int) -> None:
    assert KEY_SALT_LENGTHS[suite] == length
    assert CryptoAttribute.parse(f"1 {suite} inline:{key(length)}").usable
    for wrong in {28, 30, 44, length - 1, length + 1} - {length}:
        assert not CryptoAttribute.parse(f"1 {suite} inline:{key(wrong)}").usable
    ours = new_crypto(3, suite)
    assert (ours.tag, ours.suite, len(ours.key_salt)) == (3, suite, length)
    assert ours.usable


@pytest.mark.parametrize(
    "value",
    [
        "",
        "1",
        "1 AES_CM_128_HMAC_SHA1_80",
        "x AES_CM_128_HMAC_SHA1_80 inline:" + key(30),
        "1234567890 AES_CM_128_HMAC_SHA1_80 inline:" + key(30),  # tag is 1*9DIGIT (§9.2)
        "1 AES_CM_128_HMAC_SHA1_80 uri:https://keys.example/1",
        "1 AES_CM_128_HMAC_SHA1_80 inline:not*base64!",
        "1 AES_CM_128_HMAC_SHA1_80 inline:abc=def",
        "1 AES_CM_128_HMAC_SHA1_80 inline:ÄÖÜ",
    ],
)
def test_malformed_lines_raise_sdes_error(value: str) -> None:
    with pytest.raises(SdesError):
        CryptoAttribute.parse(value)


@settings(deadline=None)
@given(
    st.text(max_size=120)
    | st.from_regex(r"\A\d{1,3} [A-Z_0-9]{1,30} inline:[A-Za-z0-9+/=|:^;]{0,60}( \S+)?\Z")
)
def test_parse_raises_only_sdes_error(value: str) -> None:
    try:
        attribute = CryptoAttribute.parse(value)
    except SdesError:
        return
    assert CryptoAttribute.parse(str(attribute)) == attribute


@settings(deadline=None)
@given(
    tag=st.integers(0, 999_999_999),
    suite=st.sampled_from(sorted(SUITES)),
    lifetime=st.sampled_from(["", "2^20", "2^31", "65536"]),
    data=st.data(),
)
def test_format_then_parse_round_trip(
    tag: int, suite: str, lifetime: str, data: st.DataObject
) -> None:
    key_salt = data.draw(
        st.binary(min_size=KEY_SALT_LENGTHS[suite], max_size=KEY_SALT_LENGTHS[suite])
    )
    attribute = CryptoAttribute(tag, suite, key_salt, lifetime)
    assert CryptoAttribute.parse(str(attribute)) == attribute
    assert "=" not in str(attribute)  # §9.2 inline key without base64 padding
    assert attribute.usable


def test_new_crypto_keys_are_fresh_and_suites_checked() -> None:
    a, b = new_crypto(1, "AES_CM_128_HMAC_SHA1_80"), new_crypto(1, "AES_CM_128_HMAC_SHA1_80")
    assert a.key_salt != b.key_salt
    with pytest.raises(SdesError, match="F8_128_HMAC_SHA1_80"):
        new_crypto(1, "F8_128_HMAC_SHA1_80")


def test_choose_answer_takes_the_first_usable_offer() -> None:
    offered = [
        CryptoAttribute.parse(RFC_OFFER_2),  # unsupported suite
        CryptoAttribute.parse(RFC_ANSWER.replace("1 AES", "2 AES")),  # MKI
        CryptoAttribute.parse("5 AES_CM_128_HMAC_SHA1_32 inline:" + key(29)),  # short key
        CryptoAttribute.parse("7 AES_CM_128_HMAC_SHA1_32 inline:" + key(30)),
        CryptoAttribute.parse("8 AES_CM_128_HMAC_SHA1_80 inline:" + key(30)),
    ]
    chosen = choose_answer(offered)
    assert chosen is not None
    theirs, ours = chosen
    assert theirs is offered[3]
    # §7.1.2: same tag and suite as the accepted line, our own fresh key.
    assert (ours.tag, ours.suite) == (7, "AES_CM_128_HMAC_SHA1_32")
    assert ours.usable and ours.key_salt != theirs.key_salt


def test_choose_answer_none_when_nothing_is_usable() -> None:
    assert choose_answer([]) is None
    assert (
        choose_answer([CryptoAttribute.parse(RFC_OFFER_1), CryptoAttribute.parse(RFC_OFFER_2)])
        is None
    )


# ----- SRTP between two contexts (RFC 3711) ---------------------------------------------

AUTH_TAG = {
    "AES_CM_128_HMAC_SHA1_80": 10,
    "AES_CM_128_HMAC_SHA1_32": 4,
    "AEAD_AES_128_GCM": 16,
    "AEAD_AES_256_GCM": 16,
}


def pair(suite: str) -> tuple[SrtpContext, SrtpContext]:
    a, b = new_crypto(1, suite), new_crypto(1, suite)
    return SrtpContext(a, b), SrtpContext(b, a)


def rtp(seq: int, payload: bytes = b"\xd5" * 160) -> bytes:
    return RtpPacket(0, seq, seq * 160, 0x1234, payload=payload).serialize()


@pytest.mark.parametrize("suite", sorted(AUTH_TAG))
def test_srtp_round_trip_per_suite(suite: str) -> None:
    alice, bob = pair(suite)
    for seq in range(1, 6):
        clear = rtp(seq, bytes([seq]) * 160)
        protected = alice.protect(clear)
        assert len(protected) == len(clear) + AUTH_TAG[suite]
        assert protected[:12] == clear[:12]  # the header stays readable (§3.1)
        assert protected[12:172] != clear[12:]  # the payload does not
        assert bob.unprotect(protected) == clear
    back = bob.protect(rtp(9))
    assert alice.unprotect(back) == rtp(9)


@pytest.mark.parametrize("suite", sorted(AUTH_TAG))
def test_tampering_is_detected(suite: str) -> None:
    alice, bob = pair(suite)
    protected = bytearray(alice.protect(rtp(1)))
    protected[20] ^= 0x01
    with pytest.raises(SrtpError):
        bob.unprotect(bytes(protected))
    header = bytearray(alice.protect(rtp(2)))
    header[2] ^= 0x80  # the authenticated header too
    with pytest.raises(SrtpError):
        bob.unprotect(bytes(header))
    assert bob.unprotect(alice.protect(rtp(3))) == rtp(3)  # the context survives


def test_replay_is_rejected() -> None:
    alice, bob = pair("AES_CM_128_HMAC_SHA1_80")
    protected = alice.protect(rtp(100))
    assert bob.unprotect(protected) == rtp(100)
    with pytest.raises(SrtpError, match="replay"):
        bob.unprotect(protected)


def test_wrong_key_fails() -> None:
    alice, _ = pair("AES_CM_128_HMAC_SHA1_80")
    _, stranger = pair("AES_CM_128_HMAC_SHA1_80")
    with pytest.raises(SrtpError):
        stranger.unprotect(alice.protect(rtp(1)))


@pytest.mark.parametrize("data", [b"", b"\x80", bytes(11), bytes(40), b"\x80\x00" + bytes(30)])
def test_garbage_raises_srtp_error(data: bytes) -> None:
    _, bob = pair("AES_CM_128_HMAC_SHA1_80")
    with pytest.raises(SrtpError):
        bob.unprotect(data)
    with pytest.raises(SrtpError):
        bob.unprotect_rtcp(data)


@pytest.mark.parametrize("suite", sorted(AUTH_TAG))
def test_srtcp_round_trip_and_tampering(suite: str) -> None:
    alice, bob = pair(suite)
    # An empty receiver report (RFC 3550 §6.4.2) followed by SDES CNAME "box".
    report = bytes.fromhex("80c90001 00001234 81ca0003 00001234 0103626f 78000000")
    protected = alice.protect_rtcp(report)
    assert bob.unprotect_rtcp(protected) == report
    tampered = bytearray(alice.protect_rtcp(report))
    tampered[10] ^= 0xFF
    with pytest.raises(SrtpError):
        bob.unprotect_rtcp(bytes(tampered))


def test_unusable_attributes_make_no_context() -> None:
    good = new_crypto(1, "AES_CM_128_HMAC_SHA1_80")
    with pytest.raises(SdesError):
        SrtpContext(good, CryptoAttribute.parse(RFC_ANSWER))
    with pytest.raises(SdesError):
        SrtpContext(CryptoAttribute(1, "AES_CM_128_HMAC_SHA1_80", b"short"), good)


def test_the_two_directions_may_use_different_suites() -> None:
    """Each side sends with its own line (§6.1); the answerer mirrors the suite, but a
    context keyed from two suites still works both ways."""
    a80 = new_crypto(1, "AES_CM_128_HMAC_SHA1_80")
    b32 = new_crypto(1, "AES_CM_128_HMAC_SHA1_32")
    alice, bob = SrtpContext(a80, b32), SrtpContext(b32, a80)
    assert bob.unprotect(alice.protect(rtp(1))) == rtp(1)
    assert alice.unprotect(bob.protect(rtp(2))) == rtp(2)
