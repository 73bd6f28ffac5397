"""SDP parsing and serialization (RFC 8866) and the offer/answer helpers (RFC 3264)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.media.codecs import OPUS, PCMU, codec_of
from appliance.media.sdp import (
    Media,
    RtpMap,
    SdpError,
    SessionDescription,
    answer_direction,
    new_session,
    rejected_copy,
)

# What liblinphone and a typical desk phone put in an offer (audio + text + video).
OFFER = (
    "v=0\r\no=1001 123 456 IN IP4 192.0.2.10\r\ns=Talk\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
    "a=sendrecv\r\n"
    "m=audio 4000 RTP/AVP 96 0 8 101\r\na=rtpmap:96 opus/48000/2\r\na=fmtp:96 useinbandfec=1\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=rtcp:4001\r\n"
    "m=text 4002 RTP/AVP 98 100\r\na=rtpmap:98 t140/1000\r\na=rtpmap:100 red/1000\r\n"
    "a=fmtp:100 98/98/98\r\n"
    "m=video 0 RTP/AVP 31\r\n"
    "m=audio 4010 RTP/SAVP 0\r\nc=IN IP4 192.0.2.11\r\na=sendonly\r\n"
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 "
    "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:32\r\n"
)


def test_parse_and_round_trip() -> None:
    sdp = SessionDescription.parse(OFFER)
    assert str(sdp) == OFFER
    assert [m.kind for m in sdp.media] == ["audio", "text", "video", "audio"]
    audio, text, video, secure = sdp.media
    assert audio.rtpmaps[96] == RtpMap(96, "opus", 48000, 2)
    assert audio.rtpmaps[0] == RtpMap(0, "PCMU", 8000)  # static, no rtpmap line
    assert audio.fmtp(101) == "0-15" and audio.attribute("rtcp") == "4001"
    assert codec_of(audio.rtpmaps[96]) == OPUS and codec_of(audio.rtpmaps[0]) == PCMU
    assert text.fmtp(100) == "98/98/98"
    assert video.rejected and not audio.rejected
    assert sdp.media_connection(audio) == "192.0.2.10"
    assert sdp.media_connection(secure) == "192.0.2.11"
    assert sdp.media_direction(audio) == "sendrecv"  # from the session level
    assert sdp.media_direction(secure) == "sendonly"
    assert (
        secure.attribute(
            "crypto",
        )
        is not None
    )
    assert sdp.origin[1:3] == ("123", "456")


def test_bare_lf_and_bytes() -> None:
    sdp = SessionDescription.parse(OFFER.replace("\r\n", "\n").encode())
    assert len(sdp.media) == 4
    assert sdp.encode() == OFFER.encode()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "o=x 1 1 IN IP4 1.2.3.4\r\n",
        "v=0\r\n",
        "v=0\r\no=x 1 1 IN IP4 h\r\nm=audio x RTP/AVP 0\r\n",
        "v=0\r\no=x 1 1 IN IP4 h\r\nbad line\r\n",
    ],
)
def test_rejected(text: str) -> None:
    with pytest.raises(SdpError):
        SessionDescription.parse(text)


def test_not_utf8() -> None:
    with pytest.raises(SdpError, match="UTF-8"):
        SessionDescription.parse(b"v=0\r\no=\xff 1 1 IN IP4 h\r\n")


@pytest.mark.parametrize(
    "offered,wanted,answer",
    [
        ("sendrecv", "sendrecv", "sendrecv"),
        ("sendonly", "sendrecv", "recvonly"),
        ("recvonly", "sendrecv", "sendonly"),
        ("inactive", "sendrecv", "inactive"),
        ("sendrecv", "sendonly", "sendonly"),
        ("sendonly", "sendonly", "inactive"),
    ],
)
def test_answer_direction_rfc3264_6_1(offered: str, wanted: str, answer: str) -> None:
    assert answer_direction(offered, wanted) == answer


def test_building() -> None:
    sdp = new_session(42, 1, "2001:db8::1")
    media = Media("audio", 5000, "RTP/AVP", ["0"])
    media.add("a", "rtpmap:0 PCMU/8000")
    media.set_direction("sendonly")
    media.set_direction("recvonly")
    sdp.media.append(media)
    sdp.media.append(rejected_copy(Media("text", 4002, "RTP/AVP", ["98", "100"])))
    text = str(sdp)
    assert "o=appliance 42 1 IN IP6 2001:db8::1\r\n" in text
    assert "c=IN IP6 2001:db8::1\r\n" in text
    assert text.endswith(
        "m=audio 5000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=recvonly\r\nm=text 0 RTP/AVP 98\r\n"
    )
    assert SessionDescription.parse(text).media[0].direction == "recvonly"


def test_payload_types_beyond_7_bits_are_not_mapped() -> None:
    """An rtpmap for 200 cannot be sent: the RTP header holds 0-127 (RFC 3550 §5.1)."""
    sdp = SessionDescription.parse(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        "m=audio 4000 RTP/AVP 200 96\r\na=rtpmap:200 PCMU/8000\r\na=rtpmap:96 PCMA/8000\r\n"
    )
    assert sorted(sdp.media[0].rtpmaps) == [96]


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=300))
def test_parser_raises_only_sdp_errors(text: str) -> None:
    try:
        sdp = SessionDescription.parse(text)
    except SdpError:
        return
    for media in sdp.media:
        _ = (media.rtpmaps, media.direction, media.connection, media.fmtp(0))
    str(sdp)
