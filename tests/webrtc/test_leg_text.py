"""The browser leg's T.140 data channel (RFC 8865) against another aiortc peer: opened by
either side in-band, text both ways, other channels ignored, a re-open reported."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import aioice.ice
import pytest
from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription

from appliance.media.codecs import PCMU
from appliance.webrtc.hooks import set_host_addresses
from appliance.webrtc.leg import WebRtcLeg
from tests.waiting import until


@pytest.fixture(autouse=True)
def loopback_ice() -> Iterator[None]:
    saved = aioice.ice.get_host_addresses
    set_host_addresses(["127.0.0.1"])
    yield
    aioice.ice.get_host_addresses = saved


@dataclass
class Handler:
    """Records what the leg reports, like the call's text bridge would see it."""

    opened: int = 0
    closed: int = 0
    messages: list[str | bytes] = field(default_factory=list)
    send: Callable[[str], None] | None = None

    def channel_opened(self, send: Callable[[str], None]) -> None:
        self.opened += 1
        self.send = send

    def channel_message(self, message: str | bytes) -> None:
        self.messages.append(message)

    def channel_closed(self) -> None:
        self.closed += 1


def leg() -> WebRtcLeg:
    return WebRtcLeg([], on_audio=lambda p: None, on_state=lambda s: None)


async def test_box_offers_a_t140_channel_and_text_flows_both_ways() -> None:
    box = leg()
    handler = Handler()
    box.attach_text(handler)
    box.offer_text()
    assert box.has_data_channels
    offer = await box.make_offer([PCMU])
    assert "m=application" in offer
    browser = RTCPeerConnection()
    got: list[RTCDataChannel] = []
    received: list[str | bytes] = []

    def on_channel(channel: RTCDataChannel) -> None:
        got.append(channel)
        channel.on("message", received.append)

    browser.on("datachannel", on_channel)
    await browser.setRemoteDescription(RTCSessionDescription(offer, "offer"))
    await browser.setLocalDescription(await browser.createAnswer())
    await box.take_answer(browser.localDescription.sdp)
    await until(lambda: handler.opened == 1 and bool(got), 10, "the channel open on both sides")
    assert (got[0].label, got[0].protocol, got[0].ordered) == ("rtt", "t140", True)
    assert got[0].maxRetransmits is None and got[0].maxPacketLifeTime is None
    assert handler.send is not None
    handler.send("\ufeffHi")
    got[0].send("Hello\u2028")
    await until(lambda: received == ["\ufeffHi"] and handler.messages == ["Hello\u2028"], 5)
    await box.close()
    await browser.close()


async def test_browser_offers_the_channel_and_a_reopen_is_reported() -> None:
    browser = RTCPeerConnection()
    browser.addTransceiver("audio", direction="sendrecv")
    first = browser.createDataChannel("rtt", protocol="t140")
    other = browser.createDataChannel("chat", protocol="msrp")
    await browser.setLocalDescription(await browser.createOffer())
    box = leg()
    handler = Handler()
    box.attach_text(handler)
    await box.take_offer(browser.localDescription.sdp)
    assert box.has_data_channels
    answer = await box.make_answer(PCMU)
    assert "m=application" in answer
    await browser.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    await until(lambda: handler.opened == 1, 10, "the browser's t140 channel at the box")
    first.send("one")
    other.send("not text")
    await until(lambda: handler.messages == ["one"], 5)
    second = browser.createDataChannel("rtt", protocol="t140")
    await until(lambda: handler.opened == 2, 5, "the re-opened channel")
    second.send("two")
    first.send("stale")  # the replaced channel no longer carries the call's text
    await until(lambda: "two" in handler.messages, 5)
    assert handler.messages == ["one", "two"]
    await box.close()
    await browser.close()


async def test_a_partially_reliable_t140_channel_is_not_used() -> None:
    """RFC 8865 §4.1: T.140 channels are reliable and ordered."""
    browser = RTCPeerConnection()
    browser.addTransceiver("audio", direction="sendrecv")
    lossy = browser.createDataChannel("rtt", protocol="t140", maxRetransmits=0)
    await browser.setLocalDescription(await browser.createOffer())
    box = leg()
    handler = Handler()
    box.attach_text(handler)
    await box.take_offer(browser.localDescription.sdp)
    await browser.setRemoteDescription(RTCSessionDescription(await box.make_answer(PCMU), "answer"))
    await until(lambda: lossy.readyState == "open", 10, "the channel open at the browser")
    lossy.send("lost?")
    good = browser.createDataChannel("rtt", protocol="t140")
    await until(lambda: handler.opened == 1, 5)
    good.send("kept")
    await until(lambda: handler.messages == ["kept"], 5)
    await box.close()
    await browser.close()


async def test_a_session_without_data_channels() -> None:
    browser = RTCPeerConnection()
    browser.addTransceiver("audio", direction="sendrecv")
    await browser.setLocalDescription(await browser.createOffer())
    box = leg()
    await box.take_offer(browser.localDescription.sdp)
    assert not box.has_data_channels
    await box.close()
    await browser.close()


async def test_text_only_offer_has_no_audio_and_takes_an_answer() -> None:
    box = leg()
    handler = Handler()
    box.attach_text(handler)
    box.offer_text()
    offer = await box.make_offer([])
    assert "m=audio" not in offer and "m=application" in offer
    browser = RTCPeerConnection()
    browser.on("datachannel", lambda channel: None)
    await browser.setRemoteDescription(RTCSessionDescription(offer, "offer"))
    await browser.setLocalDescription(await browser.createAnswer())
    assert await box.take_answer(browser.localDescription.sdp) is None
    await until(lambda: handler.opened == 1, 10, "the text channel")
    await box.close()
    await browser.close()
