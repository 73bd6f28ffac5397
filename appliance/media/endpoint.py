"""The box's RTP/RTCP sockets toward one phone stream (asyncio adapter).

One even port for RTP and the next odd one for RTCP (RFC 3550 §11), or both on the RTP
port when the phone multiplexes (RFC 5761). Packets are accepted only from the phone's
signalled address; the port is latched from the first valid packet (symmetric RTP,
RFC 4961), which is what phones behind a port-changing firewall need. Once latched, RTP
from any other port is not media (a second stream must not be mixed into the call),
except from exactly the port the SDP names, which always wins; a new SDP address or
port latches afresh, the same one (hold, resume) keeps the latch. SDES-SRTP (RFC 4568,
RFC 3711) is applied here when the call negotiated it, and the box takes part in RTCP
toward the phone (:mod:`appliance.media.rtcp`) once the call's audio starts.

RTP is sent with the socket's own ``sendto``: relayed audio the socket refuses (a full
send buffer) is dropped and counted, not queued behind later audio; anything else (text,
RFC 4733 events) waits in the transport's queue. Plain RTP of the relayed
payload type from the latched address reaches the call as header fields
(:meth:`RtpEndpoint.tap`), with no packet object; everything else as an
:class:`~appliance.media.rtp.RtpPacket`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from appliance.media.rtcp import MIN_INTERVAL, RtcpError, RtcpSession, parse_compound
from appliance.media.rtp import AFTER_FIRST_OCTET, FIXED_HEADER, RtpError, RtpPacket, is_rtcp
from appliance.media.sdes import SrtpContext, SrtpError
from appliance.media.sdp import NULL_ADDRESSES, is_null_address

log = logging.getLogger(__name__)

PacketHandler = Callable[[RtpPacket], None]
RtcpHandler = Callable[[bytes], None]
AudioTap = Callable[[int, int, int, bool, bytes, float], None]
"""Sequence number, timestamp, SSRC, marker, payload and arrival time of one packet."""


def _on_hold(remote: tuple[str, int]) -> bool:
    """Port 0 or a null address: a hold the RFC 2543 way (RFC 3264 §8.4)."""
    return remote[1] == 0 or remote[0] in NULL_ADDRESSES


class PortAllocator:
    """Even RTP ports from the configured range (``[media] rtp_port_min/max``)."""

    def __init__(self, low: int, high: int) -> None:
        self.low = low + (low % 2)
        self.high = high
        self.in_use: set[int] = set()

    def candidates(self) -> list[int]:
        """Free even ports, starting at a random one (RFC 3550 §11: RTCP at port + 1)."""
        ports = [p for p in range(self.low, self.high, 2) if p not in self.in_use]
        start = secrets.randbelow(len(ports)) if ports else 0
        return ports[start:] + ports[:start]


class _Socket(asyncio.DatagramProtocol):
    def __init__(self, endpoint: RtpEndpoint, rtcp: bool) -> None:
        self.endpoint = endpoint
        self.rtcp = rtcp
        self.transport: asyncio.DatagramTransport | None = None
        if not rtcp:  # the RTP port's datagrams go straight to the endpoint
            self.datagram_received = endpoint.rtp_datagram  # type: ignore[method-assign]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            self.endpoint.received(data, str(addr[0]), int(addr[1]), self.rtcp)
        except Exception:  # a peer's bytes never stop the endpoint
            self.endpoint.stats.malformed += 1
            log.exception("RTP packet from %s dropped", addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("RTP socket error: %s", exc)


@dataclass
class EndpointStats:
    """Counters for /metrics and the call's end report."""

    received: int = 0
    sent: int = 0
    malformed: int = 0
    foreign: int = 0
    srtp_failures: int = 0
    rtcp_received: int = 0
    rtcp_sent: int = 0
    rtcp_malformed: int = 0
    send_failures: int = 0


