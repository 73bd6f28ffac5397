"""One call: a SIP leg toward a phone joined to a WebRTC leg toward a call-taker's page.

The :class:`Call` is a back-to-back user agent. It owns both legs and the media bridges
between them (audio now; real-time text and chat plug in beside it), translates offers
and answers between the legs (RFC 3264), and ends both legs together with a cause a
call-taker understands.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from appliance.calls.phone_sdp import (
    LocalAudio,
    PhoneAudio,
    no_audio_cause,
    payload_types_for,
    phone_answer,
    phone_offer,
    read_audio,
)
from appliance.calls.text import CallText, TextConfig
from appliance.media.codecs import Codec
from appliance.media.dtmf import DtmfReceiver, DtmfSender
from appliance.media.endpoint import PortAllocator, RtpEndpoint
from appliance.media.rtp import RtpPacket, StreamRewriter
from appliance.media.sdes import CryptoAttribute, SdesError, SrtpContext, choose_answer, new_crypto
from appliance.media.sdp import SdpError, SessionDescription, answer_direction

if TYPE_CHECKING:
    from appliance.webrtc.leg import WebRtcLeg

BrowserPacketSink = Callable[[RtpPacket], None]
LegFactory = Callable[[BrowserPacketSink, Callable[[str], None]], Awaitable["WebRtcLeg"]]

log = logging.getLogger(__name__)

Message = dict[str, Any]
DTMF_PACKET_INTERVAL = 0.05  # RFC 4733 §2.5.1.2: updates every 50 ms
DTMF_GAP = 0.1  # silence between two digits


class Page(Protocol):
    """A call-taker's open page (a WebSocket), as a call sees it."""

    operator: str

    def send(self, message: Message) -> None:
        """Queue one JSON message to the page."""


class SipLegs(Protocol):
    """What a call needs from the SIP service (see ``appliance.sip.service``)."""

    def invite(
        self, target: str, *, from_user: str, sdp: bytes, display_name: str | None = None
    ) -> str: ...
    def ringing(self, leg: str, sdp: bytes | None = None) -> None: ...
    def answer(self, leg: str, sdp: bytes) -> None: ...
    def reject(self, leg: str, status: int = 486, reason: str | None = None) -> None: ...
    def hangup(self, leg: str) -> None: ...
    def reoffer(self, leg: str, sdp: bytes) -> bool: ...
    def answer_offer(self, leg: str, sdp: bytes) -> None: ...
    def reject_offer(self, leg: str, status: int = 488) -> None: ...
    def send_dtmf(self, leg: str, digit: str) -> bool: ...


