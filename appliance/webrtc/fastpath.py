"""The browser leg's audio fast path: SRTP in and out without aiortc's per-packet tasks.

aiortc moves every received packet through two asyncio queues (aioice's ``Connection``
and the DTLS transport's task) and every sent packet through a track queue, the sender's
task, ``av.Packet`` and the encoder. For relayed audio none of that does anything: this
module does the same work synchronously, with aiortc's own SRTP sessions, router and
sockets. It hooks, on one peer connection's objects only (aiortc 1.16.0, aioice
0.13.0, checked by ``tests/webrtc/test_hooks.py``):

* **receive**: ``aioice.ice.Connection.data_received`` (instance attribute), and
  ``StunProtocol.datagram_received`` of its UDP sockets (``Connection._protocols``),
  which passes datagrams starting with 128 to 191 there without trying STUN first. SRTP
  packets (first byte 128 to 191, RFC 7983 §7; not RTCP, RFC 5761 §4) are unprotected
  once ``RTCDtlsTransport._state`` is ``CONNECTED``, with libsrtp's own call on
  ``RTCDtlsTransport._rx_srtp`` (:mod:`appliance.media.srtp`). A packet whose SSRC and
  payload type the transport's ``_rtp_router`` already routes to the receiver
  (``ssrc_table``, ``payload_type_table``) is a known source: it is counted in the
  receiver's statistics (``_RTCRtpReceiver__remote_streams``, which its RTCP receiver
  reports come from; ``StreamStatistics.add`` reads only the sequence number and
  timestamp) and, when its header is a plain one (no CSRCs, no padding, one extension
  block at most: header extensions describe this leg only), given to the call as header
  fields and payload (:meth:`WebRtcLeg.tap_audio`), else as the box's own
  :class:`~appliance.media.rtp.RtpPacket`. The first packet of a source goes through the
  receiver tap (:func:`appliance.webrtc.hooks.tap_receiver`) after
  ``_rtp_router.route_rtp``, which reads only its SSRC and payload type. STUN, DTLS,
  SCTP, SRTCP and everything before DTLS is up take aiortc's normal path, unchanged.
* **send**: packets are built here with the sender's SSRC (``RTCRtpSender._ssrc``),
  payload type, ``sdes:mid`` extension (``_RTCRtpSender__mid`` through the sender's
  ``_RTCRtpSender__rtp_header_extensions_map``, as aiortc's own sender writes it) and
  their own sequence/timestamp continuity (RFC 3550 §5.1), protected with libsrtp's own
  call on ``RTCDtlsTransport._tx_srtp`` (the sender's ``_RTCRtpSender__transport``) and
  written at once to the UDP socket of the nominated ICE pair (``Connection._nominated``;
  the pair's address and send function are kept until another pair is nominated): with
  the socket's own ``sendto`` on the standard library's loop (``transport._sock``), with
  the transport's ``sendto`` on uvloop, which writes at once when nothing is queued. A
  packet the socket refuses (a full buffer) is dropped and counted, never queued behind
  later audio. When that pair is not a plain UDP socket (a TURN relay) the packet takes
  aiortc's ``RTCDtlsTransport._send_rtp`` instead. The sender's RTCP sender-report
  counters (``_RTCRtpSender__packet_count``, ``__octet_count``, ``__rtp_timestamp``,
  ``__ntp_timestamp``) read what the fast path sent, so its sender reports stay true
  (RFC 3550 §6.4.1): the sender's class becomes :class:`_ReportingSender`, whose
  properties of those names compute them when aiortc reads them instead of having them
  written per packet. aiortc's own RTP task stays
  idle: its track (:class:`IdleTrack`) never yields a frame.

The DTLS transport's own byte and packet counters (``RTCDtlsTransport.getStats``) count
only what takes aiortc's path; the box reads none of them, and the fast path counts its
own packets (:attr:`FastReceiver.fast`, :attr:`FastSender.sent`).

ICE connectivity checks and consent freshness (RFC 7675) stay with aioice: they are STUN
and never reach the fast path. Before DTLS is connected, or after consent is lost, there is
no way to the browser; payloads to send are then dropped and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

import pylibsrtp
from aioice.ice import Connection, StunProtocol
from aiortc import MediaStreamTrack, clock
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import RtpPacket as AiortcPacket

from appliance.media.rtcp import NTP_UNIX_OFFSET, ntp_timestamp
from appliance.media.rtp import AFTER_FIRST_OCTET, RtpError, RtpPacket, plain_payload_start
from appliance.media.srtp import protector, unprotector

log = logging.getLogger(__name__)

_pending: set[asyncio.Future[None]] = set()  # the rare packets left to aiortc's tasks


def _keep(task: asyncio.Future[None]) -> None:
    _pending.add(task)
    task.add_done_callback(_pending.discard)


_HEAD = struct.Struct("!BBHL")  # RFC 3550 §5.1 up to the timestamp; SSRC on in the template
_COMPONENT_RTP = 1
_wall_clock = time.time
_CONNECTED = State.CONNECTED  # a module constant: an enum member lookup costs more per packet


class IdleTrack(MediaStreamTrack):
    """The track aiortc's sender waits on while :class:`FastSender` sends: it never yields."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._never: asyncio.Future[None] | None = None

    async def recv(self) -> Any:
        """Wait until the track stops (aiortc cancels the wait when the sender stops)."""
        self._never = asyncio.get_running_loop().create_future()
        await self._never
        raise MediaStreamError

    def stop(self) -> None:
        """End the wait."""
        super().stop()
        if self._never is not None and not self._never.done():
            self._never.set_result(None)


