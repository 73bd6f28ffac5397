"""The aiortc/aioice hooks still hold on the pinned versions (an upgrade that breaks them
fails here, not in a call)."""

from __future__ import annotations

import asyncio

import aioice.ice
from aiortc import RTCPeerConnection

from appliance.webrtc import hooks


def test_versions_are_the_verified_ones() -> None:
    assert hooks.check_versions() == []


async def test_host_addresses_hook_controls_candidates() -> None:
    saved = aioice.ice.get_host_addresses
    try:
        hooks.set_host_addresses(["127.0.0.1"])
        pc = RTCPeerConnection()
        pc.addTransceiver("audio")
        await pc.setLocalDescription(await pc.createOffer())
        candidates = [
            line for line in pc.localDescription.sdp.splitlines() if line.startswith("a=candidate:")
        ]
        assert candidates and all(" 127.0.0.1 " in c for c in candidates)
        await pc.close()
    finally:
        aioice.ice.get_host_addresses = saved


async def test_the_receiver_internals_the_tap_uses_exist() -> None:
    pc = RTCPeerConnection()
    receiver = pc.addTransceiver("audio").receiver
    assert isinstance(receiver._RTCRtpReceiver__remote_streams, dict)  # type: ignore[attr-defined]
    assert isinstance(receiver._RTCRtpReceiver__codecs, dict)  # type: ignore[attr-defined]
    assert asyncio.iscoroutinefunction(receiver._handle_rtp_packet)
    await pc.close()
