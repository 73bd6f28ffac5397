"""One call's real-time text gateway (asyncio adapter): the phone's RFC 4103 stream on an
RTP endpoint ⇄ the browser's RFC 8865 T.140 data channel, with the transcript.

The cores do the protocol work (:class:`RttSender`, :class:`RttReceiver`,
:class:`ChannelText`); this class owns the socket, one timer for their deadlines, and
the wiring (RFC 8865 §6): blocks from the phone go to the channel as they are delivered,
unrecovered ones as U+FFFD; channel text goes to the phone's sender, which adds the
redundancy, pacing and ``cps``; keep-alive BOMs toward the phone are the sender's. The
data channel itself is the WebRTC leg's business: it calls :meth:`channel_opened`,
:meth:`channel_message` and :meth:`channel_closed`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from appliance.media.endpoint import PortAllocator, RtpEndpoint
from appliance.media.rtp import RtpPacket
from appliance.media.sdes import SrtpContext
from appliance.rtt.channel import ChannelText
from appliance.rtt.receiver import Origin, ReceivedBlock, RttReceiver
from appliance.rtt.sdp import CLOCK, PhoneText
from appliance.rtt.sender import RttSender
from appliance.rtt.stream import RtpTextStream, feed_packet
from appliance.rtt.t140 import LOSS_MARK, T140Reader, T140Writer
from appliance.rtt.transcript import CALL_TAKER, CALLER, Transcript

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextSettings:
    """How the box sends and receives RTP text (RFC 4103 §4, §5.1, §6)."""

    generations: int = 2
    interval: float = 0.3
    cps: int = 30
    keepalive: float | None = 25.0
    hold: float = 1.0


@dataclass
class TextStats:
    """Characters through the gateway, per direction, and marks made."""

    to_browser: int = 0
    to_phone: int = 0
    marks_to_browser: int = 0


class TextBridge:
    """The text of one call between the phone and the browser."""

    def __init__(
        self,
        settings: TextSettings,
        *,
        transcript: Transcript | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.transcript = transcript
        self.endpoint = RtpEndpoint(self._from_phone)
        self.channel = ChannelText()
        self.stats = TextStats()
        self.phone: PhoneText | None = None
        self.to_phone = self.to_browser = False
        self.sender: RttSender | None = None
        self.receiver: RttReceiver | None = None
        self._stream: RtpTextStream | None = None
        self._send: Callable[[str], None] | None = None
        self._reader = T140Reader()
        self._clock = clock
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def port(self) -> int:
        """The local RTP port (for the box's m=text line)."""
        return self.endpoint.port

    @property
    def started(self) -> bool:
        """Whether the phone's side is negotiated and running."""
        return self.sender is not None and not self._closed

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` ran."""
        return self._closed

    async def open(self, address: str, ports: PortAllocator) -> int:
        """Bind the RTP/RTCP port pair; returns the RTP port."""
        return await self.endpoint.open(address, ports)

    def start(
        self,
        phone: PhoneText,
        *,
        to_phone: bool = True,
        to_browser: bool = True,
        srtp: SrtpContext | None = None,
    ) -> None:
        """The phone's text stream is agreed: start sending (a BOM first, RFC 9071 §3.2)
        and receiving."""
        now = self._clock()
        self.phone, self.to_phone, self.to_browser = phone, to_phone, to_browser
        self.endpoint.srtp = srtp
        self.endpoint.set_remote(
            phone.address, phone.port, rtcp_port=phone.rtcp_port, rtcp_mux=phone.rtcp_mux
        )
        red = phone.red_pt is not None
        self.sender = RttSender(
            phone.t140_pt,
            phone.red_pt,
            generations=self.settings.generations if red else 0,
            interval=self.settings.interval,
            cps=phone.cps,
            keepalive=self.settings.keepalive,
            timestamp_base=secrets.randbits(32),
        )
        ssrc = secrets.randbits(32)
        self._stream = RtpTextStream(self.sender, ssrc, secrets.randbits(16))
        self.receiver = RttReceiver(
            phone.t140_pt,
            phone.red_pt,
            generations=phone.generations,
            hold=self.settings.hold,
            started=now,
        )
        if to_phone:
            self.sender.write(T140Writer().start(), now)
        self.endpoint.start_rtcp(CLOCK, ssrc)
        if self.transcript is not None:
            self.transcript.event(
                "text started",
                red=red,
                generations_sent=self.sender.generations,
                generations_received=phone.generations,
                peer_cps=phone.cps,
            )
        self._run()

    def update(self, phone: PhoneText) -> None:
        """A re-INVITE moved the phone's stream (hold keeps text going, RFC 3264 §8.4)."""
        self.phone = phone
        self.endpoint.set_remote(
            phone.address, phone.port, rtcp_port=phone.rtcp_port, rtcp_mux=phone.rtcp_mux
        )
        if self.sender is not None:
            self.sender.set_cps(phone.cps)

    # ----- the browser's channel -------------------------------------------------------

    def channel_opened(self, send: Callable[[str], None]) -> None:
        """The T.140 channel is open (again): BOM, a loss mark after a re-open, queued
        text (RFC 8865 §5.4, §6)."""
        reopened = self._send is not None or self.channel.is_open
        self._send = send
        opened = self.channel.channel_opened()
        for message in opened.to_channel:
            self._to_channel(message)
        if opened.to_rtp:
            self._write_to_phone(opened.to_rtp)
        if reopened and self.transcript is not None:
            self.transcript.event("channel re-opened", marked=True)

    def channel_closed(self) -> None:
        """The channel went away; text toward it waits for a re-open."""
        self.channel.channel_closed()

    def channel_message(self, message: str | bytes) -> None:
        """Text the call-taker typed (one data-channel message)."""
        text = self.channel.from_channel(message)
        if text:
            self._write_to_phone(text)

    def _write_to_phone(self, text: str) -> None:
        if self._closed or not self.to_phone:
            return
        if self.transcript is not None:
            self.transcript.text(CALL_TAKER, text)
        self.stats.to_phone += len(text)
        if self.sender is not None:
            self.sender.write(text, self._clock())
            self._run()

    def _to_channel(self, message: str) -> None:
        if self._send is not None and message:
            try:
                self._send(message)
            except Exception:  # a channel that failed under us: the leg reports the close
                log.warning("text to the browser could not be sent", exc_info=True)

    # ----- the phone's stream -------------------------------------------------------------

    def _from_phone(self, packet: RtpPacket) -> None:
        if self.receiver is None or self._closed:
            return
        feed_packet(self.receiver, packet, self._clock())
        self._run()

    def _deliver(self, blocks: list[ReceivedBlock]) -> None:
        for block in blocks:
            if block.origin is Origin.LOST:
                self.stats.marks_to_browser += 1
                shown = self._reader.feed(b"") + LOSS_MARK
            else:
                shown = self._reader.feed(block.data)
            if self.transcript is not None:
                self.transcript.text(CALLER, shown)
            if not self.to_browser:
                continue
            for message in self.channel.from_rtp(block):
                self.stats.to_browser += len(message)
                self._to_channel(message)

    # ----- timers ----------------------------------------------------------------------------

    def _run(self) -> None:
        """Do what is due now and sleep until the next deadline."""
        if self._closed:
            return
        now = self._clock()
        if self._stream is not None:
            for packet in self._stream.poll(now):
                self.endpoint.send(packet)
        if self.receiver is not None:
            self._deliver(self.receiver.poll(now))
        deadlines = [
            d
            for d in (
                self._stream.next_deadline() if self._stream else None,
                self.receiver.next_deadline() if self.receiver else None,
            )
            if d is not None
        ]
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if deadlines:
            delay = max(0.0, min(deadlines) - now)
            self._timer = asyncio.get_running_loop().call_later(delay, self._run)

    def close(self) -> None:
        """The call ended: deliver what the receiver still holds (gaps marked), close the
        socket (RTCP BYE) and the transcript (idempotent)."""
        if self._closed:
            return
        if self.receiver is not None:
            self._deliver(self.receiver.flush())
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.endpoint.close()
        if self.transcript is not None:
            self.transcript.event("ended")
            self.transcript.close()
