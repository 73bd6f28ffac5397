"""The browser leg against another aiortc peer over loopback: offers and answers limited
to the relayed codec, encoded payloads passing through untouched both ways."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import aioice.ice
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.rtp import RtpPacket

from appliance.media.codecs import G722, OPUS, PCMA, PCMU
from appliance.media.rtp import RtpPacket as BoxPacket
from appliance.webrtc.hooks import set_host_addresses, tap_receiver
from appliance.webrtc.leg import PassthroughTrack, WebRtcLeg
from tests.waiting import until


@pytest.fixture(autouse=True)
def loopback_ice() -> Iterator[None]:
    saved = aioice.ice.get_host_addresses
    set_host_addresses(["127.0.0.1"])
    yield
    aioice.ice.get_host_addresses = saved


class Browser:
    """A second aiortc peer standing in for the page, tapped the same way."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection()
        self.track = PassthroughTrack()
        self.received: list[RtpPacket] = []

    def attach(self) -> None:
        transceiver = next(t for t in self.pc.getTransceivers() if t.kind == "audio")
        transceiver.direction = "sendrecv"
        transceiver.sender.replaceTrack(self.track)
        receiver = transceiver.receiver
        tap_receiver(receiver, lambda packet: None)  # statistics, no decoder
        tapped = receiver._handle_rtp_packet

        async def record(packet: RtpPacket, arrival_time_ms: int) -> None:
            self.received.append(packet)  # as aiortc parsed it, header extensions included
            await tapped(packet, arrival_time_ms)

        receiver._handle_rtp_packet = record  # type: ignore[method-assign]


async def exchange(box: WebRtcLeg, box_in: list[BoxPacket], browser: Browser, clock: int) -> None:
    payloads = [bytes([i]) * 160 for i in range(1, 30)]
    for n, payload in enumerate(payloads):
        box.send_audio(payload, n * 160)
        browser.track.push(payload, n * 160, clock)
        await asyncio.sleep(0.02)
    await until(lambda: len(browser.received) >= 20 and len(box_in) >= 20)
    assert {p.payload for p in browser.received} <= set(payloads)  # untouched
    assert {p.payload for p in box_in} <= set(payloads)
    assert len({p.payload for p in browser.received}) >= 20


async def test_box_offers_the_phones_codecs_only() -> None:
    box_in: list[BoxPacket] = []
    states: list[str] = []
    box = WebRtcLeg([], on_audio=box_in.append, on_state=states.append)
    offer = await box.make_offer([PCMA, PCMU])
    audio_lines = [line for line in offer.splitlines() if line.startswith("m=audio")]
    assert audio_lines and audio_lines[0].endswith("RTP/SAVPF 8 0")
    browser = Browser()
    await browser.pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
    browser.attach()
    await browser.pc.setLocalDescription(await browser.pc.createAnswer())
    negotiated = await box.take_answer(browser.pc.localDescription.sdp)
    assert negotiated is not None
    assert (negotiated.codec, negotiated.payload_type) == (PCMA, 8)
    await until(lambda: box.state == "connected")
    await exchange(box, box_in, browser, 8000)
    assert all(p.payload_type == 8 for p in browser.received + box_in)
    assert "connected" in states
    await box.close()
    await browser.pc.close()


async def test_browser_offers_and_the_box_answers_with_one_codec() -> None:
    box_in: list[BoxPacket] = []
    box = WebRtcLeg([], on_audio=box_in.append, on_state=lambda s: None)
    browser = Browser()
    browser.pc.addTransceiver("audio", direction="sendrecv")
    browser.attach()
    await browser.pc.setLocalDescription(await browser.pc.createOffer())
    offered = await box.take_offer(browser.pc.localDescription.sdp)
    assert offered == [OPUS, G722, PCMU, PCMA]
    answer = await box.make_answer(G722)
    audio = next(line for line in answer.splitlines() if line.startswith("m=audio"))
    assert audio.endswith("RTP/SAVPF 9")
    await browser.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    await until(lambda: box.state == "connected")
    await exchange(box, box_in, browser, 8000)
    assert all(p.payload_type == 9 for p in browser.received + box_in)
    await box.close()
    await browser.pc.close()


async def test_trickled_candidates_are_accepted() -> None:
    box = WebRtcLeg([], on_audio=lambda p: None, on_state=lambda s: None)
    await box.make_offer([PCMU])
    browser = Browser()
    await browser.pc.setRemoteDescription(
        RTCSessionDescription(box.pc.localDescription.sdp, "offer")
    )
    browser.attach()
    await browser.pc.setLocalDescription(await browser.pc.createAnswer())
    lines = browser.pc.localDescription.sdp.splitlines()
    candidates = [line[2:] for line in lines if line.startswith("a=candidate:")]
    stripped = "\r\n".join(
        line for line in lines if not line.startswith(("a=candidate:", "a=end-of-candidates"))
    )
    await box.take_answer(stripped + "\r\n")
    for candidate in candidates:
        await box.add_candidate(candidate, "0", 0)
    await box.add_candidate("", None, None)
    await until(lambda: box.state == "connected")
    await box.close()
    await browser.pc.close()
