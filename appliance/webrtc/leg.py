"""One call's browser leg: an aiortc RTCPeerConnection carrying relayed audio and, when
the call has real-time text, a T.140 data channel (RFC 8865).

Audio is never decoded or encoded here. Received RTP leaves through the tap of
:mod:`appliance.webrtc.hooks`, straight from the datagram callback once DTLS is up
(:class:`~appliance.webrtc.fastpath.FastReceiver`); audio to send is packetized,
protected and written to the ICE socket at once by
:class:`~appliance.webrtc.fastpath.FastSender`. :class:`PassthroughTrack` is the
equivalent through aiortc's own sender (encoded payloads that ``Encoder.pack`` passes
through unchanged), for peers that stand in for a browser. Offers and answers are
restricted to the one codec the other leg negotiated, so no transcoding is ever needed
(RFC 3264 §6.1, RFC 8829).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.sdp import candidate_from_sdp

from appliance.config.schema import WebRtcConfig
from appliance.media.codecs import RELAYABLE, Codec
from appliance.media.rtp import RtpPacket
from appliance.webrtc.fastpath import AudioFields, FastReceiver, FastSender, IdleTrack
from appliance.webrtc.hooks import tap_receiver

log = logging.getLogger(__name__)

QUEUE_LIMIT = 25  # 0.5 s of 20 ms packets; older ones are dropped rather than delayed
T140_PROTOCOL = "t140"  # RFC 8865 §3: the subprotocol MUST be "t140"
T140_LABEL = "rtt"


class TextHandler(Protocol):
    """Where a T.140 data channel's events go (``appliance.rtt.bridge.TextBridge``)."""

    def channel_opened(self, send: Callable[[str], None]) -> None: ...
    def channel_message(self, message: str | bytes) -> None: ...
    def channel_closed(self) -> None: ...


class PassthroughTrack(MediaStreamTrack):
    """An audio track whose "frames" are already-encoded payloads (``av.Packet``)."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._queue: asyncio.Queue[av.Packet[Any]] = asyncio.Queue()
        self.dropped = 0

    def push(self, payload: bytes, timestamp: int, clock_rate: int) -> None:
        """Queue one encoded payload; ``timestamp`` is in ``clock_rate`` units."""
        packet = av.Packet(payload)
        packet.pts = timestamp
        packet.time_base = fractions.Fraction(1, clock_rate)
        if self._queue.qsize() >= QUEUE_LIMIT:
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(packet)

    async def recv(self) -> av.Packet[Any]:
        """The next payload for aiortc's sender."""
        return await self._queue.get()


def ice_servers(config: WebRtcConfig) -> list[RTCIceServer]:
    """The ``[webrtc]`` STUN and TURN servers, as aiortc takes them (RFC 8445 §5.1.1.2)."""
    return [RTCIceServer(urls=url) for url in config.stun_servers] + [
        RTCIceServer(urls=t.url, username=t.username, credential=t.credential)
        for t in config.turn_servers
    ]


@dataclass(frozen=True)
class Negotiated:
    """The audio format both ends of the browser leg agreed on."""

    codec: Codec
    payload_type: int