AudioFields = Callable[[int, int, int, int, bool, bytes], None]
"""Payload type, sequence number, timestamp, SSRC, marker and payload of one packet."""


class _Numbers:
    """What ``StreamStatistics.add`` reads of a packet (checked by tests/webrtc/test_hooks.py)."""

    __slots__ = ("sequence_number", "timestamp")

    def __init__(self) -> None:
        self.sequence_number = 0
        self.timestamp = 0


class FastReceiver:
    """Delivers one receiver's SRTP packets from the datagram callback.

    ``deliver`` is :func:`appliance.webrtc.hooks.tap_receiver`'s function (statistics,
    then the sink), used for a source's first packet. After that a known source's
    packets feed the receiver's statistics here and go to ``fields`` as header fields
    when the header is a plain one (no CSRCs, no padding, at most one extension block:
    what browsers send), or else to ``sink`` as a packet.
    """

    def __init__(
        self,
        receiver: RTCRtpReceiver,
        deliver: Callable[[RtpPacket], None],
        sink: Callable[[RtpPacket], None],
        fields: AudioFields | None = None,
    ) -> None:
        self.receiver = receiver
        self.deliver = deliver
        self.sink = sink
        self.fields = fields
        self.hooked: Connection | None = None
        self.fast = 0
        self.undecryptable = 0
        self.unparsable = 0

    def install(self) -> bool:
        """Hook the receiver's ICE connection (idempotent); False when there is none yet."""
        dtls: RTCDtlsTransport | None = self.receiver.transport
        if dtls is None:
            return False
        connection: Connection = dtls.transport._connection
        if connection is self.hooked:
            return True
        original: Callable[[bytes, int], None] = connection.data_received
        receiver = self.receiver
        streams: dict[int, Any] = receiver._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]
        deliver, sink = self.deliver, self.sink
        session: list[Any] = [None, None]  # the rx SRTP session and its unprotect closure
        parse = RtpPacket.parse
        numbers = _Numbers()
        ssrc_table = dtls._rtp_router.ssrc_table
        payload_type_table = dtls._rtp_router.payload_type_table

        def data_received(data: bytes, component: int) -> None:
            rx = dtls._rx_srtp
            if (
                rx is None
                or len(data) < 12
                or component != _COMPONENT_RTP
                or data[0] >> 6 != 2  # RFC 7983 §7: 128-191 is RTP or RTCP
                or 64 <= data[1] & 0x7F <= 95  # RTCP (RFC 5761 §4, rtp.is_rtcp)
                or dtls._state is not _CONNECTED
            ):
                original(data, component)
                return
            if rx is not session[0]:
                session[:] = rx, unprotector(rx)
            try:
                plain = session[1](data)
            except pylibsrtp.Error:
                self.undecryptable += 1
                return
            start = plain_payload_start(plain)  # 0: not a plain header, parsed below
            fields = self.fields
            if start and fields is not None:
                second, sequence, timestamp, ssrc = AFTER_FIRST_OCTET.unpack_from(plain, 1)
                stats = streams.get(ssrc)
                if (
                    stats is not None
                    and ssrc_table.get(ssrc) is receiver
                    and receiver in (payload_type_table.get(second & 0x7F) or ())
                    and receiver._enabled
                ):  # a known source: what route_rtp would answer
                    self.fast += 1
                    numbers.sequence_number, numbers.timestamp = sequence, timestamp
                    try:
                        stats.add(numbers)  # the receiver's RTCP reports (RFC 3550 §6.4.2)
                        fields(
                            second & 0x7F, sequence, timestamp, ssrc, second > 0x7F, plain[start:]
                        )
                    except Exception:
                        log.exception("relaying a browser packet failed")
                    return
            try:
                packet = parse(plain)
            except RtpError:
                self.unparsable += 1
                return
            router = dtls._rtp_router
            ssrc = packet.ssrc
            if router.ssrc_table.get(ssrc) is receiver and receiver in (
                router.payload_type_table.get(packet.payload_type) or ()
            ):  # a known source: what route_rtp would answer
                self.fast += 1
                stats = streams.get(ssrc)
                try:
                    if stats is not None and receiver._enabled:
                        stats.add(packet)  # the receiver's RTCP reports (RFC 3550 §6.4.2)
                        sink(packet)
                    else:
                        deliver(packet)
                except Exception:
                    log.exception("relaying a browser packet failed")
                return
            target = router.route_rtp(packet)  # type: ignore[arg-type]  # SSRC and PT
            if target is receiver:
                self.fast += 1
                try:
                    deliver(packet)
                except Exception:
                    log.exception("relaying a browser packet failed")
            elif target is not None:
                try:
                    theirs = AiortcPacket.parse(plain, dtls._rtp_header_extensions_map)
                except ValueError:
                    self.unparsable += 1
                    return
                _keep(asyncio.ensure_future(target._handle_rtp_packet(theirs, clock.current_ms())))

        connection.data_received = data_received  # type: ignore[method-assign]
        for protocol in connection._protocols:
            if type(protocol) is StunProtocol:
                _demultiplex_first(protocol, data_received)
        self.hooked = connection
        return True


