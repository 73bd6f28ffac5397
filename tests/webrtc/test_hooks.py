"""The aiortc/aioice hooks still hold on the pinned versions (an upgrade that breaks them
fails here, not in a call)."""

from __future__ import annotations

import asyncio
import inspect
import re
import statistics
import time

import aioice.ice
import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import pytest
from aioice.ice import Connection, StunProtocol
from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import RTCDtlsTransport, RtpRouter, State
from aiortc.rtcrtpreceiver import RTCRtpReceiver, StreamStatistics
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import HeaderExtensionsMap

from appliance.webrtc import fastpath, hooks


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


def test_rtcp_interval_hook_scales_the_wait_of_aiortcs_reports() -> None:
    """aiortc's sender and receiver use ``random`` only for the wait between their RTCP
    reports; through the hook that wait is 0.5 to 1.5 times the interval (RFC 3550
    §6.3.1), 5 s on average as the box sets it (§6.2), and back to aiortc's own."""
    for module, owner in (
        (aiortc.rtcrtpsender, RTCRtpSender),
        (aiortc.rtcrtpreceiver, RTCRtpReceiver),
    ):
        assert re.findall(r"\brandom\.\w+", inspect.getsource(module)) == ["random.random"]
        assert "await asyncio.sleep(0.5 + random.random())" in inspect.getsource(owner._run_rtcp)
    saved = aiortc.rtcrtpsender.random, aiortc.rtcrtpreceiver.random  # type: ignore[attr-defined]
    try:
        hooks.set_rtcp_interval(5.0)
        for module in (aiortc.rtcrtpsender, aiortc.rtcrtpreceiver):
            waits = [0.5 + module.random.random() for _ in range(4000)]
            assert min(waits) >= 2.5 and max(waits) < 7.5
            assert 4.8 < statistics.mean(waits) < 5.2
        hooks.set_rtcp_interval(hooks.AIORTC_RTCP_INTERVAL)
        waits = [0.5 + aiortc.rtcrtpsender.random.random() for _ in range(4000)]  # type: ignore[attr-defined]
        assert min(waits) >= 0.5 and max(waits) < 1.5
        for wrong in (0.0, -5.0, float("nan")):
            with pytest.raises(ValueError, match="must be a positive number of seconds"):
                hooks.set_rtcp_interval(wrong)
    finally:
        aiortc.rtcrtpsender.random, aiortc.rtcrtpreceiver.random = saved  # type: ignore[attr-defined]


# ----- the audio fast path (appliance.webrtc.fastpath) -----------------------------------------


def test_aioice_hands_non_stun_datagrams_to_connection_data_received() -> None:
    """FastReceiver replaces ``Connection.data_received`` on the instance; StunProtocol must
    still call it through the attribute with ``(data, component)``."""
    source = inspect.getsource(StunProtocol.datagram_received)
    assert "self.receiver.data_received(data, self.local_candidate.component)" in source
    assert list(inspect.signature(Connection.data_received).parameters) == [
        "self", "data", "component",
    ]  # fmt: skip
    assert list(inspect.signature(StunProtocol.datagram_received).parameters) == [
        "self", "data", "addr",
    ]  # fmt: skip
    assert "self.local_candidate.component" in source
    assert "self._nominated.get(component)" in inspect.getsource(Connection.sendto)
    assert "active_pair.protocol.send_data(data, active_pair.remote_addr)" in inspect.getsource(
        Connection.sendto
    )
    # A plain UDP pair's send_data is the socket's sendto, which FastSender calls directly.
    assert "self.transport.sendto(data, addr)" in inspect.getsource(StunProtocol.send_data)


def test_dtls_transport_demultiplexes_and_protects_as_the_fast_path_mirrors() -> None:
    """RFC 7983 first-byte ranges and SRTP handling in ``_recv_next`` / ``_send_rtp``."""
    receive = inspect.getsource(RTCDtlsTransport._recv_next)
    assert "first_byte > 127 and first_byte < 192 and self._rx_srtp" in receive
    assert "self._rx_srtp.unprotect(data)" in receive
    handle = inspect.getsource(RTCDtlsTransport._handle_rtp_data)
    assert "RtpPacket.parse(data, self._rtp_header_extensions_map)" in handle
    assert "self._rtp_router.route_rtp(packet)" in handle
    send = inspect.getsource(RTCDtlsTransport._send_rtp)
    assert "self._tx_srtp.protect(data)" in send
    assert State.CONNECTED.name == "CONNECTED"


def test_receiver_statistics_read_only_the_numbers_the_fast_path_gives() -> None:
    """``StreamStatistics.add`` gets a reused object with the sequence number and
    timestamp only (``fastpath._Numbers``); it must read nothing else of the packet."""
    add = inspect.getsource(StreamStatistics.add)
    assert set(re.findall(r"packet\.(\w+)", add)) == {"sequence_number", "timestamp"}
    assert list(inspect.signature(StreamStatistics.add).parameters) == ["self", "packet"]
    router = inspect.getsource(RtpRouter)
    assert "self.ssrc_table: dict[int, RtpReceiver] = {}" in router
    # Each table is made once, in __init__: the fast path keeps the dicts.
    assert len(re.findall(r"self\.ssrc_table(: [^=]+)? =", router)) == 1
    assert len(re.findall(r"self\.payload_type_table(: [^=]+)? =", router)) == 1


