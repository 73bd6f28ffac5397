"""A call's text negotiation on both legs (appliance.calls.text): what the phone is offered
and answered, when text starts, SRTP for the text stream, re-INVITEs, the transcript."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from appliance.calls.text import CallText, TextConfig
from appliance.media.endpoint import PortAllocator
from appliance.media.sdes import new_crypto
from appliance.media.sdp import SessionDescription
from appliance.rtt.bridge import TextSettings
from appliance.rtt.transcript import read_transcript
from appliance.webrtc.leg import WebRtcLeg

CRYPTO = str(new_crypto(1, "AES_CM_128_HMAC_SHA1_80"))


def phone_sdp(text: str, *, version: int = 1) -> SessionDescription:
    return SessionDescription.parse(
        f"v=0\r\no=phone 1 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n" + text
    )


RED_TEXT = (
    "m=text 4002 RTP/AVP 96 97\r\na=rtpmap:96 red/1000\r\na=fmtp:96 97/97/97\r\n"
    "a=rtpmap:97 t140/1000\r\n"
)


@pytest_asyncio.fixture
async def leg() -> AsyncIterator[WebRtcLeg]:
    leg = WebRtcLeg([], on_audio=lambda p: None, on_state=lambda s: None)
    yield leg
    await leg.close()


@pytest.fixture
def ports() -> PortAllocator:
    low = 36000 + (os.getpid() % 300) * 60
    return PortAllocator(low, low + 58)


def running(text: CallText) -> bool:
    """Whether the call's text flows (read through a call, so checks are not narrowed)."""
    return text.active


def call_text(tmp_path: Path, srtp: str = "offer") -> CallText:
    config = TextConfig(TextSettings(), srtp, tmp_path / "transcripts")
    return CallText(config, "00aa11bb22cc", {"operator": "alice"})


def test_browser_answer_with_and_without_a_data_channel() -> None:
    assert CallText.browser_took_text("v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n")
    assert not CallText.browser_took_text("v=0\r\nm=application 0 UDP/DTLS/SCTP webrtc-datachannel")
    assert not CallText.browser_took_text("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n")


async def test_incoming_text_answered_with_the_offered_numbers_and_started(
    tmp_path: Path, leg: WebRtcLeg, ports: PortAllocator
) -> None:
    text = call_text(tmp_path)
    assert text.offered_by_phone(phone_sdp(RED_TEXT))
    await text.open(leg, "127.0.0.1", ports)
    answer = text.answer_media("127.0.0.1", browser_took_text=True)
    assert answer is not None
    index, media = answer
    assert index == 1
    assert text.bridge is not None
    assert media.header() == f"text {text.bridge.port} RTP/AVP 96 97"
    assert running(text)
    assert text.bridge.to_phone and text.bridge.to_browser
    text.close()
    assert not running(text)
    entries = read_transcript(tmp_path / "transcripts" / "00aa11bb22cc.jsonl")
    assert entries[0]["operator"] == "alice"
    assert [e.get("event") for e in entries[1:]] == ["text started", "ended"]
    assert text.bridge.port not in ports.in_use


async def test_a_page_without_text_gets_port_0_and_no_bridge_runs(
    tmp_path: Path, leg: WebRtcLeg, ports: PortAllocator
) -> None:
    text = call_text(tmp_path)
    assert text.offered_by_phone(phone_sdp(RED_TEXT))
    await text.open(leg, "127.0.0.1", ports)
    assert text.answer_media("127.0.0.1", browser_took_text=False) is None
    assert not running(text)
    assert not ports.in_use
    assert not (tmp_path / "transcripts").exists()


def test_an_offer_without_usable_text(tmp_path: Path) -> None:
    text = call_text(tmp_path)
    assert not text.offered_by_phone(phone_sdp("m=text 0 RTP/AVP 98\r\na=rtpmap:98 t140/1000\r\n"))
    assert not text.offered_by_phone(phone_sdp("m=text 4002 RTP/AVP 98\r\n"))


async def test_direction_follows_the_phone(
    tmp_path: Path, leg: WebRtcLeg, ports: PortAllocator
) -> None:
    text = call_text(tmp_path)
    assert text.offered_by_phone(phone_sdp(RED_TEXT + "a=sendonly\r\n"))
    await text.open(leg, "127.0.0.1", ports)
    answer = text.answer_media("127.0.0.1", browser_took_text=True)
    assert answer is not None
    assert answer[1].direction == "recvonly"
    assert text.bridge is not None
    assert (text.bridge.to_phone, text.bridge.to_browser) == (False, True)
    text.close()


async def test_srtp_text_is_answered_with_our_key(
    tmp_path: Path, leg: WebRtcLeg, ports: PortAllocator
) -> None:
    secure = RED_TEXT.replace("RTP/AVP", "RTP/SAVP") + f"a=crypto:{CRYPTO}\r\n"
    text = call_text(tmp_path)
    assert text.offered_by_phone(phone_sdp(secure))
    await text.open(leg, "127.0.0.1", ports)
    answer = text.answer_media("127.0.0.1", browser_took_text=True)
    assert answer is not None
    assert answer[1].proto == "RTP/SAVP"
    (line,) = answer[1].attributes("crypto")
    assert line.startswith("1 AES_CM_128_HMAC_SHA1_80 inline:")
    assert CRYPTO.split()[2] not in line  # our own key, not the phone's
    assert text.bridge is not None and text.bridge.endpoint.srtp is not None
    text.close()


async def test_required_srtp_refuses_clear_text(
    tmp_path: Path, leg: WebRtcLeg, ports: PortAllocator
) -> None:
    text = call_text(tmp_path, srtp="require")
    assert text.offered_by_phone(phone_sdp(RED_TEXT))
    await text.open(leg, "127.0.0.1", ports)
    assert text.answer_media("127.0.0.1", browser_took_text=True) is None


async def test_outgoing_offer_and_the_phones_answers(
    tmp_path: Path, leg: WebRtcLeg, ports: PortAllocator
) -> None:
    text = call_text(tmp_path, srtp="off")
    await text.open(leg, "127.0.0.1", ports)
    media = text.offer_media("127.0.0.1")
    assert media is not None
    assert text.bridge is not None
    assert media.header() == f"text {text.bridge.port} RTP/AVP 100 98"
    assert media.fmtp(100) == "98/98/98"
    assert not media.attributes("crypto")
    refused = phone_sdp("m=text 0 RTP/AVP 100\r\n")
    assert not text.answered_by_phone(refused)
    assert not running(text)

    text = call_text(tmp_path, srtp="offer")
    await text.open(leg, "127.0.0.1", ports)
    media = text.offer_media("127.0.0.1")
    assert media is not None and len(media.attributes("crypto")) == 1
    their_key = str(new_crypto(1, "AES_CM_128_HMAC_SHA1_80"))
    accepted = phone_sdp(
        "m=text 4002 RTP/AVP 100 98\r\na=rtpmap:100 red/1000\r\na=fmtp:100 98/98/98\r\n"
        f"a=rtpmap:98 t140/1000\r\na=crypto:{their_key}\r\n"
    )
    assert text.answered_by_phone(accepted)
    assert running(text)
    assert text.bridge is not None and text.bridge.endpoint.srtp is not None
    assert text.reoffer_media() is not None
    # a re-INVITE without text ends the text; with it, the same port is kept
    again = text.reoffered_by_phone(accepted)
    assert again is not None and again[1].port == text.bridge.port
    dropped = text.reoffered_by_phone(phone_sdp("", version=3))
    assert dropped is None
    assert text.reoffer_media() is None
    assert not running(text)