class WebRtcLeg:
    """The peer connection of one call."""

    def __init__(
        self,
        ice_servers: list[RTCIceServer],
        *,
        on_audio: Callable[[RtpPacket], None],
        on_state: Callable[[str], None],
        name: str = "",
    ) -> None:
        self.name = name
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers or None))
        self.track = IdleTrack()
        self.audio: RTCRtpTransceiver | None = None
        self.fast_sender: FastSender | None = None
        self.fast_receiver: FastReceiver | None = None
        self.negotiated: Negotiated | None = None
        self._on_audio = on_audio
        self._audio_fields: AudioFields | None = None
        self._on_state = on_state
        self.pc.on("connectionstatechange", self._state_changed)
        self.text_channel: RTCDataChannel | None = None
        self._text: TextHandler | None = None
        self.pc.on("datachannel", self._datachannel)

    def _state_changed(self) -> None:
        state = self.pc.connectionState
        log.debug("%s: connection %s", self.name, state)
        if state == "connected" and self.fast_receiver is not None:
            self.fast_receiver.install()
        self._on_state(state)

    @property
    def state(self) -> str:
        """new, connecting, connected, failed or closed."""
        return str(self.pc.connectionState)

    def _prepare_audio(self, transceiver: RTCRtpTransceiver, codecs: list[Codec]) -> None:
        names = {c.mime.lower() for c in codecs}
        available = RTCRtpSender.getCapabilities("audio").codecs
        transceiver.setCodecPreferences(
            sorted(
                (c for c in available if c.mimeType.lower() in names),
                key=lambda c: [x.mime.lower() for x in codecs].index(c.mimeType.lower()),
            )
        )
        transceiver.sender.replaceTrack(self.track)
        # Straight to the call: its rewriter relays the negotiated payload type only.
        deliver = tap_receiver(transceiver.receiver, self._on_audio)
        self.fast_receiver = FastReceiver(
            transceiver.receiver, deliver, self._on_audio, self._audio_fields
        )
        self.fast_sender = FastSender(transceiver.sender)
        self.audio = transceiver

    async def make_offer(self, codecs: list[Codec], direction: str = "sendrecv") -> str:
        """The box offers (an incoming SIP call): audio limited to ``codecs``, in order;
        no audio at all for a text-only call (``codecs`` empty)."""
        if codecs:
            transceiver = self.pc.addTransceiver("audio", direction=direction)
            self._prepare_audio(transceiver, codecs)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def take_answer(self, sdp: str) -> Negotiated | None:
        """The browser's answer to our offer; returns the agreed codec (None: no audio)."""
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))
        return self._negotiation() if self.audio is not None else None

    async def take_offer(self, sdp: str) -> list[Codec]:
        """The browser offers (an outgoing call); returns the relayable codecs it offered."""
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        for transceiver in self.pc.getTransceivers():
            if transceiver.kind == "audio":
                self.audio = transceiver
                return _codecs_from(transceiver._codecs)
        return []

    async def make_answer(self, codec: Codec | None, direction: str = "sendrecv") -> str:
        """Answer the browser's offer with ``codec`` only; ``None``: a text-only call, any
        audio the browser offered is answered inactive."""
        if codec is None:
            if self.audio is not None:
                self.audio.direction = "inactive"
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            return str(self.pc.localDescription.sdp)
        if self.audio is None:
            raise ValueError("the browser offered no audio")
        self.audio.direction = direction
        self._prepare_audio(self.audio, [codec])
        # The offer already fixed the common codecs; keep only the relayed one.
        self.audio._codecs = [c for c in self.audio._codecs if _codecs_from([c]) == [codec]]
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self._negotiation()
        return str(self.pc.localDescription.sdp)

    def _negotiation(self) -> Negotiated:
        """The first relayable codec of the agreed list (what both ends send)."""
        if self.audio is None:
            raise ValueError("no audio in this session")
        for parameters in self.audio._codecs:
            if parameters.payloadType is None:
                continue
            for codec in _codecs_from([parameters]):
                self.negotiated = Negotiated(codec, parameters.payloadType)
                if self.fast_sender is not None:
                    self.fast_sender.use(parameters.payloadType)
                return self.negotiated
        raise ValueError("no relayable audio codec was negotiated")

    # ----- real-time text (RFC 8865) --------------------------------------------------------

    @property
    def has_data_channels(self) -> bool:
        """Whether the session has an SCTP association (the browser's offer had one, or
        :meth:`offer_text` added one)."""
        return self.pc.sctp is not None

    def offer_text(self) -> None:
        """Put a reliable, ordered T.140 channel in the box's next offer (RFC 8865 §3-4),
        opened in-band (RFC 8832) once the association is up."""
        self._adopt(self.pc.createDataChannel(T140_LABEL, ordered=True, protocol=T140_PROTOCOL))

    def attach_text(self, handler: TextHandler | None) -> None:
        """Send the T.140 channel's events to ``handler`` (None: drop them)."""
        self._text = handler
        channel = self.text_channel
        if handler is not None and channel is not None and channel.readyState == "open":
            handler.channel_opened(channel.send)

    def _datachannel(self, channel: RTCDataChannel) -> None:
        """A channel the browser opened: T.140 ones carry the call's text (RFC 8865 §3);
        a second one replaces the first (a re-open, §5.4)."""
        if (
            channel.protocol != T140_PROTOCOL
            or channel.maxRetransmits is not None
            or (channel.maxPacketLifeTime is not None or not channel.ordered)
        ):
            log.info("%s: data channel %r (%r) ignored", self.name, channel.label, channel.protocol)
            return
        self._adopt(channel)
        if channel.readyState == "open":
            self._text_opened(channel)

    def _adopt(self, channel: RTCDataChannel) -> None:
        self.text_channel = channel
        channel.on("open", lambda: self._text_opened(channel))
        channel.on("message", lambda message: self._text_message(channel, message))
        channel.on("close", lambda: self._text_closed(channel))

    def _text_opened(self, channel: RTCDataChannel) -> None:
        if self._text is not None and channel is self.text_channel:
            self._text.channel_opened(channel.send)

    def _text_message(self, channel: RTCDataChannel, message: str | bytes) -> None:
        if self._text is not None and channel is self.text_channel:
            self._text.channel_message(message)

    def _text_closed(self, channel: RTCDataChannel) -> None:
        if self._text is not None and channel is self.text_channel:
            self._text.channel_closed()

    def tap_audio(self, fields: AudioFields) -> None:
        """Give the browser's relayed audio to ``fields`` as header fields and payload
        (:class:`~appliance.webrtc.fastpath.FastReceiver`) instead of as packets to
        ``on_audio``, whenever its header allows."""
        self._audio_fields = fields
        if self.fast_receiver is not None:
            self.fast_receiver.fields = fields

    def send_audio(self, payload: bytes, timestamp: int, marker: bool = False) -> bool:
        """Send one encoded payload to the browser (``timestamp`` in RTP clock units).

        False when it could not be sent: nothing negotiated yet, DTLS not connected or
        no ICE pair (consent lost).
        """
        if self.fast_sender is None:
            return False
        return self.fast_sender.send(payload, timestamp, marker)

    async def add_candidate(
        self, candidate: str, sdp_mid: str | None, sdp_mline_index: int | None
    ) -> None:
        """A trickled remote candidate (RFC 8838); an empty one ends the trickle."""
        if not candidate:
            return
        text = candidate.removeprefix("a=").removeprefix("candidate:")
        parsed = candidate_from_sdp(text)
        parsed.sdpMid = sdp_mid
        parsed.sdpMLineIndex = sdp_mline_index
        await self.pc.addIceCandidate(parsed)

    async def close(self) -> None:
        """Close the peer connection (idempotent)."""
        with contextlib.suppress(Exception):
            await self.pc.close()


def _codecs_from(parameters: list[RTCRtpCodecParameters]) -> list[Codec]:
    """The relayable codecs among aiortc codec parameters, in their order."""
    out = []
    for item in parameters:
        mime = item.mimeType.lower()
        for codec in RELAYABLE.values():
            if codec.mime.lower() == mime and codec.clock_rate == item.clockRate:
                out.append(codec)
    return out
