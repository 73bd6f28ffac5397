"""The phone's m=text (RFC 4103 §7, RFC 4102 §4) in offers and answers (RFC 3264), with
the digest's SDP vector 7."""

from __future__ import annotations

import pytest

from appliance.calls.phone_sdp import LocalAudio, phone_answer, phone_offer, read_audio
from appliance.media.codecs import PCMU
from appliance.media.sdp import SdpError, SessionDescription
from appliance.rtt.sdp import LocalText, PhoneText, read_text

VECTOR_7 = [
    "m=text 11000 RTP/AVP 100 98",
    "a=rtpmap:100 red/1000",
    "a=fmtp:100 98/98/98",
    "a=rtpmap:98 t140/1000",
    "a=fmtp:98 cps=30",
]


def sdp(*media: str, session: str = "c=IN IP4 192.0.2.7") -> SessionDescription:
    head = ["v=0", "o=phone 1 1 IN IP4 192.0.2.7", "s=-", session, "t=0 0"]
    return SessionDescription.parse("\r\n".join([*head, *media]) + "\r\n")


AUDIO = "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000"
LINPHONE_TEXT = (
    "m=text 4002 RTP/AVP 96 97\r\na=rtpmap:96 red/1000\r\na=fmtp:96 97/97/97\r\n"
    "a=rtpmap:97 t140/1000"
)


def test_vector_7_sip_side_byte_exact() -> None:
    media = LocalText("192.0.2.1", 11000).media()
    assert [f"m={media.header()}", *(f"{k}={v}" for k, v in media.lines)] == VECTOR_7


def test_vector_7_reads_back() -> None:
    text = read_text(sdp(*VECTOR_7))
    assert text == PhoneText(
        index=0, address="192.0.2.7", port=11000, t140_pt=98, red_pt=100, generations=2,
        cps=30, direction="sendrecv", secure_profile=False,
    )  # fmt: skip


def test_linphone_offer_is_answered_with_its_own_numbers() -> None:
    offer = sdp(AUDIO, LINPHONE_TEXT)
    text = read_text(offer)
    assert text is not None
    assert (text.index, text.t140_pt, text.red_pt, text.generations) == (1, 97, 96, 2)
    local = LocalText.answering(
        text, "192.0.2.1", 6000, generations=2, cps=30, direction="sendrecv"
    )
    media = local.media()
    assert media.header() == "text 6000 RTP/AVP 96 97"
    assert media.fmtp(96) == "97/97/97"
    assert media.fmtp(97) == "cps=30"


def test_plain_t140_and_cps() -> None:
    text = read_text(sdp("m=text 4002 RTP/AVP 98\r\na=rtpmap:98 T140/1000\r\na=fmtp:98 cps=6"))
    assert text is not None
    assert (text.t140_pt, text.red_pt, text.generations, text.cps) == (98, None, 0, 6)
    answer = LocalText.answering(
        text, "192.0.2.1", 6000, generations=2, cps=30, direction="sendrecv"
    )
    assert answer.generations == 0
    assert answer.media().header() == "text 6000 RTP/AVP 98"


@pytest.mark.parametrize(
    ("media", "red_pt", "generations"),
    [
        ("m=text 1 RTP/AVP 100 98\r\na=rtpmap:100 red/1000\r\na=rtpmap:98 t140/1000", 100, 2),
        (
            "m=text 1 RTP/AVP 100 98\r\na=rtpmap:100 red/1000\r\na=fmtp:100 0/98\r\n"
            "a=rtpmap:98 t140/1000",
            None,
            0,
        ),
        (
            "m=text 1 RTP/AVP 100 98\r\na=rtpmap:100 red/1000\r\na=fmtp:100 98/98\r\n"
            "a=rtpmap:98 t140/1000",
            100,
            1,
        ),
        (
            "m=text 1 RTP/AVP 100 98\r\na=rtpmap:100 red/8000\r\na=rtpmap:98 t140/1000",
            None,
            0,
        ),
    ],
    ids=["red-without-fmtp", "red-over-another-format", "one-generation", "red-wrong-clock"],
)
def test_red_variants(media: str, red_pt: int | None, generations: int) -> None:
    text = read_text(sdp(media))
    assert text is not None
    assert (text.red_pt, text.generations) == (red_pt, generations)


@pytest.mark.parametrize(
    "media",
    [
        "m=text 0 RTP/AVP 98\r\na=rtpmap:98 t140/1000",  # refused
        "m=text 1 RTP/AVP 98\r\na=rtpmap:98 t140/8000",  # the clock MUST be 1000
        "m=text 1 RTP/AVP 100\r\na=rtpmap:100 red/1000",  # no t140
        "m=text 1 TCP/MSRP *",
        "m=message 1 TCP/MSRP *",
    ],
)
def test_unusable_text(media: str) -> None:
    assert read_text(sdp(AUDIO, media)) is None


