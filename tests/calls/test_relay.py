"""A call's audio relay end to end on loopback: an aiortc peer as the page, a UDP socket as
the phone, the call in between (the SIP service recorded, not run). Opus both ways, then a
re-INVITE from the phone that numbers Opus differently (RFC 3264 §8.3.2 lets a new offer
choose its own numbers for a codec): both directions follow it."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import aioice.ice
import pytest
from aiortc import RTCSessionDescription

from appliance.calls.call import Call, MediaSettings, State
from appliance.media.codecs import OPUS, PCMU
from appliance.media.endpoint import PortAllocator
from appliance.media.rtp import RtpPacket
from appliance.webrtc.hooks import set_host_addresses
from appliance.webrtc.leg import WebRtcLeg
from tests.waiting import until
from tests.webrtc.test_leg import Browser

HOST = "127.0.0.1"


@pytest.fixture(autouse=True)
def loopback_ice() -> Iterator[None]:
    saved = aioice.ice.get_host_addresses
    set_host_addresses([HOST])
    yield
    aioice.ice.get_host_addresses = saved


class Sip:
    """What the call asks of the SIP service, recorded."""

    def __init__(self) -> None:
        self.offers: list[bytes] = []
        self.answers: list[bytes] = []
        self.refused: list[int] = []

    def invite(
        self, target: str, *, from_user: str, sdp: bytes, display_name: str | None = None
    ) -> str:
        self.offers.append(sdp)
        return "leg-1"

    def answer_offer(self, leg: str, sdp: bytes) -> None:
        self.answers.append(sdp)

    def reject_offer(self, leg: str, status: int = 488) -> None:
        self.refused.append(status)

    def reoffer(self, leg: str, sdp: bytes) -> bool:
        self.offers.append(sdp)
        return True

    def ringing(self, leg: str, sdp: bytes | None = None) -> None: ...
    def answer(self, leg: str, sdp: bytes) -> None: ...
    def reject(self, leg: str, status: int = 486, reason: str | None = None) -> None: ...
    def hangup(self, leg: str) -> None: ...
    def send_dtmf(self, leg: str, digit: str) -> bool:
        return False


class Page:
    operator = "alice"

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any]) -> None:
        self.messages.append(message)


def phone_sdp(port: int, opus_pt: int, version: int) -> bytes:
    return (
        f"v=0\r\no=phone 7 {version} IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP {opus_pt}\r\na=rtpmap:{opus_pt} opus/48000/2\r\n"
        "a=sendrecv\r\n"
    ).encode()


async def test_both_directions_follow_a_phone_that_renumbers_opus() -> None:
    async def leg_factory(on_audio: Any, on_state: Any) -> WebRtcLeg:
        return WebRtcLeg([], on_audio=on_audio, on_state=on_state)

    settings = MediaSettings(
        codecs=[OPUS, PCMU], telephone_event=False, srtp="off", rtp_timeout=30,
        ice_timeout=30, ports=PortAllocator(43000, 43998), leg_factory=leg_factory,
    )  # fmt: skip
    sip, page = Sip(), Page()
    call = Call(
        direction="out", operator="alice", sip_user="alice", peer={}, sip=sip,
        settings=settings, local_address=HOST, on_ended=lambda c: None,
    )  # fmt: skip
    browser = Browser()
    browser.pc.addTransceiver("audio", direction="sendrecv")
    browser.attach()
    await browser.pc.setLocalDescription(await browser.pc.createOffer())
    phone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    phone.bind((HOST, 0))
    phone.setblocking(False)
    phone_port = phone.getsockname()[1]
    try:
        await call.start_outgoing(page, "sip:bob@" + HOST, browser.pc.localDescription.sdp, "")
        assert b"opus/48000/2" in sip.offers[0]
        assert call.endpoint is not None
        box_port = call.endpoint.port
        await call.phone_answered(phone_sdp(phone_port, 96, 1))
        answer = next(m for m in page.messages if m.get("kind") == "answer")
        await browser.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        await until(lambda: call.webrtc is not None and call.webrtc.state == "connected")
        assert call.state is State.ACTIVE

        async def phone_to_browser(payload_type: int, first: int) -> None:
            payloads = [bytes([first + n]) * 80 for n in range(10)]
            for n, payload in enumerate(payloads):
                packet = RtpPacket(
                    payload_type, first + n, (first + n) * 960, 0x7E1, False, payload
                )
                phone.sendto(packet.serialize(), (HOST, box_port))
                await asyncio.sleep(0.02)
            await until(
                lambda: {p.payload for p in browser.received} >= set(payloads),
                what=f"the phone's Opus (payload type {payload_type}) at the browser",
            )

        async def browser_to_phone(first: int) -> RtpPacket:
            for n in range(10):
                browser.track.push(bytes([first]) * 60, (first + n) * 960, 48000)
                await asyncio.sleep(0.02)
            loop = asyncio.get_running_loop()
            while True:
                data = await asyncio.wait_for(loop.sock_recv(phone, 2048), 2)
                packet = RtpPacket.parse(data)
                if packet.payload == bytes([first]) * 60:
                    return packet

        await phone_to_browser(96, 1)
        assert (await browser_to_phone(100)).payload_type == 96

        # The phone's re-INVITE: the same stream, Opus now numbered 111.
        call.reoffer_received(phone_sdp(phone_port, 111, 2))
        assert not sip.refused
        assert b"m=audio %d RTP/AVP 111" % box_port in sip.answers[-1]
        await phone_to_browser(111, 50)
        assert (await browser_to_phone(150)).payload_type == 111
        browser_pt = call.audio.browser_pt if call.audio is not None else -1
        assert {p.payload_type for p in browser.received} == {browser_pt}
        assert call.audio is not None and call.audio.to_browser.dropped_payload_type == 0
    finally:
        call.hangup()
        await call.release()
        phone.close()
        await browser.pc.close()