def test_sender_reports_come_from_the_counters_the_fast_path_keeps() -> None:
    run_rtp = inspect.getsource(RTCRtpSender._run_rtp)
    for line in (
        "packet.extensions.mid = self.__mid",
        "self.__ntp_timestamp = clock.current_ntp_time()",
        "self.__rtp_timestamp = packet.timestamp",
        "self.__octet_count += len(payload)",
        "self.__packet_count += 1",
        "packet.serialize(self.__rtp_header_extensions_map)",
        "packet.ssrc = self._ssrc",
    ):
        assert line in run_rtp, line
    run_rtcp = inspect.getsource(RTCRtpSender._run_rtcp)
    for line in (
        "ntp_timestamp=self.__ntp_timestamp",
        "rtp_timestamp=self.__rtp_timestamp",
        "packet_count=self.__packet_count",
        "octet_count=self.__octet_count",
    ):
        assert line in run_rtcp, line
    assert "if not self._enabled" in inspect.getsource(RTCRtpSender._next_encoded_frame)


async def test_the_private_attributes_of_the_fast_path_exist_with_their_shapes() -> None:
    pc = RTCPeerConnection()
    transceiver = pc.addTransceiver("audio")
    sender, receiver = transceiver.sender, transceiver.receiver
    dtls = receiver.transport
    assert sender.transport is dtls
    assert sender._RTCRtpSender__transport is dtls  # type: ignore[attr-defined]
    assert dtls._transport is dtls.transport
    assert isinstance(dtls, RTCDtlsTransport)
    assert isinstance(dtls._state, State)
    sessions: list[object] = [dtls._rx_srtp, dtls._tx_srtp]
    assert sessions == [None, None]  # pylibsrtp Sessions once DTLS is connected
    assert isinstance(dtls._rtp_router, RtpRouter)
    assert callable(dtls._rtp_router.route_rtp)
    assert isinstance(dtls._rtp_header_extensions_map, HeaderExtensionsMap)
    assert asyncio.iscoroutinefunction(dtls._send_rtp)
    connection = dtls.transport._connection
    assert isinstance(connection, Connection)
    assert connection._nominated == {}
    assert connection._protocols == []  # StunProtocol per local socket once gathered
    assert callable(connection.data_received)
    assert isinstance(sender._ssrc, int) and sender._enabled is True
    assert sender._RTCRtpSender__started is False  # type: ignore[attr-defined]
    assert sender._RTCRtpSender__mid is None  # type: ignore[attr-defined]
    assert isinstance(
        sender._RTCRtpSender__rtp_header_extensions_map,  # type: ignore[attr-defined]
        HeaderExtensionsMap,
    )
    for name in ("ntp_timestamp", "rtp_timestamp", "octet_count", "packet_count"):
        assert getattr(sender, f"_RTCRtpSender__{name}") == 0
    assert isinstance(receiver._enabled, bool)
    # The track aiortc's sender waits on while the fast path sends ends with the sender.
    track = fastpath.IdleTrack()
    waiting = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0)
    track.stop()
    with pytest.raises(MediaStreamError):
        await waiting
    await pc.close()


async def test_a_fast_senders_counters_are_what_aiortc_reads_for_its_reports() -> None:
    """The sender's report fields (RFC 3550 §6.4.1), read and written by aiortc under their
    private names, are the FastSender's: a real sender, its class swapped, its stats."""
    pc = RTCPeerConnection()
    sender = pc.addTransceiver("audio").sender
    fast = fastpath.FastSender(sender)
    assert isinstance(sender, RTCRtpSender) and type(sender) is not RTCRtpSender
    assert (fast.sent, fast.octets, fast.rtp_timestamp) == (0, 0, 0)
    assert sender._RTCRtpSender__ntp_timestamp == 0  # type: ignore[attr-defined]
    fast.wall_time, fast.rtp_timestamp, fast.sent, fast.octets = time.time(), 1234, 7, 1120
    ntp = sender._RTCRtpSender__ntp_timestamp  # type: ignore[attr-defined]
    assert abs(ntp / 2**32 - 2208988800 - fast.wall_time) < 1e-6
    assert sender._RTCRtpSender__rtp_timestamp == 1234  # type: ignore[attr-defined]
    assert sender._RTCRtpSender__packet_count == 7  # type: ignore[attr-defined]
    assert sender._RTCRtpSender__octet_count == 1120  # type: ignore[attr-defined]
    sender._RTCRtpSender__packet_count += 1  # type: ignore[attr-defined]  # as aiortc writes
    sender._RTCRtpSender__ntp_timestamp = 5 << 32  # type: ignore[attr-defined]
    assert fast.sent == 8 and sender._RTCRtpSender__ntp_timestamp == 5 << 32  # type: ignore[attr-defined]
    stats = [s for s in (await sender.getStats()).values() if s.type == "outbound-rtp"]
    assert [(s.packetsSent, s.bytesSent) for s in stats] == [(8, 1120)]
    again = fastpath.FastSender(sender)  # a second fast path goes on counting
    assert (again.sent, again.octets, sender._fast) == (8, 1120, again)  # type: ignore[attr-defined]
    await pc.close()
