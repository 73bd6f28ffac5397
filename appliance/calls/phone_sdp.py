"""Offer/answer toward SIP phones for relayed audio (RFC 3264, RFC 3551, RFC 4733, RFC 4568).

The browser leg's SDP is aiortc's business; this module reads and writes the phone
side. Answers always keep the offer's m-line count and order, refusing what cannot be
bridged with port 0 in place (RFC 3264 §6): phones index streams by position.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from appliance.media.codecs import STATIC_PT, TELEPHONE_EVENT, Codec, codec_of
from appliance.media.sdp import (
    Media,
    SdpError,
    SessionDescription,
    is_null_address,
    new_session,
    rejected_copy,
)

AUDIO_PROTOS = {"RTP/AVP": False, "RTP/AVPF": False, "RTP/SAVP": True, "RTP/SAVPF": True}


@dataclass(frozen=True)
class PhoneAudio:
    """The phone's audio stream as its SDP describes it."""

    index: int
    address: str
    port: int
    codecs: list[tuple[Codec, int]]
    telephone_event: int | None
    direction: str
    secure_profile: bool
    crypto: list[str] = field(default_factory=list)
    rtcp_mux: bool = False
    rtcp_port: int | None = None
    ptime: int | None = None

    @property
    def on_hold(self) -> bool:
        """The phone sends nothing (RFC 3264 §8.4: sendonly from its side or inactive)."""
        return self.direction in ("sendonly", "inactive") or is_null_address(self.address)


def read_audio(sd: SessionDescription, allowed: list[Codec]) -> PhoneAudio | None:
    """The first audio stream offering a relayable codec, or None.

    Codecs keep the phone's order (its preference, RFC 3264 §5.1), filtered to
    ``allowed``; telephone-event must run at 8000 Hz to go with G.711/G.722 (RFC 4733 §7).
    """
    for index, media in enumerate(sd.media):
        if media.kind != "audio" or media.rejected or media.proto not in AUDIO_PROTOS:
            continue
        maps = media.rtpmaps
        codecs: list[tuple[Codec, int]] = []
        event: int | None = None
        for fmt in media.formats:
            if not fmt.isdigit() or int(fmt) not in maps:
                continue
            rtpmap = maps[int(fmt)]
            if rtpmap.name.lower() == TELEPHONE_EVENT and rtpmap.clock_rate == 8000:
                event = event if event is not None else rtpmap.payload_type
                continue
            codec = codec_of(rtpmap)
            if codec is not None and codec in allowed:
                codecs.append((codec, rtpmap.payload_type))
        if not codecs:
            continue
        address = sd.media_connection(media)
        if address is None:
            raise SdpError(f"audio stream {index} has no c= address")
        rtcp = media.attribute("rtcp")
        ptime = media.attribute("ptime")
        return PhoneAudio(
            index=index,
            address=address,
            port=media.port,
            codecs=codecs,
            telephone_event=event,
            direction=sd.media_direction(media),
            secure_profile=AUDIO_PROTOS[media.proto],
            crypto=media.attributes("crypto"),
            rtcp_mux=media.has("rtcp-mux"),
            rtcp_port=int(rtcp.split()[0]) if rtcp and rtcp.split()[0].isdigit() else None,
            ptime=int(ptime) if ptime and ptime.isdigit() else None,
        )
    return None


def no_audio_cause(answer: SessionDescription, srtp: str) -> str:
    """Why a phone's answer leaves no audio to relay, in words for the page.

    Port 0 refuses a stream (RFC 3264 §6): a phone that insists on SRTP refuses the
    ``RTP/AVP`` line with ``a=crypto`` that ``[media] srtp = "offer"`` sends (RFC 8643)."""
    if any(m.kind == "audio" and not m.rejected for m in answer.media):
        return "the phone accepted none of the offered audio codecs"
    if srtp == "offer":
        return 'the phone refused the audio stream (if it requires SRTP: [media] srtp = "require")'
    return "the phone refused the audio stream"