def _demultiplex_first(protocol: StunProtocol, data_received: Callable[[bytes, int], None]) -> None:
    """Give SRTP/SRTCP datagrams of a UDP candidate socket straight to ``data_received``.

    RFC 7983 §7 tells them by their first byte (128 to 191), which STUN never has (its
    first two bits are zero, RFC 8489 §5): aioice's attempt to parse them as STUN is
    skipped. Everything else goes to aioice as before.
    """
    original = protocol.datagram_received
    component = protocol.local_candidate.component

    def datagram_received(data: bytes | str, addr: tuple[Any, ...]) -> None:
        if isinstance(data, bytes) and data and 127 < data[0] < 192:
            data_received(data, component)
        else:
            original(data, addr)

    protocol.datagram_received = datagram_received  # type: ignore[method-assign]


class FastSender:
    """Sends one sender's RTP packets synchronously (RFC 3550 §5.1, RFC 3711 §3.3)."""

    def __init__(self, sender: RTCRtpSender) -> None:
        self.sender = sender
        self.sequence = secrets.randbelow(32768)  # low start, as aiortc and Chrome do
        self.timestamp_origin = secrets.randbits(32)
        self.payload_type = -1  # until :meth:`use`
        # What the sender reports (RFC 3550 §6.4.1), read through _ReportingSender: the
        # last packet's wall-clock time and RTP timestamp, packets and payload octets.
        self.wall_time: float
        self.rtp_timestamp: int
        self.sent: int
        self.octets: int
        # What aiortc's __init__ set, or a former fast path counted: go on from there.
        ntp, self.rtp_timestamp, self.sent, self.octets = (getattr(sender, n) for n in _COUNTERS)
        self.wall_time = ntp / 4294967296.0 - NTP_UNIX_OFFSET
        for name in _COUNTERS:
            vars(sender).pop(name, None)  # the properties of _ReportingSender stand for them
        sender.__class__ = _ReportingSender
        sender._fast = self  # type: ignore[attr-defined]
        self.dropped = 0
        self.relayed_via_aiortc = 0
        self._first = 0
        self._tail: bytes | None = None
        self._pair: Any = None  # the nominated pair the cached address and sendto belong to
        self._address: tuple[str, int] = ("", 0)
        self._sendto: Callable[[bytes, tuple[str, int]], Any] | None = None
        self._tx: Any = None  # the tx SRTP session the cached protect closure belongs to
        self._dtls: RTCDtlsTransport | None = None  # the transport _pairs belongs to
        self._pairs: dict[int, Any] = {}
        self._protect: Callable[[bytes], bytes] = bytes

    def use(self, payload_type: int) -> None:
        """Send with this payload type from now on (the negotiated one)."""
        if payload_type != self.payload_type:
            self.payload_type = payload_type
            self._tail = None

    def _template(self) -> bytes:
        """The fixed header parts as aiortc's sender writes them: SSRC and extensions."""
        sender = self.sender
        template = AiortcPacket(payload_type=self.payload_type, ssrc=sender._ssrc)
        template.extensions.mid = sender._RTCRtpSender__mid  # type: ignore[attr-defined]
        data = template.serialize(
            sender._RTCRtpSender__rtp_header_extensions_map  # type: ignore[attr-defined]
        )
        self._first = data[0]
        self._tail = data[8:]
        return self._tail

    def _nominated(self, pair: Any) -> None:
        """Cache a newly nominated pair's address and send function (RFC 8445 §8.1.1)."""
        self._pair = pair
        self._address = pair.remote_addr
        protocol = pair.protocol
        self._sendto = None
        if type(protocol) is StunProtocol:
            self._sendto = _datagram_sender(protocol.transport)

    def send(self, payload: bytes, timestamp: int, marker: bool = False) -> bool:
        """Send one payload (``timestamp`` in RTP clock units); False when it was dropped."""
        sender = self.sender
        dtls: RTCDtlsTransport = sender._RTCRtpSender__transport  # type: ignore[attr-defined]
        tx = dtls._tx_srtp
        if (
            tx is None
            or dtls._state is not _CONNECTED
            or self.payload_type < 0
            or not sender._enabled
            or not sender._RTCRtpSender__started  # type: ignore[attr-defined]
        ):
            self.dropped += 1
            return False
        if dtls is not self._dtls:  # aioice keeps one dict of nominated pairs per connection
            self._dtls, self._pairs = dtls, dtls._transport._connection._nominated
        pair = self._pairs.get(_COMPONENT_RTP)
        if pair is None:
            self.dropped += 1
            return False
        if pair is not self._pair:
            self._nominated(pair)
        if tx is not self._tx:
            self._tx, self._protect = tx, protector(tx)
        tail = self._tail if self._tail is not None else self._template()
        rtp_timestamp = (self.timestamp_origin + timestamp) & 0xFFFFFFFF
        plain = (
            _HEAD.pack(self._first, marker << 7 | self.payload_type, self.sequence, rtp_timestamp)
            + tail
            + payload
        )
        self.sequence = (self.sequence + 1) & 0xFFFF
        sendto = self._sendto
        if sendto is None:  # not a plain UDP pair (TURN): aiortc's own way
            self.relayed_via_aiortc += 1
            _keep(asyncio.ensure_future(_send_via_aiortc(dtls, plain)))
        else:
            data = self._protect(plain)
            try:
                sendto(data, self._address)
            except OSError:  # a full socket buffer or a closed socket: real-time, not queued
                self.dropped += 1
                return False
        self.wall_time = _wall_clock()  # for the sender reports (_ReportingSender)
        self.rtp_timestamp = rtp_timestamp
        self.octets += len(payload)
        self.sent += 1
        return True


