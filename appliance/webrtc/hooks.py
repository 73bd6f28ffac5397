"""The narrow hooks into aiortc and aioice this gateway depends on (versions pinned).

aiortc has no public API for receiving encoded RTP or for setting its RTCP interval, and
aioice decides host candidates alone; a relay needs all three. The hooks are:

* :func:`tap_receiver` replaces ``RTCRtpReceiver._handle_rtp_packet`` on one receiver
  instance: packets reach the relay as they leave SRTP, before depayloading, the jitter
  buffer (~80 ms) and the decoder, which therefore never run. RTCP reception statistics
  are still fed, so aiortc's receiver reports stay truthful. The relay gets the box's own
  :class:`appliance.media.rtp.RtpPacket`, the type the phone leg uses.
* :func:`set_host_addresses` replaces ``aioice.ice.get_host_addresses`` (process-wide)
  so host candidates are the configured ICE addresses or interfaces, loopback included
  when it is configured (aioice drops 127.0.0.1 by itself).
* :func:`set_rtcp_interval` replaces the ``random`` module seen by
  ``aiortc.rtcrtpsender`` and ``aiortc.rtcrtpreceiver`` (process-wide), whose only use
  there is the RTCP timer's ``asyncio.sleep(0.5 + random.random())``: aiortc's sender and
  receiver reports then follow the interval the phone leg uses (RFC 3550 §6.2's
  5-second minimum) instead of aiortc's fixed 1 second.

The audio fast path (:mod:`appliance.webrtc.fastpath`) hooks further, on one peer
connection's objects; its docstring lists the private attributes it relies on.

``tests/webrtc/test_hooks.py`` fails if an aiortc or aioice upgrade breaks any of them.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable
from typing import Any

import aioice
import aioice.ice
import aiortc
import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
from aiortc.rtcrtpreceiver import RTCRtpReceiver, StreamStatistics
from aiortc.rtp import RtpPacket as AiortcPacket

from appliance.media.rtp import RtpPacket
from appliance.webrtc.host_addresses import interface_addresses

log = logging.getLogger(__name__)

AIORTC_VERSION = "1.16.0"
AIOICE_VERSION = "0.13.0"

PacketSink = Callable[[RtpPacket], None]


def check_versions() -> list[str]:
    """Mismatches between the installed and the verified versions (empty when fine)."""
    problems = []
    if aiortc.__version__ != AIORTC_VERSION:
        problems.append(f"aiortc {aiortc.__version__} (hooks verified on {AIORTC_VERSION})")
    if aioice.__version__ != AIOICE_VERSION:
        problems.append(f"aioice {aioice.__version__} (hooks verified on {AIOICE_VERSION})")
    return problems


def tap_receiver(receiver: RTCRtpReceiver, sink: PacketSink) -> PacketSink:
    """Deliver this receiver's RTP packets to ``sink`` instead of its decoder.

    Returns the synchronous delivery function (statistics, then ``sink``) that the fast
    path (:class:`appliance.webrtc.fastpath.FastReceiver`) calls directly.
    """
    streams: dict[int, Any] = receiver._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]
    codecs: dict[int, Any] = receiver._RTCRtpReceiver__codecs  # type: ignore[attr-defined]

    def deliver(packet: RtpPacket) -> None:
        if not receiver._enabled:
            return
        codec = codecs.get(packet.payload_type)
        if codec is None:
            return
        stats = streams.get(packet.ssrc)
        if stats is None:
            stats = streams[packet.ssrc] = StreamStatistics(codec.clockRate)
        stats.add(packet)  # type: ignore[arg-type]  # reads sequence_number and timestamp
        sink(packet)

    async def handle(packet: AiortcPacket, arrival_time_ms: int) -> None:
        deliver(from_aiortc(packet))

    receiver._handle_rtp_packet = handle  # type: ignore[method-assign]
    return deliver


def from_aiortc(packet: AiortcPacket) -> RtpPacket:
    """An RTP packet aiortc parsed, as the relay takes it (header extensions dropped:
    they describe the browser leg only, RFC 8285)."""
    return RtpPacket(
        payload_type=packet.payload_type, sequence=packet.sequence_number,
        timestamp=packet.timestamp, ssrc=packet.ssrc, marker=bool(packet.marker),
        payload=packet.payload, csrcs=tuple(packet.csrc),
    )  # fmt: skip


def set_host_addresses(addresses: Iterable[str] = (), interfaces: Iterable[str] = ()) -> None:
    """Make aioice offer these host candidates (RFC 8445 §5.1.1.1) from now on."""
    fixed = list(addresses)
    names = list(interfaces)

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        chosen = fixed or interface_addresses(names)
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = host_addresses


AIORTC_RTCP_INTERVAL = 1.0  # aiortc's own: sleep(0.5 + random.random()), 0.5 to 1.5 s


class _RtcpTimer:
    """Stands for the ``random`` module in aiortc's sender and receiver modules.

    aiortc waits ``0.5 + random.random()`` seconds between reports: 0.5 to 1.5 times a
    1-second interval. :meth:`random` returns what makes that wait 0.5 to 1.5 times
    ``interval`` instead, uniformly (RFC 3550 §6.3.1's randomization).
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval

    def random(self) -> float:
        """The value aiortc adds to 0.5 for its next RTCP wait."""
        return self.interval * (0.5 + random.random()) - 0.5  # noqa: S311 - timing, not a secret


def set_rtcp_interval(seconds: float) -> None:
    """Make aiortc's RTCP senders and receivers report every ``seconds`` on average
    (0.5 to 1.5 times it, RFC 3550 §6.3.1) from their next report on."""
    if not seconds > 0:
        raise ValueError(f"an RTCP interval must be a positive number of seconds, not {seconds}")
    timer = _RtcpTimer(seconds)
    aiortc.rtcrtpsender.random = timer  # type: ignore[assignment,attr-defined]
    aiortc.rtcrtpreceiver.random = timer  # type: ignore[assignment,attr-defined]