class RtpEndpoint:
    """RTP and RTCP toward one phone stream."""

    def __init__(
        self,
        on_packet: PacketHandler,
        on_rtcp: RtcpHandler | None = None,
        *,
        rtcp_interval: float = MIN_INTERVAL,
    ) -> None:
        self.on_packet = on_packet
        self.on_rtcp = on_rtcp
        self.rtcp_interval = rtcp_interval
        self.rtcp: RtcpSession | None = None
        self.last_rtcp_received: float | None = None  # None: the phone has sent no RTCP
        self._rtcp_timer: asyncio.TimerHandle | None = None
        self._signalled: tuple[str, int, int | None, bool] | None = None
        self.stats = EndpointStats()
        self.local_address = ""
        self.port = 0
        self.remote: tuple[str, int] | None = None
        self._send_to: tuple[str, int] | None = None  # remote; None while a hold (RFC 3264 §8.4)
        self.remote_rtcp: tuple[str, int] | None = None
        self.rtcp_mux = False
        self.srtp: SrtpContext | None = None
        self.last_received = time.monotonic()
        self._rtp: _Socket | None = None
        self._rtcp: _Socket | None = None
        self._rtp_sendto: Callable[[bytes, tuple[str, int]], object] | None = None
        self._allocator: PortAllocator | None = None
        self._latched = False
        self._latched_at: tuple[str, int] | None = None  # for plain RTP's one-step path
        self._tap_type = -1
        self._tap: AudioTap = lambda *fields: None  # never called while _tap_type is -1

    async def open(self, address: str, allocator: PortAllocator) -> int:
        """Bind an even/odd port pair on ``address``; returns the RTP port."""
        for port in allocator.candidates():
            try:
                rtp, rtp_socket = await self._bind(address, port, rtcp=False)
            except OSError:
                continue
            try:
                rtcp, _ = await self._bind(address, port + 1, rtcp=True)
            except OSError:
                assert rtp.transport is not None
                rtp.transport.close()
                continue
            self._rtp, self._rtcp = rtp, rtcp
            self._rtp_sendto = rtp_socket.sendto
            self.local_address, self.port = address, port
            allocator.in_use.add(port)
            self._allocator = allocator
            return port
        raise OSError(f"no free RTP port pair on {address} in the configured range")

    async def _bind(self, address: str, port: int, *, rtcp: bool) -> tuple[_Socket, socket.socket]:
        """One UDP socket, kept for sending RTP without the transport's queue."""
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind((address, port))
            _, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
                lambda: _Socket(self, rtcp), sock=sock
            )
        except BaseException:
            sock.close()
            raise
        return protocol, sock

    def set_remote(
        self, address: str, port: int, *, rtcp_port: int | None = None, rtcp_mux: bool = False
    ) -> None:
        """Where the phone's SDP says its stream is (RFC 3605 ``a=rtcp``, RFC 5761).

        The same description again (a hold or resume re-INVITE) keeps what was latched;
        a new address or port starts latching afresh.
        """
        signalled = (address, port, rtcp_port, rtcp_mux)
        if signalled == self._signalled:
            return
        self._signalled = signalled
        self._set_remote((address, port))
        self.rtcp_mux = rtcp_mux
        self.remote_rtcp = (address, port if rtcp_mux else (rtcp_port or port + 1))
        self._latched = False
        self._latched_at = None

    def _set_remote(self, remote: tuple[str, int]) -> None:
        self.remote = remote
        self._send_to = None if _on_hold(remote) else remote

    def tap(self, payload_type: int, function: AudioTap) -> None:
        """Give plain RTP of ``payload_type`` (the relayed audio) from the latched address
        to ``function`` as its header fields, payload and arrival time, with no packet
        object; other packets still go to ``on_packet``. A payload type of -1 ends it."""
        self._tap_type, self._tap = payload_type, function

    def rtp_datagram(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        """A datagram on the RTP port. The common case, plain RTP with no CSRCs, no
        extension and no padding (RFC 3550 §5.1) from the latched address, is handled
        here in one step; everything else by :meth:`received`."""
        try:
            if (
                addr == self._latched_at
                and self.srtp is None
                and len(data) >= 12
                and data[0] == 0x80
                and not 64 <= data[1] & 0x7F <= 95  # not RTCP (RFC 5761 §4)
            ):
                second, sequence, timestamp, ssrc = AFTER_FIRST_OCTET.unpack_from(data, 1)
                self.stats.received += 1
                self.last_received = now = time.monotonic()
                if self.rtcp is not None:
                    self.rtcp.rtp_received(ssrc, sequence, timestamp, now)
                if second & 0x7F == self._tap_type:
                    self._tap(sequence, timestamp, ssrc, second > 0x7F, data[12:], now)
                else:
                    payload_type, marker = second & 0x7F, second > 0x7F
                    self.on_packet(
                        RtpPacket(payload_type, sequence, timestamp, ssrc, marker, data[12:])
                    )
                return
            self.received(data, str(addr[0]), int(addr[1]), False)
        except Exception:  # a peer's bytes never stop the endpoint
            self.stats.malformed += 1
            log.exception("RTP packet from %s dropped", addr)

    def received(self, data: bytes, host: str, port: int, on_rtcp_port: bool) -> None:
        """One datagram from the network."""
        if self.remote is None or host != self.remote[0]:
            self.stats.foreign += 1
            return
        if on_rtcp_port:
            self._received_rtcp(data, host, port, on_rtcp_port)
            return
        signalled = self._signalled is not None and port == self._signalled[1]
        if self._latched and port != self.remote[1] and not signalled:
            self.stats.foreign += 1
            return
        if is_rtcp(data):
            self._received_rtcp(data, host, port, on_rtcp_port)
            return
        if self.srtp is not None:
            try:
                data = self.srtp.unprotect(data)
            except SrtpError:
                self.stats.srtp_failures += 1
                return
        try:
            packet = RtpPacket.parse(data)
        except RtpError:
            self.stats.malformed += 1
            return
        if (host, port) != self.remote:
            said = self._signalled[1] if self._signalled else 0
            log.info("RTP latched to %s:%d (SDP said port %d)", host, port, said)
            self._set_remote((host, port))
            if self.rtcp_mux:
                self.remote_rtcp = (host, port)
        self._latched = True
        self._latched_at = self.remote
        self.stats.received += 1
        self.last_received = time.monotonic()
        if self.rtcp is not None:
            self.rtcp.rtp_received(
                packet.ssrc, packet.sequence, packet.timestamp, self.last_received
            )
        self.on_packet(packet)

    def _received_rtcp(self, data: bytes, host: str, port: int, on_rtcp_port: bool) -> None:
        if self.srtp is not None:
            try:
                data = self.srtp.unprotect_rtcp(data)
            except SrtpError:
                self.stats.srtp_failures += 1
                return
        try:
            if self.rtcp is not None:
                self.rtcp.rtcp_received(data, time.monotonic())
            else:
                parse_compound(data)
        except RtcpError as exc:
            self.stats.rtcp_malformed += 1
            log.debug("RTCP from %s:%d dropped: %s", host, port, exc)
            return
        self.stats.rtcp_received += 1
        self.last_rtcp_received = time.monotonic()
        if on_rtcp_port:
            self.remote_rtcp = (host, port)
        if self.on_rtcp is not None:
            self.on_rtcp(data)

    def send(self, packet: RtpPacket) -> None:
        """Send one RTP packet to the phone (protected when SRTP is on). Unlike relayed
        audio, a packet the socket cannot take now (text, RFC 4733 events) waits in the
        transport's queue, in order: it must not be lost."""
        remote, sock = self._send_to, self._rtp  # None while on hold (RFC 3264 §8.4)
        if remote is None or sock is None or sock.transport is None:
            return
        data = packet.serialize()
        if self.srtp is not None:
            data = self.srtp.protect(data)
        sock.transport.sendto(data, remote)  # at once, or queued until the socket can take it
        self.stats.sent += 1
        if self.rtcp is not None:
            self.rtcp.rtp_sent(packet.timestamp, len(packet.payload), time.monotonic())

    def send_relayed(
        self, numbers: tuple[int, int, int, bool], ssrc: int, payload: bytes, now: float
    ) -> None:
        """Send relayed audio: ``numbers`` are the payload type, sequence number,
        timestamp and marker from :meth:`~appliance.media.rtp.StreamRewriter.forward`; a
        12-byte header (RFC 3550 §5.1: no CSRCs, no extension) and the payload as it came;
        ``now`` is the monotonic time, for RTCP. Written with the socket's own ``sendto``; a
        packet it refuses (a full buffer) is dropped and counted, since late audio is as bad
        as lost audio. Nothing is sent while the phone's address is a hold (RFC 3264 §8.4)."""
        remote, sendto = self._send_to, self._rtp_sendto
        if remote is None or sendto is None:
            return
        payload_type, sequence, timestamp, marker = numbers
        data = FIXED_HEADER.pack(0x80, marker << 7 | payload_type, sequence, timestamp, ssrc)
        data += payload
        if self.srtp is not None:
            data = self.srtp.protect(data)
        try:
            sendto(data, remote)
        except OSError as exc:
            self.stats.send_failures += 1
            log.debug("RTP to %s:%d not sent: %s", remote[0], remote[1], exc)
            return
        self.stats.sent += 1
        if self.rtcp is not None:
            self.rtcp.rtp_sent(timestamp, len(payload), now)

    def send_rtcp(self, data: bytes) -> None:
        """Send one compound RTCP packet (RFC 3550 §6)."""
        target = self.remote_rtcp
        sock = self._rtp if self.rtcp_mux else self._rtcp
        if target is None or sock is None or sock.transport is None or is_null_address(target[0]):
            return
        if self.srtp is not None:
            data = self.srtp.protect_rtcp(data)
        sock.transport.sendto(data, target)
        self.stats.rtcp_sent += 1

    def start_rtcp(self, clock_rate: int, ssrc: int) -> None:
        """Report to the phone from now on (RFC 3550 §6), as ``ssrc``, the SSRC of the
        RTP the box sends it, on the clock of the negotiated codec."""
        self._cancel_rtcp_timer()
        self.rtcp = RtcpSession(ssrc, clock_rate, time.monotonic(), min_interval=self.rtcp_interval)
        self._schedule_rtcp()

    def _schedule_rtcp(self) -> None:
        if self.rtcp is None or self._rtp is None:
            return
        delay = max(0.0, self.rtcp.get_timer() - time.monotonic())
        self._rtcp_timer = asyncio.get_running_loop().call_later(delay, self._rtcp_due)

    def _rtcp_due(self) -> None:
        self._rtcp_timer = None
        if self.rtcp is None:
            return
        data = self.rtcp.handle_timer(time.monotonic())
        if data is not None:
            self.send_rtcp(data)
        self._schedule_rtcp()

    def _cancel_rtcp_timer(self) -> None:
        if self._rtcp_timer is not None:
            self._rtcp_timer.cancel()
            self._rtcp_timer = None

    def silent_for(self) -> float:
        """Seconds since the phone's last valid RTP packet."""
        return time.monotonic() - self.last_received

    def rtcp_silent_for(self) -> float | None:
        """Seconds since the phone's last valid RTCP packet; None if it never sent any."""
        if self.last_rtcp_received is None:
            return None
        return time.monotonic() - self.last_rtcp_received

    def close(self) -> None:
        """Send RTCP BYE (RFC 3550 §6.6), release both sockets and the port pair
        (idempotent)."""
        self._cancel_rtcp_timer()
        if self.rtcp is not None:
            goodbye = self.rtcp.bye(time.monotonic())
            if goodbye is not None:
                self.send_rtcp(goodbye)
        for sock in (self._rtp, self._rtcp):
            if sock is not None and sock.transport is not None:
                sock.transport.close()
        self._rtp = self._rtcp = None
        self._rtp_sendto = None
        if self._allocator is not None:
            self._allocator.in_use.discard(self.port)
            self._allocator = None
