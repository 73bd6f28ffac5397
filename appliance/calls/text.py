"""The real-time text part of a call: the phone's ``m=text`` on the SIP leg, the T.140 data
channel on the browser leg, and the :class:`TextBridge` between them (RFC 8865 §6).

Text is offered to the phone when the browser's session can carry a data channel, and
accepted from the phone only when the browser takes the channel; otherwise the phone's
text m-line is answered with port 0 in place (RFC 3264 §6). The direction the phone
answers is the direction text flows on both legs (RFC 8865 §6). SRTP for the text stream
follows the call's ``[media] srtp`` setting like audio (RFC 4568).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.media.endpoint import PortAllocator
from appliance.media.sdes import CryptoAttribute, SdesError, SrtpContext, choose_answer, new_crypto
from appliance.media.sdp import Media, SdpError, SessionDescription, answer_direction
from appliance.rtt.bridge import TextBridge, TextSettings
from appliance.rtt.sdp import LocalText, PhoneText, read_text
from appliance.rtt.transcript import Transcript

if TYPE_CHECKING:
    from appliance.webrtc.leg import WebRtcLeg

log = logging.getLogger(__name__)

SRTP_SUITE = "AES_CM_128_HMAC_SHA1_80"


@dataclass(frozen=True)
class TextConfig:
    """What a call's text needs from the configuration."""

    settings: TextSettings
    srtp: str  # off | offer | require, as [media] srtp
    transcripts: Path | None


def _sends(direction: str) -> bool:
    return direction in ("sendrecv", "sendonly")


def _receives(direction: str) -> bool:
    return direction in ("sendrecv", "recvonly")


class CallText:
    """Negotiates and runs one call's text."""

    def __init__(self, config: TextConfig, call_id: str, header: dict[str, Any]) -> None:
        self.config = config
        self.call_id = call_id
        self.header = header
        self.phone: PhoneText | None = None
        self.local: LocalText | None = None
        self.bridge: TextBridge | None = None
        self._ours: CryptoAttribute | None = None
        self._leg: WebRtcLeg | None = None

    @property
    def active(self) -> bool:
        """Whether text flows (both legs agreed)."""
        return self.bridge is not None and self.bridge.started

    # ----- set-up ------------------------------------------------------------------------

    @staticmethod
    def browser_took_text(answer: str) -> bool:
        """Whether the browser's SDP answer accepted the data-channel section."""
        return any(
            line.startswith("m=application ") and not line.startswith("m=application 0 ")
            for line in answer.splitlines()
        )

    def offered_by_phone(self, offer: SessionDescription) -> bool:
        """Remember the text stream of a phone's offer; True when it has one."""
        try:
            self.phone = read_text(offer)
        except SdpError as exc:
            log.info("call %s: the phone's text stream is unusable: %s", self.call_id, exc)
            self.phone = None
        return self.phone is not None

    async def open(self, leg: WebRtcLeg, address: str, ports: PortAllocator) -> None:
        """Bind the text port and tie the browser leg's T.140 channel to the bridge."""
        self.bridge = TextBridge(self.config.settings)
        await self.bridge.open(address, ports)
        self._leg = leg
        leg.attach_text(self.bridge)

    def offer_media(self, address: str) -> Media | None:
        """The m=text line for the box's offer to the phone (an outgoing call)."""
        if self.bridge is None:
            return None
        crypto: list[str] = []
        if self.config.srtp != "off":
            self._ours = new_crypto(1, SRTP_SUITE)
            crypto = [str(self._ours)]
        self.local = LocalText(
            address,
            self.bridge.port,
            generations=self.config.settings.generations,
            cps=self.config.settings.cps,
            crypto=crypto,
            secure_profile=self.config.srtp == "require",
        )
        return self.local.media()

    def answered_by_phone(self, answer: SessionDescription) -> bool:
        """The phone's answer to our offer: start text if it accepted the stream."""
        if self.bridge is None or self.local is None:
            return False
        try:
            phone = read_text(answer)
            srtp = self._offer_crypto(phone) if phone is not None else None
        except (SdpError, SdesError) as exc:
            log.info("call %s: text not started: %s", self.call_id, exc)
            phone = None
        if phone is None:
            self.close()
            return False
        self._start(phone, self.local.direction, srtp)
        return True

    def _offer_crypto(self, phone: PhoneText) -> SrtpContext | None:
        """SRTP for the text stream from the phone's answer to our offer (RFC 4568 §7)."""
        if phone.crypto:
            if self._ours is None:
                raise SdesError("the phone answered SRTP that was not offered")
            return SrtpContext(self._ours, CryptoAttribute.parse(phone.crypto[0]))
        if self.config.srtp == "require":
            raise SdesError("the phone refused SRTP for text, which this box requires")
        return None

    def answer_media(self, address: str, browser_took_text: bool) -> tuple[int, Media] | None:
        """Answer the phone's text stream (an incoming call) and start the bridge, or None
        (the stream then gets port 0 in place)."""
        phone = self.phone
        if phone is None or self.bridge is None or not browser_took_text:
            self.close()
            return None
        try:
            srtp, crypto = self._answer_crypto(phone)
        except SdesError as exc:
            log.info("call %s: text refused: %s", self.call_id, exc)
            self.close()
            return None
        direction = answer_direction(phone.direction)
        self.local = LocalText.answering(
            phone,
            address,
            self.bridge.port,
            generations=self.config.settings.generations,
            cps=self.config.settings.cps,
            direction=direction,
            crypto=crypto,
        )
        self._start(phone, direction, srtp)
        return phone.index, self.local.media()

    def _answer_crypto(self, phone: PhoneText) -> tuple[SrtpContext | None, list[str]]:
        if not phone.crypto:
            if phone.secure_profile or self.config.srtp == "require":
                raise SdesError("no usable crypto for the text stream")
            return None, []
        chosen = choose_answer([CryptoAttribute.parse(line) for line in phone.crypto])
        if chosen is None:
            if phone.secure_profile or self.config.srtp == "require":
                raise SdesError("no crypto suite in common for the text stream")
            return None, []
        theirs, ours = chosen
        return SrtpContext(ours, theirs), [str(ours)]

    def _start(self, phone: PhoneText, ours: str, srtp: SrtpContext | None) -> None:
        assert self.bridge is not None
        self.phone = phone
        if self.config.transcripts is not None:
            try:
                self.bridge.transcript = Transcript(
                    self.config.transcripts, self.call_id, self.header
                )
            except OSError as exc:
                log.error("call %s: no transcript: %s", self.call_id, exc)
        self.bridge.start(
            phone,
            to_phone=_sends(ours) and _receives(phone.direction),
            to_browser=_receives(ours) and _sends(phone.direction),
            srtp=srtp,
        )

    # ----- during the call ------------------------------------------------------------------

    def reoffer_media(self) -> Media | None:
        """Our text m-line again, for a re-offer (hold keeps text flowing)."""
        return self.local.media() if self.active and self.local is not None else None

    def reoffered_by_phone(self, offer: SessionDescription) -> tuple[int, Media] | None:
        """The phone's re-INVITE: follow its text stream, or stop text if it dropped it."""
        if not self.active or self.local is None:
            return None
        try:
            phone = read_text(offer)
        except SdpError:
            phone = None
        if phone is None:
            self.close()
            return None
        assert self.bridge is not None
        self.bridge.update(phone)
        return phone.index, self.local.media()

    def close(self) -> None:
        """End the text (idempotent); the browser's channel is let go."""
        if self._leg is not None:
            self._leg.attach_text(None)
            self._leg = None
        if self.bridge is not None:
            self.bridge.close()