class CallError(Exception):
    """A request the call cannot carry out; ``code`` is the API error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class State(enum.Enum):
    """Where a call is, as the page shows it."""

    CALLING = "calling"  # outgoing, INVITE sent
    RINGING = "ringing"  # outgoing: the phone rings; incoming: the page is alerted
    CONNECTING = "connecting"  # incoming: answered on the page, media being set up
    ACTIVE = "active"
    ENDED = "ended"


@dataclass
class MediaSettings:
    """The ``[media]`` and ``[webrtc]`` settings a call uses."""

    codecs: list[Codec]
    telephone_event: bool
    srtp: str
    rtp_timeout: float
    ice_timeout: float
    ports: PortAllocator
    leg_factory: LegFactory
    text: TextConfig | None = None  # real-time text (RFC 4103 ⇄ RFC 8865); None: audio only


@dataclass
class AudioPath:
    """The negotiated audio between the two legs."""

    codec: Codec
    phone_pt: int
    browser_pt: int
    phone_event_pt: int | None  # for sending: telephone-event/8000 with an 8000 Hz codec only
    to_phone: StreamRewriter
    to_browser: StreamRewriter
    dtmf_in: DtmfReceiver = field(default_factory=DtmfReceiver)
    dtmf_out: DtmfSender = field(default_factory=DtmfSender)
    from_phone: int = 0
    from_browser: int = 0
    # For receiving: the telephone-event/8000 our SDP accepted, whatever the audio clock.
    # A phone may send it beside Opus; only an event's timestamp identifies it (RFC 4733
    # §2.5.1.1), so the relay reports its digits all the same.
    events_in_pt: int | None = None


class Call:
    """A bridged call; the manager feeds it SIP events and page messages."""

    def __init__(
        self,
        *,
        direction: str,
        operator: str,
        sip_user: str,
        peer: dict[str, str],
        sip: SipLegs,
        settings: MediaSettings,
        local_address: str,
        on_ended: Callable[[Call], None],
    ) -> None:
        self.id = secrets.token_hex(6)
        self.direction = direction
        self.operator = operator
        self.sip_user = sip_user
        self.peer = peer
        self.sip = sip
        self.settings = settings
        self.local_address = local_address
        self.on_ended = on_ended
        self.state = State.CALLING if direction == "out" else State.RINGING
        self.leg = ""
        self.page: Page | None = None
        self.created = time.time()
        self.answered_at: float | None = None
        self.held_here = False
        self.held_there = False
        self.cause = ""
        self.code: int | None = None
        self.phone_offer: SessionDescription | None = None
        self.phone_audio: PhoneAudio | None = None
        self.local_sdp: SessionDescription | None = None
        self.local_audio: LocalAudio | None = None
        self.audio: AudioPath | None = None
        self.endpoint: RtpEndpoint | None = None
        self.webrtc: WebRtcLeg | None = None
        self.text: CallText | None = None
        self._session_id = secrets.randbelow(2**31)
        self._version = 0
        self._our_crypto: CryptoAttribute | None = None
        self._ice_lost_since: float | None = None
        self._connect_deadline: float | None = None
        self._dtmf_queue: list[str] = []
        self._dtmf_active = False

    # ----- what the page sees -----------------------------------------------------------

    def describe(self) -> Message:
        """The call as the API reports it (docs/api.md, ``call`` event)."""
        return {
            "type": "call",
            "call": self.id,
            "state": self.state.value,
            "direction": self.direction,
            "peer": self.peer,
            "media": self._media(),
            "held": self.held_here,
            "held_by_peer": self.held_there,
            "answered_at": self.answered_at,
            "cause": self.cause or None,
        }

    def _media(self) -> list[str]:
        """The call's media: what is offered while it is set up, then what flows."""
        audio = self.local_audio is not None or self.phone_audio is not None
        setting_up = self.state in (State.CALLING, State.RINGING, State.CONNECTING)
        text = self.text is not None and (self.text.active or setting_up)
        return ["audio"] * audio + ["text"] * text or ["audio"]

    def notify(self) -> None:
        """Tell the page the call's state."""
        if self.page is not None:
            self.page.send(self.describe())

    # ----- outgoing: the page calls a phone ------------------------------------------------

    async def start_outgoing(
        self, page: Page, target: str, browser_offer: str, display_name: str
    ) -> None:
        """Take the page's offer and INVITE ``target`` with the codecs both can use."""
        self.page = page
        self.webrtc = await self._open_browser_leg()
        offered = await self.webrtc.take_offer(browser_offer)
        codecs = [c for c in self.settings.codecs if c in offered]
        if not codecs and self.settings.text is not None and self.webrtc.has_data_channels:
            await self._start_text_only(target, display_name)
            return
        if not codecs:
            raise CallError("no-common-codec", "the browser offered no codec the box relays")
        await self._open_endpoint()
        with_pts, event_pt = payload_types_for(codecs, self.settings.telephone_event)
        crypto: list[str] = []
        if self.settings.srtp != "off":
            self._our_crypto = new_crypto(1, "AES_CM_128_HMAC_SHA1_80")
            crypto = [str(self._our_crypto)]
        assert self.endpoint is not None
        self.local_audio = LocalAudio(
            address=self.local_address, port=self.endpoint.port, codecs=with_pts,
            telephone_event=event_pt, direction="sendrecv", crypto=crypto,
            secure_profile=self.settings.srtp == "require",
        )  # fmt: skip
        text = None
        if self.settings.text is not None and self.webrtc.has_data_channels:
            self.text = CallText(self.settings.text, self.id, self._text_header())
            await self.text.open(self.webrtc, self.local_address, self.settings.ports)
            text = self.text.offer_media(self.local_address)
        self.local_sdp = phone_offer(
            self.local_audio, self._session_id, self._next_version(), text=text
        )
        self.leg = self.sip.invite(
            target, from_user=self.sip_user, sdp=self.local_sdp.encode(),
            display_name=display_name or None,
        )  # fmt: skip
        self.notify()

    async def _open_browser_leg(self) -> WebRtcLeg:
        """Make the browser leg; the first call may wait for the WebRTC stack to load."""
        leg = await self.settings.leg_factory(self._from_browser, self._ice_state)
        leg.tap_audio(self._browser_audio)
        if self.state is State.ENDED:  # hung up while the stack loaded
            await leg.close()
            raise CallError("bad-state", "the call ended while its media was being set up")
        return leg

    async def _start_text_only(self, target: str, display_name: str) -> None:
        """The page offered text and no audio: a text-only call (real in emergency services)."""
        assert self.webrtc is not None
        assert self.settings.text is not None
        self.text = CallText(self.settings.text, self.id, self._text_header())
        await self.text.open(self.webrtc, self.local_address, self.settings.ports)
        text = self.text.offer_media(self.local_address)
        self.local_sdp = phone_offer(
            None, self._session_id, self._next_version(), text=text, address=self.local_address
        )
        self.leg = self.sip.invite(
            target, from_user=self.sip_user, sdp=self.local_sdp.encode(),
            display_name=display_name or None,
        )  # fmt: skip
        self.notify()

    async def _text_only_answered(self, sdp: bytes | None) -> None:
        assert self.text is not None and self.webrtc is not None
        try:
            answer = SessionDescription.parse(sdp or b"")
        except SdpError as exc:
            self.hangup(f"the phone's media could not be used ({exc})")
            return
        if not self.text.answered_by_phone(answer):
            self.hangup("the phone accepted no real-time text")
            return
        page_answer = await self.webrtc.make_answer(None)
        if self.page is not None:
            self.page.send({"type": "sdp", "call": self.id, "kind": "answer", "sdp": page_answer})
        self._activated()

    async def phone_answered(self, sdp: bytes | None) -> None:
        """The phone's 200 answer: choose the codec, answer the page, start the relay."""
        if self.state is State.ENDED:
            return
        if self.local_audio is None:
            await self._text_only_answered(sdp)
            return
        try:
            answer = SessionDescription.parse(sdp or b"")
            audio = read_audio(answer, [c for c, _ in self.local_audio.codecs])
            if audio is not None:
                self._use_phone_crypto(audio, answering=False)
        except (SdpError, SdesError) as exc:
            log.warning("call %s: unusable answer from the phone: %s", self.id, exc)
            self.hangup(f"the phone's media could not be used ({exc})")
            return
        if audio is None:
            self.hangup(no_audio_cause(answer, self.settings.srtp))
            return
        self.phone_audio = audio
        if self.text is not None:
            self.text.answered_by_phone(answer)
        codec, phone_pt = audio.codecs[0]
        assert self.webrtc is not None
        try:
            page_answer = await self.webrtc.make_answer(codec)
        except ValueError as exc:
            self.hangup(f"the browser could not take the phone's codec ({exc})")
            return
        negotiated = self.webrtc.negotiated
        assert negotiated is not None
        self._start_audio(codec, phone_pt, negotiated.payload_type, audio)
        if self.page is not None:
            self.page.send({"type": "sdp", "call": self.id, "kind": "answer", "sdp": page_answer})
        self._activated()

    # ----- incoming: a phone calls an operator ----------------------------------------------

    def incoming(self, leg: str, sdp: bytes | None) -> int | None:
        """Check the phone's offer; returns a SIP status to refuse it with, else None."""
        self.leg = leg
        if sdp is None:
            return 488  # an offerless INVITE would need our offer in the 200 first
        try:
            offer = SessionDescription.parse(sdp)
            audio = read_audio(offer, self.settings.codecs)
        except SdpError as exc:
            log.info("call %s: unusable offer: %s", self.id, exc)
            return 488
        if audio is None and self.settings.text is not None:
            text = CallText(self.settings.text, self.id, self._text_header())
            if text.offered_by_phone(offer):  # a text-only call
                self.phone_offer, self.text = offer, text
                return None
        if audio is None:
            return 488
        secure = audio.secure_profile or bool(audio.crypto)
        if self.settings.srtp == "require" and not audio.crypto:
            return 488
        if audio.secure_profile and self.settings.srtp == "off":
            return 488
        del secure
        self.phone_offer, self.phone_audio = offer, audio
        if self.settings.text is not None:
            text = CallText(self.settings.text, self.id, self._text_header())
            self.text = text if text.offered_by_phone(offer) else None
        return None

    async def accept(self, page: Page) -> None:
        """The call-taker answered: offer the page the phone's codecs."""
        if self.state is not State.RINGING or self.direction != "in":
            raise CallError("bad-state", f"the call is {self.state.value}")
        assert self.phone_audio is not None or self.text is not None
        self.page = page
        self.state = State.CONNECTING
        try:
            self.webrtc = await self._open_browser_leg()
        except CallError as exc:
            self.hangup(str(exc), status=500)  # the phone hears a failure, not endless ringing
            raise
        if self.phone_audio is not None:
            await self._open_endpoint()
        if self.text is not None:
            await self.text.open(self.webrtc, self.local_address, self.settings.ports)
            self.webrtc.offer_text()
        codecs = [c for c, _ in self.phone_audio.codecs] if self.phone_audio else []
        offer = await self.webrtc.make_offer(codecs)
        self._connect_deadline = time.monotonic() + self.settings.ice_timeout
        page.send({"type": "sdp", "call": self.id, "kind": "offer", "sdp": offer})
        self.notify()

    async def page_answered(self, sdp: str) -> None:
        """The page's answer to our offer: answer the phone with the page's codec."""
        if self.state is not State.CONNECTING or self.webrtc is None:
            raise CallError("bad-state", f"no answer expected in state {self.state.value}")
        try:
            negotiated = await self.webrtc.take_answer(sdp)
        except ValueError as exc:
            self.hangup(f"the browser's answer could not be used ({exc})", status=488)
            raise CallError("bad-sdp", str(exc)) from None
        audio, offer = self.phone_audio, self.phone_offer
        if audio is None and self.text is not None and offer is not None:
            self._text_only_page_answered(offer, sdp)
            return
        assert audio is not None and offer is not None and self.endpoint is not None
        assert negotiated is not None
        phone_pt = next(pt for c, pt in audio.codecs if c == negotiated.codec)
        crypto = self._use_phone_crypto(audio, answering=True)
        self.local_audio = LocalAudio(
            address=self.local_address, port=self.endpoint.port,
            codecs=[(negotiated.codec, phone_pt)], telephone_event=audio.telephone_event,
            direction=answer_direction(audio.direction), crypto=crypto,
            secure_profile=audio.secure_profile, rtcp_mux=audio.rtcp_mux, ptime=audio.ptime,
        )  # fmt: skip
        text = None
        if self.text is not None:
            took = CallText.browser_took_text(sdp)
            text = self.text.answer_media(self.local_address, took)
        self.local_sdp = phone_answer(
            offer, audio, self.local_audio, self._session_id, self._next_version(), text=text
        )
        self._start_audio(negotiated.codec, phone_pt, negotiated.payload_type, audio)
        self.sip.answer(self.leg, self.local_sdp.encode())
        self._activated()

    def _text_only_page_answered(self, offer: SessionDescription, sdp: str) -> None:
        assert self.text is not None
        text = self.text.answer_media(self.local_address, CallText.browser_took_text(sdp))
        if text is None:
            self.hangup("the page could not take the call's real-time text", status=488)
            return
        self.local_sdp = phone_answer(
            offer, None, None, self._session_id, self._next_version(), text=text,
            address=self.local_address,
        )  # fmt: skip
        self.sip.answer(self.leg, self.local_sdp.encode())
        self._activated()

    def decline(self) -> None:
        """The call-taker refused the call (603 Decline, RFC 3261 §21.6.2)."""
        self.sip.reject(self.leg, 603, "Decline")
        self._end("declined here", None)

    # ----- during the call --------------------------------------------------------------------

    async def hold(self, on: bool) -> None:
        """Put the phone on hold or take it off (RFC 3264 §8.4: sendonly / sendrecv)."""
        if self.state is not State.ACTIVE or self.local_audio is None:
            raise CallError("bad-state", f"the call is {self.state.value}")
        if on == self.held_here:
            return
        direction = "sendonly" if on else "sendrecv"
        if self.held_there:
            direction = "inactive" if on else "recvonly"
        audio = self.local_audio
        self.local_audio = LocalAudio(
            address=audio.address, port=audio.port, codecs=audio.codecs,
            telephone_event=audio.telephone_event, direction=direction, crypto=audio.crypto,
            secure_profile=audio.secure_profile, rtcp_mux=audio.rtcp_mux, ptime=audio.ptime,
        )  # fmt: skip
        previous = self.phone_offer or self.local_sdp
        text = self.text.reoffer_media() if self.text is not None else None
        sdp = phone_offer(
            self.local_audio, self._session_id, self._next_version(), previous, text=text
        )
        if not self.sip.reoffer(self.leg, sdp.encode()):
            raise CallError("busy", "another offer is in progress; try again")
        self.local_sdp = sdp
        self.held_here = on
        self.notify()

    def reoffer_answered(self, sdp: bytes | None) -> None:
        """The phone's answer to our hold/resume re-INVITE."""
        if sdp is None or self.local_audio is None:
            return
        try:
            offered = [c for c, _ in self.local_audio.codecs]
            audio = read_audio(SessionDescription.parse(sdp), offered)
        except SdpError:
            audio = None
        if audio is not None:
            self._follow_phone(audio)

    def reoffer_received(self, sdp: bytes) -> None:
        """A re-INVITE or UPDATE from the phone: hold, resume, a new address (RFC 3264 §8)."""
        if self.local_audio is None and self.text is not None:
            self._text_only_reoffer(sdp)
            return
        audio: PhoneAudio | None = None
        if self.local_audio is not None and self.audio is not None:
            try:
                offer = SessionDescription.parse(sdp)
                audio = read_audio(offer, [self.audio.codec])
            except SdpError:
                audio = None
        if audio is None or self.local_audio is None or self.audio is None:
            self.sip.reject_offer(self.leg)
            return
        phone_pt = next(pt for c, pt in audio.codecs if c == self.audio.codec)
        wanted = "sendonly" if self.held_here else "sendrecv"
        local = self.local_audio
        self.local_audio = LocalAudio(
            address=local.address, port=local.port, codecs=[(self.audio.codec, phone_pt)],
            telephone_event=audio.telephone_event,
            direction=answer_direction(audio.direction, wanted), crypto=local.crypto,
            secure_profile=audio.secure_profile, rtcp_mux=audio.rtcp_mux, ptime=audio.ptime,
        )  # fmt: skip
        self.phone_offer = offer
        text = self.text.reoffered_by_phone(offer) if self.text is not None else None
        self.local_sdp = phone_answer(
            offer, audio, self.local_audio, self._session_id, self._next_version(), text=text
        )
        self.sip.answer_offer(self.leg, self.local_sdp.encode())
        self.audio.phone_pt = phone_pt
        self.audio.phone_event_pt = telephone_event_for(self.audio.codec, audio)
        self.audio.events_in_pt = audio.telephone_event
        self.audio.to_phone.set_payload_map({self.audio.browser_pt: phone_pt})
        self.audio.to_browser.set_payload_map({phone_pt: self.audio.browser_pt})
        if self.endpoint is not None:
            self.endpoint.tap(phone_pt, self._phone_audio)
        self._follow_phone(audio)

    def _text_only_reoffer(self, sdp: bytes) -> None:
        """A re-INVITE in a text-only call: follow the text stream, or refuse (§14.1)."""
        assert self.text is not None
        try:
            offer = SessionDescription.parse(sdp)
        except SdpError:
            self.sip.reject_offer(self.leg)
            return
        text = self.text.reoffered_by_phone(offer)
        if text is None:
            self.sip.reject_offer(self.leg)
            self.hangup("the phone dropped the call's real-time text")
            return
        self.phone_offer = offer
        self.local_sdp = phone_answer(
            offer, None, None, self._session_id, self._next_version(), text=text,
            address=self.local_address,
        )  # fmt: skip
        self.sip.answer_offer(self.leg, self.local_sdp.encode())

    def _follow_phone(self, audio: PhoneAudio) -> None:
        held = audio.on_hold
        if self.endpoint is not None and not held:
            self.endpoint.set_remote(
                audio.address, audio.port, rtcp_port=audio.rtcp_port, rtcp_mux=audio.rtcp_mux
            )
        if self.endpoint is not None and held:
            self.endpoint.last_received = time.monotonic()
        self.phone_audio = audio
        if held != self.held_there:
            self.held_there = held
            self.notify()

    def send_dtmf(self, digits: str) -> None:
        """Send DTMF to the phone: RFC 4733 events when negotiated, else SIP INFO."""
        if self.state is not State.ACTIVE or self.audio is None:
            raise CallError("bad-state", f"the call is {self.state.value}")
        for digit in digits:
            if digit.upper() not in "0123456789*#ABCD":
                raise CallError("bad-request", f"{digit!r} is not a DTMF digit")
        for digit in digits:
            if self.audio.phone_event_pt is not None:
                self._dtmf_queue.append(digit.upper())
            else:
                self.sip.send_dtmf(self.leg, digit.upper())
        self._pump_dtmf()

    def _pump_dtmf(self) -> None:
        """Send the next queued digit as RFC 4733 events (§2.5.1), audio paused meanwhile."""
        audio = self.audio
        if self._dtmf_active or not self._dtmf_queue or audio is None or self.endpoint is None:
            return
        event_pt = audio.phone_event_pt
        if event_pt is None or self.state is not State.ACTIVE:
            self._dtmf_queue.clear()
            return
        digit = self._dtmf_queue.pop(0)
        self._dtmf_active = True
        rewriter = audio.to_phone
        start = rewriter.timestamp_at(time.monotonic())
        packets = audio.dtmf_out.packets(digit, start)
        loop = asyncio.get_running_loop()
        endpoint = self.endpoint
        for n, (marker, timestamp, payload) in enumerate(packets):

            def send(
                marker: bool = marker, timestamp: int = timestamp, payload: bytes = payload
            ) -> None:
                if self.state is State.ACTIVE:
                    endpoint.send(RtpPacket(
                        payload_type=event_pt, sequence=rewriter.next_sequence(),
                        timestamp=timestamp, ssrc=rewriter.ssrc, marker=marker, payload=payload,
                    ))  # fmt: skip

            loop.call_later(min(n, len(packets) - 3) * DTMF_PACKET_INTERVAL, send)
        loop.call_later((len(packets) - 2) * DTMF_PACKET_INTERVAL + DTMF_GAP, self._dtmf_done)

    def _dtmf_done(self) -> None:
        self._dtmf_active = False
        self._pump_dtmf()

    def reoffer_failed(self, status: int, reason: str) -> None:
        """The phone refused our hold/resume offer: the session stays as it was (§14.1)."""
        self.held_here = not self.held_here
        if self.page is not None:
            self.page.send({
                "type": "error", "call": self.id, "code": "refused",
                "message": f"the phone refused the change ({status} {reason})",
            })  # fmt: skip
        self.notify()

    # ----- the relay -------------------------------------------------------------------------

    async def _open_endpoint(self) -> None:
        self.endpoint = RtpEndpoint(self._from_phone)
        await self.endpoint.open(self.local_address, self.settings.ports)

    def _use_phone_crypto(self, audio: PhoneAudio, *, answering: bool) -> list[str]:
        """Set SRTP up from the phone's a=crypto (RFC 4568 §7); our answer's lines."""
        assert self.endpoint is not None
        if not audio.crypto:
            if self.settings.srtp == "require":
                raise SdesError("the phone refused SRTP, which this box requires")
            return []
        offered = [CryptoAttribute.parse(line) for line in audio.crypto]
        if answering:
            chosen = choose_answer(offered)
            if chosen is None:
                if audio.secure_profile or self.settings.srtp == "require":
                    raise SdesError("no crypto suite in common")
                return []
            theirs, ours = chosen
        else:
            assert self._our_crypto is not None
            theirs, ours = offered[0], self._our_crypto
        self.endpoint.srtp = SrtpContext(ours, theirs)
        return [str(ours)]

    def _start_audio(self, codec: Codec, phone_pt: int, browser_pt: int, audio: PhoneAudio) -> None:
        assert self.endpoint is not None
        self.endpoint.set_remote(
            audio.address, audio.port, rtcp_port=audio.rtcp_port, rtcp_mux=audio.rtcp_mux
        )
        self.audio = AudioPath(
            codec=codec, phone_pt=phone_pt, browser_pt=browser_pt,
            phone_event_pt=telephone_event_for(codec, audio),
            to_phone=StreamRewriter(codec.clock_rate, {browser_pt: phone_pt}),
            to_browser=StreamRewriter(codec.clock_rate, {phone_pt: browser_pt}),
            events_in_pt=audio.telephone_event,
        )  # fmt: skip
        self.endpoint.tap(phone_pt, self._phone_audio)
        self.endpoint.start_rtcp(codec.clock_rate, self.audio.to_phone.ssrc)
        self.held_there = audio.on_hold

    def _activated(self) -> None:
        self.state = State.ACTIVE
        self.answered_at = time.time()
        if self.endpoint is not None:
            self.endpoint.last_received = time.monotonic()
        self.notify()

    def _from_phone(self, packet: RtpPacket) -> None:
        audio = self.audio
        if audio is None or self.webrtc is None:
            return
        if packet.payload_type == audio.events_in_pt:
            digit = audio.dtmf_in.feed(packet.timestamp, packet.payload)
            if digit is not None and self.page is not None:
                self.page.send({"type": "dtmf", "call": self.id, "digit": digit})
            return
        if packet.payload_type == audio.phone_pt:
            self._phone_audio(
                packet.sequence, packet.timestamp, packet.ssrc, packet.marker, packet.payload,
                time.monotonic(),
            )  # fmt: skip

    def _phone_audio(  # noqa: PLR0917 - per packet: fields, no packet object
        self, sequence: int, timestamp: int, ssrc: int, marker: bool, payload: bytes, now: float
    ) -> None:
        """The phone's audio (the endpoint's tap, :meth:`RtpEndpoint.tap`) to the browser."""
        audio, webrtc = self.audio, self.webrtc
        if audio is None or webrtc is None or self.held_here:
            return
        to_browser = audio.to_browser
        out = to_browser.forward_numbers(audio.phone_pt, sequence, timestamp, ssrc, marker, now)
        sender = webrtc.fast_sender
        if out is not None and sender is not None:
            audio.from_phone += 1
            sender.send(payload, out[2], out[3])  # the leg numbers its own packets

    def _from_browser(self, packet: RtpPacket) -> None:
        self._browser_audio(
            packet.payload_type, packet.sequence, packet.timestamp, packet.ssrc, packet.marker,
            packet.payload,
        )  # fmt: skip

    def _browser_audio(  # noqa: PLR0917 - per packet: fields, no packet object
        self, payload_type: int, sequence: int, timestamp: int, ssrc: int, marker: bool,
        payload: bytes,
    ) -> None:  # fmt: skip
        """The browser's audio (the leg's tap, :meth:`WebRtcLeg.tap_audio`) to the phone."""
        audio, endpoint = self.audio, self.endpoint
        if audio is None or endpoint is None or self.held_here or self._dtmf_active:
            return
        to_phone = audio.to_phone
        now = time.monotonic()
        out = to_phone.forward_numbers(payload_type, sequence, timestamp, ssrc, marker, now)
        if out is not None:
            audio.from_browser += 1
            endpoint.send_relayed(out, to_phone.ssrc, payload, now)

    # ----- ending ------------------------------------------------------------------------------

    def _ice_state(self, state: str) -> None:
        if state == "connected":
            self._ice_lost_since = None
            self._connect_deadline = None
        elif state in ("failed", "closed") and self.state is not State.ENDED:
            self.hangup("the browser's media connection was lost")

    def check_timers(self, now: float) -> None:
        """Once a second: phone silence (``rtp_timeout``) and ICE (``ice_timeout``)."""
        if self.state is State.ENDED:
            return
        if self._connect_deadline is not None and now > self._connect_deadline:
            self.hangup("the browser's media connection could not be set up")
            return
        webrtc = self.webrtc
        if webrtc is not None and self.state is State.ACTIVE:
            if webrtc.state in ("disconnected", "failed", "new", "connecting"):
                self._ice_lost_since = self._ice_lost_since or now
                if now - self._ice_lost_since > self.settings.ice_timeout:
                    self.hangup("the browser's media connection was lost")
                    return
            else:
                self._ice_lost_since = None
        timeout = self.settings.rtp_timeout
        endpoint = self.endpoint
        if not timeout or endpoint is None or self.state is not State.ACTIVE:
            return
        if not self.held_there and not self.held_here:
            if endpoint.silent_for() > timeout and not self._text_heard_within(timeout):
                self.hangup(f"no audio from the phone for {int(timeout)} s")
            return
        # On hold no audio flows, but a phone that sends RTCP keeps reporting
        # (RFC 3550 §6.3.5 times a participant out after 5 report intervals).
        quiet = endpoint.rtcp_silent_for()
        if quiet is not None and quiet > timeout:
            self.hangup(f"the phone stopped responding on hold ({int(timeout)} s without RTCP)")

    def _text_heard_within(self, timeout: float) -> bool:
        """A phone whose text stream is alive is alive, though it sends no audio."""
        text = self.text
        if text is None or not text.active or text.bridge is None:
            return False
        return text.bridge.endpoint.silent_for() <= timeout

    def hangup(self, cause: str = "hung up here", status: int | None = None) -> None:
        """End both legs: BYE/CANCEL toward the phone (RFC 3261 §15), close the page's leg."""
        if self.state is State.ENDED:
            return
        unanswered = self.direction == "in" and self.answered_at is None
        # End first: the SIP layer may report its own "ended" synchronously, and the
        # cause the page shows must be ours.
        self._end(cause, status)
        if self.leg:
            if unanswered:
                self.sip.reject(self.leg, status or 480, None)
            else:
                self.sip.hangup(self.leg)

    def sip_ended(self, cause: str, status: int | None) -> None:
        """The SIP leg ended on its own (BYE, CANCEL, failure)."""
        self._end(cause, status)

    def _end(self, cause: str, status: int | None) -> None:
        if self.state is State.ENDED:
            return
        self.state = State.ENDED
        self.cause, self.code = cause, status
        log.info("call %s ended: %s", self.id, cause)
        self.notify()
        if self.endpoint is not None:
            self.endpoint.close()
        if self.text is not None:
            self.text.close()
        self.on_ended(self)

    async def release(self) -> None:
        """Close the browser leg (after the call ended)."""
        if self.webrtc is not None:
            await self.webrtc.close()

    def _text_header(self) -> dict[str, Any]:
        """The first line of the call's transcript."""
        return {
            "operator": self.operator, "direction": self.direction, "peer": self.peer,
            "created": self.created,
        }  # fmt: skip

    def _next_version(self) -> int:
        self._version += 1
        return self._version


def telephone_event_for(codec: Codec, audio: PhoneAudio) -> int | None:
    """The telephone-event payload type usable with ``codec``, or None (then SIP INFO).

    Events share the audio stream's SSRC and timestamp clock (RFC 4733 §2.1); the box
    offers and accepts telephone-event/8000 only, so with a codec of another RTP clock
    (Opus, 48 kHz) it sends DTMF by INFO instead. Events the phone sends are reported
    either way (``AudioPath.events_in_pt``).
    """
    return audio.telephone_event if codec.clock_rate == 8000 else None