@dataclass(frozen=True)
class LocalAudio:
    """What the box puts in its own audio m-line toward the phone."""

    address: str
    port: int
    codecs: list[tuple[Codec, int]]
    telephone_event: int | None
    direction: str
    crypto: list[str] = field(default_factory=list)
    secure_profile: bool = False
    rtcp_mux: bool = False
    ptime: int | None = None

    def media(self) -> Media:
        """The m= section (RFC 8866 §5.14) with rtpmaps for every format."""
        formats = [str(pt) for _, pt in self.codecs]
        if self.telephone_event is not None:
            formats.append(str(self.telephone_event))
        proto = "RTP/SAVP" if self.secure_profile else "RTP/AVP"
        media = Media("audio", self.port, proto, formats)
        for codec, pt in self.codecs:
            channels = f"/{codec.channels}" if codec.channels != 1 else ""
            media.add("a", f"rtpmap:{pt} {codec.name}/{codec.clock_rate}{channels}")
            if codec.name == "opus":
                media.add("a", f"fmtp:{pt} useinbandfec=1")
        if self.telephone_event is not None:
            media.add("a", f"rtpmap:{self.telephone_event} telephone-event/8000")
            media.add("a", f"fmtp:{self.telephone_event} 0-15")
        if self.ptime:
            media.add("a", f"ptime:{self.ptime}")
        if self.rtcp_mux:
            media.add("a", "rtcp-mux")
        for line in self.crypto:
            media.add("a", f"crypto:{line}")
        media.add("a", self.direction)
        return media


def phone_answer(
    offer: SessionDescription,
    audio: PhoneAudio | None,
    local: LocalAudio | None,
    session_id: int,
    version: int,
    *,
    text: tuple[int, Media] | None = None,
    address: str = "",
) -> SessionDescription:
    """Answer ``offer`` accepting only its ``audio.index`` stream and, with ``text``
    (index, m= section), its text stream (RFC 3264 §6.1); the rest at port 0 in place.
    A text-only answer (no ``audio``) gives the box's ``address``."""
    answer = new_session(session_id, version, local.address if local else address)
    for index, media in enumerate(offer.media):
        if audio is not None and local is not None and index == audio.index:
            answer.media.append(local.media())
        elif text is not None and index == text[0]:
            answer.media.append(text[1])
        else:
            answer.media.append(rejected_copy(media))
    return answer


def phone_offer(
    local: LocalAudio | None,
    session_id: int,
    version: int,
    previous: SessionDescription | None = None,
    *,
    text: Media | None = None,
    address: str = "",
) -> SessionDescription:
    """A new offer; a later one keeps every earlier m-line in place (RFC 3264 §8), text
    in the earlier text slot (a refused one is reused, §8.3.1) or at the bottom. Without
    ``local`` audio it is a text-only offer from the box's ``address``."""
    offer = new_session(session_id, version, local.address if local else address)
    placed = local is None
    text_placed = text is None
    for media in previous.media if previous is not None else []:
        if local is not None and media.kind == "audio" and not placed and not media.rejected:
            offer.media.append(local.media())
            placed = True
        elif text is not None and media.kind == "text" and not text_placed:
            offer.media.append(text)
            text_placed = True
        else:
            offer.media.append(rejected_copy(media))
    if not placed and local is not None:
        offer.media.append(local.media())
    if text is not None and not text_placed:
        offer.media.append(text)
    return offer


def payload_types_for(
    codecs: list[Codec], with_events: bool
) -> tuple[list[tuple[Codec, int]], int | None]:
    """Payload types for an offer: static where RFC 3551 §6 has one, else dynamic."""
    dynamic = iter(range(96, 128))
    out = [(c, STATIC_PT[c.name]) if c.name in STATIC_PT else (c, next(dynamic)) for c in codecs]
    return out, (next(dynamic) if with_events else None)
