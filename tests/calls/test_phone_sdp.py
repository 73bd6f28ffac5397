"""Offers and answers toward phones: relayable codecs in the phone's order, rejection in
place with the m-line count kept (RFC 3264 §6), hold directions, re-offers keeping lines."""

from __future__ import annotations

from appliance.calls.call import telephone_event_for
from appliance.calls.phone_sdp import (
    LocalAudio,
    payload_types_for,
    phone_answer,
    phone_offer,
    read_audio,
)
from appliance.media.codecs import G722, OPUS, PCMA, PCMU
from appliance.media.sdp import SessionDescription

ALL = [OPUS, G722, PCMU, PCMA]

LINPHONE_LIKE = (
    "v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=Talk\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
    "m=audio 7078 RTP/AVP 96 9 0 8 101\r\na=rtpmap:96 opus/48000/2\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=rtcp-mux\r\na=ptime:20\r\n"
    "m=text 7080 RTP/AVP 98 100\r\na=rtpmap:98 t140/1000\r\na=rtpmap:100 red/1000\r\n"
    "m=video 9078 RTP/AVP 97\r\na=rtpmap:97 VP8/90000\r\n"
)


def test_reads_the_phones_codecs_in_its_order_with_events() -> None:
    audio = read_audio(SessionDescription.parse(LINPHONE_LIKE), ALL)
    assert audio is not None
    assert audio.codecs == [(OPUS, 96), (G722, 9), (PCMU, 0), (PCMA, 8)]
    assert audio.telephone_event == 101
    assert (audio.address, audio.port, audio.rtcp_mux, audio.ptime) == (
        "192.0.2.10",
        7078,
        True,
        20,
    )
    assert audio.direction == "sendrecv" and not audio.on_hold


def test_configured_codecs_filter_the_offer() -> None:
    audio = read_audio(SessionDescription.parse(LINPHONE_LIKE), [PCMA])
    assert audio is not None and audio.codecs == [(PCMA, 8)]
    assert (
        read_audio(SessionDescription.parse(LINPHONE_LIKE.replace(" 8 101", " 101")), [PCMA])
        is None
    )


def test_answer_keeps_every_line_in_place_and_rejects_the_rest() -> None:
    offer = SessionDescription.parse(LINPHONE_LIKE)
    audio = read_audio(offer, ALL)
    assert audio is not None
    local = LocalAudio("192.0.2.2", 20000, [(PCMU, 0)], 101, "sendrecv", rtcp_mux=True)
    answer = SessionDescription.parse(str(phone_answer(offer, audio, local, 5, 1)))
    assert [m.kind for m in answer.media] == ["audio", "text", "video"]
    assert [m.port for m in answer.media] == [20000, 0, 0]
    assert answer.media[0].formats == ["0", "101"]
    assert answer.media[1].header() == "text 0 RTP/AVP 98"
    assert answer.connection == "192.0.2.2"


def test_hold_offer_from_the_phone_is_seen() -> None:
    held = LINPHONE_LIKE.replace("a=ptime:20", "a=ptime:20\r\na=sendonly")
    audio = read_audio(SessionDescription.parse(held), ALL)
    assert audio is not None and audio.on_hold
    old_style = LINPHONE_LIKE.replace("c=IN IP4 192.0.2.10", "c=IN IP4 0.0.0.0")
    audio = read_audio(SessionDescription.parse(old_style), ALL)
    assert audio is not None and audio.on_hold


def test_srtp_offer_is_read() -> None:
    savp = LINPHONE_LIKE.replace("RTP/AVP 96", "RTP/SAVP 96").replace(
        "a=ptime:20", "a=ptime:20\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + "A" * 40
    )
    audio = read_audio(SessionDescription.parse(savp), ALL)
    assert audio is not None and audio.secure_profile
    assert audio.crypto == ["1 AES_CM_128_HMAC_SHA1_80 inline:" + "A" * 40]


def test_offer_uses_static_types_and_a_dynamic_one_for_events() -> None:
    codecs, event = payload_types_for([OPUS, PCMU, PCMA], with_events=True)
    assert codecs == [(OPUS, 96), (PCMU, 0), (PCMA, 8)] and event == 97
    local = LocalAudio("192.0.2.2", 20002, codecs, event, "sendrecv", crypto=["1 X inline:Y"])
    text = str(phone_offer(local, 7, 1))
    assert "m=audio 20002 RTP/AVP 96 0 8 97\r\n" in text
    assert "a=rtpmap:96 opus/48000/2\r\n" in text and "a=rtpmap:97 telephone-event/8000" in text
    assert "a=crypto:1 X inline:Y\r\n" in text and text.endswith("a=sendrecv\r\n")


def test_reoffer_keeps_the_earlier_lines_and_changes_direction() -> None:
    offer = SessionDescription.parse(LINPHONE_LIKE)
    local = LocalAudio("192.0.2.2", 20000, [(PCMU, 0)], None, "sendonly")
    again = SessionDescription.parse(str(phone_offer(local, 5, 2, offer)))
    assert [(m.kind, m.port) for m in again.media] == [("audio", 20000), ("text", 0), ("video", 0)]
    assert again.media[0].direction == "sendonly"
    assert again.origin[2] == "2"


def test_telephone_events_go_only_with_an_8000_hz_codec() -> None:
    audio = read_audio(SessionDescription.parse(LINPHONE_LIKE), ALL)
    assert audio is not None
    assert telephone_event_for(PCMU, audio) == 101
    assert telephone_event_for(G722, audio) == 101, "G.722's RTP clock is 8000 Hz"
    assert telephone_event_for(OPUS, audio) is None, "48 kHz stream: DTMF goes by SIP INFO"