_COUNTERS = (  # aiortc's sender-report fields (RFC 3550 §6.4.1), by their private names
    "_RTCRtpSender__ntp_timestamp",
    "_RTCRtpSender__rtp_timestamp",
    "_RTCRtpSender__packet_count",
    "_RTCRtpSender__octet_count",
)


def _ntp_get(sender: Any) -> int:
    return ntp_timestamp(sender._fast.wall_time)  # the last send's wall clock as NTP


def _ntp_set(sender: Any, value: int) -> None:
    sender._fast.wall_time = value / 4294967296.0 - NTP_UNIX_OFFSET


def _field(name: str) -> property:
    def get(sender: Any) -> int:
        value: int = getattr(sender._fast, name)
        return value

    def set_(sender: Any, value: int) -> None:
        setattr(sender._fast, name, value)

    return property(get, set_)


class _ReportingSender(RTCRtpSender):
    """An ``RTCRtpSender`` whose sender-report counters are its :class:`FastSender`'s.

    aiortc reads ``__ntp_timestamp``, ``__rtp_timestamp``, ``__packet_count`` and
    ``__octet_count`` when it builds a sender report (RFC 3550 §6.4.1) and in
    ``getStats``; here they are properties computed from what :meth:`FastSender.send`
    noted, and what aiortc writes to them goes there too. A sender gets this class by
    ``__class__`` assignment (same layout: it adds no slots) when its fast path is made.
    """

    _fast: FastSender
    # One leading underscore: these names are not mangled again here.
    _RTCRtpSender__ntp_timestamp = property(_ntp_get, _ntp_set)
    _RTCRtpSender__rtp_timestamp = _field("rtp_timestamp")
    _RTCRtpSender__packet_count = _field("sent")
    _RTCRtpSender__octet_count = _field("octets")


def _datagram_sender(
    transport: asyncio.BaseTransport,
) -> Callable[[bytes, tuple[str, int]], Any] | None:
    """A UDP candidate's send function that raises ``OSError`` instead of queueing.

    On the standard library's loop it is the socket's own ``sendto`` (the transport's
    ``_sock``); on uvloop the transport's ``sendto``, which writes at once when nothing
    is queued, after a check that nothing is (a full socket buffer queues there).
    """
    sock = getattr(transport, "_sock", None)
    if isinstance(sock, socket.socket):
        return sock.sendto
    queued = getattr(transport, "get_write_buffer_size", None)
    if queued is None:  # aioice's TurnTransport: a TURN relay, not a socket of the box
        return None
    sendto = transport.sendto  # type: ignore[attr-defined]  # uvloop's UDPTransport

    def send(data: bytes, address: tuple[str, int]) -> None:
        if queued():
            raise BlockingIOError("the socket's buffer is full")
        sendto(data, address)

    return send


async def _send_via_aiortc(dtls: RTCDtlsTransport, plain: bytes) -> None:
    with contextlib.suppress(ConnectionError):
        await dtls._send_rtp(plain)
