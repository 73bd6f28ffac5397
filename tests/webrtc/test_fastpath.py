"""The browser leg's audio fast path against a second aiortc peer over loopback: payloads
byte-exact both ways, the sender's SSRC and sequence/timestamp continuity, RTCP reports
still true both ways, and aiortc's normal path for everything before DTLS is up."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import aioice.ice
import pytest
from aioice.turn import TurnTransport
from aiortc import RTCSessionDescription, clock
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.stats import RTCRemoteInboundRtpStreamStats, RTCRemoteOutboundRtpStreamStats

from appliance.media.codecs import PCMA, PCMU
from appliance.media.rtp import RtpPacket as BoxPacket
from appliance.webrtc.fastpath import _datagram_sender
from appliance.webrtc.hooks import set_host_addresses
from appliance.webrtc.leg import WebRtcLeg
from tests.waiting import until
from tests.webrtc.test_leg import Browser


@pytest.fixture(autouse=True)
def loopback_ice() -> Iterator[None]:
    saved = aioice.ice.get_host_addresses
    set_host_addresses(["127.0.0.1"])
    yield
    aioice.ice.get_host_addresses = saved


async def connected_pair(
    box_in: list[BoxPacket], *, install_early: bool = False, data_channel: bool = False
) -> tuple[WebRtcLeg, Browser]:
    """The box offers PCMU, the browser answers; both connected."""
    box = WebRtcLeg([], on_audio=box_in.append, on_state=lambda s: None)
    channel = box.pc.createDataChannel("chat") if data_channel else None
    offer = await box.make_offer([PCMU])
    browser = Browser()
    await browser.pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
    browser.attach()
    await browser.pc.setLocalDescription(await browser.pc.createAnswer())
    if install_early:
        assert box.fast_receiver is not None and box.fast_receiver.install()
    await box.take_answer(browser.pc.localDescription.sdp)
    await until(lambda: box.state == "connected" and browser.pc.connectionState == "connected")
    if channel is not None:
        await until(lambda: channel.readyState == "open", what="the data channel open")
    return box, browser


def box_sender(box: WebRtcLeg) -> RTCRtpSender:
    assert box.audio is not None
    return box.audio.sender


async def test_audio_both_ways_byte_exact_through_the_fast_path() -> None:
    box_in: list[BoxPacket] = []
    box, browser = await connected_pair(box_in)
    assert box.fast_sender is not None and box.fast_receiver is not None
    payloads = [bytes([n]) * 100 + n.to_bytes(2, "big") * 30 for n in range(50)]
    for n, payload in enumerate(payloads):
        assert box.send_audio(payload, n * 160, marker=n == 0)
        browser.track.push(payload, n * 160, 8000)
        await asyncio.sleep(0.02)
    await until(lambda: len(browser.received) == 50 and len(box_in) >= 45, what="all audio")

    # The box's UDP sockets hand SRTP to the fast path before aioice tries STUN.
    hooked = box.fast_receiver.hooked
    assert hooked is not None and hooked._protocols
    assert all("datagram_received" in vars(p) for p in hooked._protocols)

    # box -> browser: every payload, in order, one SSRC, consecutive sequence numbers and
    # timestamps 160 apart (RFC 3550 §5.1), the marker only where it was given.
    sender = box_sender(box)
    assert [p.payload for p in browser.received] == payloads
    assert {p.ssrc for p in browser.received} == {sender._ssrc}
    first = browser.received[0]
    assert first.sequence_number < 32768
    for n, packet in enumerate(browser.received):
        assert packet.sequence_number == (first.sequence_number + n) & 0xFFFF
        assert packet.timestamp == (first.timestamp + n * 160) & 0xFFFFFFFF
        assert packet.payload_type == 0
        assert packet.marker == (n == 0)
        assert packet.extensions.mid == box.audio.mid  # type: ignore[union-attr]
    assert box.fast_sender.sent == 50 and box.fast_sender.dropped == 0
    assert box.fast_sender.relayed_via_aiortc == 0  # straight to the pair's UDP socket

    # browser -> box: the tail of the stream arrived through the fast path, untouched.
    assert box.fast_receiver.fast >= 45
    assert [p.payload for p in box_in] == payloads[len(payloads) - len(box_in) :]

    # aiortc's sender reports count what the fast path sent (RFC 3550 §6.4.1) ...
    assert sender._RTCRtpSender__packet_count == 50  # type: ignore[attr-defined]
    assert sender._RTCRtpSender__octet_count == sum(map(len, payloads))  # type: ignore[attr-defined]
    assert sender._RTCRtpSender__rtp_timestamp == browser.received[-1].timestamp  # type: ignore[attr-defined]
    ntp = sender._RTCRtpSender__ntp_timestamp  # type: ignore[attr-defined]
    assert 0 <= clock.current_ntp_time() - ntp < 5 << 32  # the last send's wall clock, as NTP
    browser_receiver: RTCRtpReceiver = next(
        t.receiver for t in browser.pc.getTransceivers() if t.kind == "audio"
    )

    async def browser_saw_sender_report() -> bool:
        stats = (await browser_receiver.getStats()).values()
        return any(
            isinstance(s, RTCRemoteOutboundRtpStreamStats) and s.packetsSent == 50 for s in stats
        )

    # ... and the box's receiver reports what the fast path received.
    browser_sender = next(t.sender for t in browser.pc.getTransceivers() if t.kind == "audio")

    async def browser_saw_receiver_report() -> bool:
        stats = (await browser_sender.getStats()).values()
        return any(
            isinstance(s, RTCRemoteInboundRtpStreamStats) and s.packetsReceived >= 45 for s in stats
        )

    for _ in range(500):  # reports come 0.5 to 1.5 intervals apart (RFC 3550 §6.3.1)
        if await browser_saw_sender_report() and await browser_saw_receiver_report():
            break
        await asyncio.sleep(0.02)
    assert await browser_saw_sender_report(), "no sender report with the fast path's count"
    assert await browser_saw_receiver_report(), "no receiver report counting fast packets"
    await box.close()
    await browser.pc.close()


async def test_a_tapped_leg_gets_the_browsers_audio_as_header_fields() -> None:
    """With :meth:`WebRtcLeg.tap_audio`, a known source's packets arrive as header fields
    and payload, the header extension (aiortc writes ``sdes:mid``) left out; the receiver's
    statistics still count them."""
    box_in: list[BoxPacket] = []
    box, browser = await connected_pair(box_in)
    fields: list[tuple[int, int, int, int, bool, bytes]] = []
    box.tap_audio(lambda *numbers: fields.append(numbers))
    payloads = [bytes([n]) * 160 for n in range(30)]
    for n, payload in enumerate(payloads):
        browser.track.push(payload, n * 160, 8000)
        await asyncio.sleep(0.02)
    await until(lambda: len(box_in) + len(fields) >= 30, what="the browser's audio")
    assert len(box_in) <= 1  # a source's first packet goes through aiortc's router
    assert [f[5] for f in fields] == payloads[len(payloads) - len(fields) :]
    browser_sender = next(t.sender for t in browser.pc.getTransceivers() if t.kind == "audio")
    assert {f[3] for f in fields} == {browser_sender._ssrc}
    assert {f[0] for f in fields} == {0}  # PCMU
    sequences = [f[1] for f in fields]
    assert sequences == [(sequences[0] + n) & 0xFFFF for n in range(len(fields))]
    timestamps = [f[2] for f in fields]
    assert timestamps == [(timestamps[0] + 160 * n) & 0xFFFFFFFF for n in range(len(fields))]
    stats = box.audio.receiver._RTCRtpReceiver__remote_streams  # type: ignore[union-attr]
    assert stats[browser_sender._ssrc].packets_received == 30
    assert stats[browser_sender._ssrc].max_seq == sequences[-1]
    await box.close()
    await browser.pc.close()


async def test_nothing_is_sent_before_dtls_and_the_early_hook_passes_ice_and_dtls() -> None:
    box_in: list[BoxPacket] = []
    box = WebRtcLeg([], on_audio=box_in.append, on_state=lambda s: None)
    await box.make_offer([PCMA])
    assert not box.send_audio(b"\xd5" * 160, 0)  # nothing negotiated yet
    assert box.fast_sender is not None and box.fast_sender.sent == 0
    # Hooked before ICE and DTLS ran: STUN and the DTLS handshake take aiortc's path.
    box2, browser = await connected_pair(box_in, install_early=True)
    assert box2.fast_receiver is not None and box2.fast_receiver.hooked is not None
    for n in range(20):
        assert box2.send_audio(b"\xff" * 160, n * 160)
        browser.track.push(b"\x7f" * 160, n * 160, 8000)
        await asyncio.sleep(0.02)
    await until(lambda: len(browser.received) == 20 and len(box_in) >= 15, what="audio")
    assert box2.fast_receiver.fast >= 15
    await box.close()
    await box2.close()
    await browser.pc.close()


async def test_payloads_before_the_dtls_handshake_are_dropped_not_queued() -> None:
    box = WebRtcLeg([], on_audio=lambda p: None, on_state=lambda s: None)
    offer = await box.make_offer([PCMU])
    browser = Browser()
    await browser.pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
    browser.attach()
    await browser.pc.setLocalDescription(await browser.pc.createAnswer())
    await box.take_answer(browser.pc.localDescription.sdp)
    assert box.state != "connected"
    assert not box.send_audio(b"\x01" * 160, 0)
    assert box.fast_sender is not None and box.fast_sender.dropped == 1
    await until(lambda: box.state == "connected")
    assert box.send_audio(b"\x02" * 160, 160)
    await until(lambda: len(browser.received) == 1)
    assert browser.received[0].payload == b"\x02" * 160  # the early one never shows up
    await box.close()
    await browser.pc.close()


async def test_data_channels_and_forged_srtp_beside_the_fast_path() -> None:
    box_in: list[BoxPacket] = []
    box, browser = await connected_pair(box_in, data_channel=True)
    assert box.fast_receiver is not None and box.fast_receiver.hooked is not None
    # SCTP over DTLS still reaches aiortc: the browser's channel echoes to the box.
    received: list[str] = []
    box_channel = next(iter(box.pc.sctp._data_channels.values()))  # type: ignore[union-attr]
    box_channel.on("message", received.append)
    browser_channel = next(iter(browser.pc.sctp._data_channels.values()))  # type: ignore[union-attr]
    browser_channel.send("hello")
    await until(lambda: received == ["hello"], what="the data channel message")

    # Packets that look like SRTP but fail authentication are counted and dropped.
    pair = box.fast_receiver.hooked._nominated[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as forger:
        forger.sendto(b"\x80\x00\x00\x01" + b"\x00" * 8 + b"\x55" * 170, pair.local_addr)
        forger.sendto(b"\x80", pair.local_addr)  # too short for RTP
        forger.sendto(b"\x80\x00" + b"\x01" * 1600, pair.local_addr)  # beyond libsrtp's buffer
    await until(lambda: box.fast_receiver.undecryptable == 2)  # type: ignore[union-attr]
    for n in range(10):
        browser.track.push(bytes([n]) * 160, n * 160, 8000)
        await asyncio.sleep(0.02)
    await until(lambda: len(box_in) >= 8, what="audio after the forged packets")
    assert box.state == "connected"
    await box.close()
    await browser.pc.close()


async def _send_through_a_candidate_socket() -> tuple[bytes, bool]:
    """Send one datagram with ``_datagram_sender`` of a loop's own UDP transport."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    try:
        send = _datagram_sender(transport)
        assert send is not None
        send(b"\x80\x00audio", receiver.getsockname())
        data = await asyncio.to_thread(receiver.recv, 100)
        return data, isinstance(getattr(send, "__self__", None), socket.socket)
    finally:
        transport.close()
        receiver.close()


async def test_sends_through_the_candidate_socket_on_the_service_loop() -> None:
    # The service's loop (uvloop): the transport's own send, no socket object exposed.
    assert "uvloop" in type(asyncio.get_running_loop()).__module__
    assert await _send_through_a_candidate_socket() == (b"\x80\x00audio", False)
    # A TURN relay is no socket of the box: aiortc's own path sends there.
    assert _datagram_sender(TurnTransport(None)) is None  # type: ignore[arg-type]


def test_sends_with_the_socket_itself_on_the_selector_loop() -> None:
    with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
        assert runner.run(_send_through_a_candidate_socket()) == (b"\x80\x00audio", True)