def test_secure_text_and_its_own_address() -> None:
    text = read_text(
        sdp(
            "m=text 5000 RTP/SAVP 98\r\nc=IN IP4 192.0.2.9\r\na=rtpmap:98 t140/1000\r\n"
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVox\r\n"
            "a=rtcp-mux\r\na=recvonly"
        )
    )
    assert text is not None
    assert (text.address, text.secure_profile, text.rtcp_mux, text.direction) == (
        "192.0.2.9",
        True,
        True,
        "recvonly",
    )
    assert len(text.crypto) == 1


def test_text_without_an_address_is_an_error() -> None:
    with pytest.raises(SdpError, match="no c= address"):
        read_text(sdp("m=text 1 RTP/AVP 98\r\na=rtpmap:98 t140/1000", session="a=x"))


# --------------------------------------------------------------- offer/answer


def local_audio() -> LocalAudio:
    return LocalAudio("192.0.2.1", 5000, [(PCMU, 0)], None, "sendrecv")


def test_answer_accepts_text_in_place() -> None:
    offer = sdp(AUDIO, "m=video 4004 RTP/AVP 96\r\na=rtpmap:96 H264/90000", LINPHONE_TEXT)
    audio = read_audio(offer, [PCMU])
    text = read_text(offer)
    assert audio is not None and text is not None and text.index == 2
    media = LocalText.answering(
        text, "192.0.2.1", 6000, generations=2, cps=30, direction="sendrecv"
    )
    answer = phone_answer(offer, audio, local_audio(), 1, 1, text=(text.index, media.media()))
    headers = [m.header() for m in answer.media]
    assert headers == ["audio 5000 RTP/AVP 0", "video 0 RTP/AVP 96", "text 6000 RTP/AVP 96 97"]


def test_text_declined_is_port_0_in_place() -> None:
    offer = sdp(AUDIO, LINPHONE_TEXT)
    audio = read_audio(offer, [PCMU])
    assert audio is not None
    answer = phone_answer(offer, audio, local_audio(), 1, 1)
    assert [m.header() for m in answer.media] == ["audio 5000 RTP/AVP 0", "text 0 RTP/AVP 96"]


def test_offer_adds_text_and_later_offers_keep_its_slot() -> None:
    text = LocalText("192.0.2.1", 6000).media()
    first = phone_offer(local_audio(), 1, 1, text=text)
    assert [m.kind for m in first.media] == ["audio", "text"]
    again = phone_offer(local_audio(), 1, 2, first, text=text)
    assert [m.header() for m in again.media] == [m.header() for m in first.media]
    without = phone_offer(local_audio(), 1, 3, first)
    assert [m.header() for m in without.media] == ["audio 5000 RTP/AVP 0", "text 0 RTP/AVP 100"]
    back = phone_offer(local_audio(), 1, 4, without, text=text)
    assert [m.header() for m in back.media] == ["audio 5000 RTP/AVP 0", "text 6000 RTP/AVP 100 98"]


def test_hold_reoffer_of_a_phones_offer_keeps_its_text() -> None:
    offer = sdp(AUDIO, LINPHONE_TEXT)
    text = read_text(offer)
    assert text is not None
    media = LocalText.answering(
        text, "192.0.2.1", 6000, generations=2, cps=30, direction="sendrecv"
    )
    hold = phone_offer(local_audio(), 1, 2, offer, text=media.media())
    assert [m.header() for m in hold.media] == ["audio 5000 RTP/AVP 0", "text 6000 RTP/AVP 96 97"]


def test_bad_generations_refused() -> None:
    with pytest.raises(ValueError, match="generations"):
        LocalText("192.0.2.1", 1, generations=4).media()


def test_text_only_answer_and_offer() -> None:
    offer = sdp("m=audio 0 RTP/AVP 0", LINPHONE_TEXT)
    text = read_text(offer)
    assert text is not None and read_audio(offer, [PCMU]) is None
    media = LocalText.answering(
        text, "192.0.2.1", 6000, generations=2, cps=30, direction="sendrecv"
    )
    answer = phone_answer(
        offer, None, None, 1, 1, text=(text.index, media.media()), address="192.0.2.1"
    )
    assert [m.header() for m in answer.media] == ["audio 0 RTP/AVP 0", "text 6000 RTP/AVP 96 97"]
    assert answer.connection == "192.0.2.1"
    ours = phone_offer(None, 1, 1, text=LocalText("192.0.2.1", 6000).media(), address="192.0.2.1")
    assert [m.kind for m in ours.media] == ["text"]
    assert ours.connection == "192.0.2.1"
