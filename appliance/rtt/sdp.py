"""The SIP side's ``m=text`` stream (RFC 4103 §7, RFC 4102 §4, RFC 3264).

:func:`read_text` finds the phone's text stream in its SDP; :class:`LocalText` writes the
box's own ``m=text`` section, keeping the peer's payload-type numbers in an answer (RFC
3264 §6.1; liblinphone sends plain T.140 under the red number when an answer renumbers).
The browser side of the same text is a T.140 data channel (:mod:`appliance.rtt.channel`);
SIP text m-lines are never passed to the browser (browsers reject ``m=text``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from appliance.media.sdp import Media, SdpError, SessionDescription
from appliance.rtt.red import RedError, parse_red_fmtp
from appliance.rtt.sender import MAX_GENERATIONS

TEXT_PROTOS = {"RTP/AVP": False, "RTP/AVPF": False, "RTP/SAVP": True, "RTP/SAVPF": True}
CLOCK = 1000
"""RFC 4103 §3.5: the text clock MUST be 1000 Hz."""

DEFAULT_CPS = 30
DEFAULT_RED_PT = 100
DEFAULT_T140_PT = 98
ASSUMED_GENERATIONS = 2
"""Redundancy assumed for a red format without its fmtp (the RFC 4103 §4 default)."""

_CPS = re.compile(r"(?:^|;)\s*cps\s*=\s*(\d{1,6})\s*(?:;|$)")


@dataclass(frozen=True)
class PhoneText:
    """The phone's text stream as its SDP describes it."""

    index: int
    address: str
    port: int
    t140_pt: int
    red_pt: int | None
    generations: int
    cps: int
    direction: str
    secure_profile: bool
    crypto: list[str] = field(default_factory=list)
    rtcp_mux: bool = False
    rtcp_port: int | None = None


def _cps(media: Media, t140_pt: int) -> int:
    params = media.fmtp(t140_pt) or ""
    match = _CPS.search(params)
    if match and int(match.group(1)) > 0:
        return int(match.group(1))
    return DEFAULT_CPS


def read_text(sd: SessionDescription) -> PhoneText | None:
    """The first usable text stream (t140/1000, optionally red/1000 over it), or None.

    A red format whose fmtp names anything but the t140 format is not used (RFC 4103
    §4: every block is T.140); one without fmtp is taken to carry two generations.
    """
    for index, media in enumerate(sd.media):
        if media.kind != "text" or media.rejected or media.proto not in TEXT_PROTOS:
            continue
        maps = media.rtpmaps
        t140 = red = None
        for fmt in media.formats:
            if not fmt.isdigit() or int(fmt) not in maps:
                continue
            rtpmap = maps[int(fmt)]
            if rtpmap.clock_rate != CLOCK:
                continue
            if rtpmap.name.lower() == "t140" and t140 is None:
                t140 = rtpmap.payload_type
            elif rtpmap.name.lower() == "red" and red is None:
                red = rtpmap.payload_type
        if t140 is None:
            continue
        generations = 0
        if red is not None:
            fmtp = media.fmtp(red)
            if fmtp is None:
                generations = ASSUMED_GENERATIONS
            else:
                try:
                    generations = parse_red_fmtp(fmtp, t140)
                except RedError:
                    red = None
        address = sd.media_connection(media)
        if address is None:
            raise SdpError(f"text stream {index} has no c= address")
        rtcp = media.attribute("rtcp")
        return PhoneText(
            index=index,
            address=address,
            port=media.port,
            t140_pt=t140,
            red_pt=red,
            generations=generations,
            cps=_cps(media, t140),
            direction=sd.media_direction(media),
            secure_profile=TEXT_PROTOS[media.proto],
            crypto=media.attributes("crypto"),
            rtcp_mux=media.has("rtcp-mux"),
            rtcp_port=int(rtcp.split()[0]) if rtcp and rtcp.split()[0].isdigit() else None,
        )
    return None


@dataclass(frozen=True)
class LocalText:
    """What the box puts in its own ``m=text`` section toward the phone.

    ``generations`` is the redundancy the box sends (0-3); ``cps`` what it can receive.
    """

    address: str
    port: int
    t140_pt: int = DEFAULT_T140_PT
    red_pt: int | None = DEFAULT_RED_PT
    generations: int = 2
    cps: int = DEFAULT_CPS
    direction: str = "sendrecv"
    crypto: list[str] = field(default_factory=list)
    secure_profile: bool = False
    rtcp_mux: bool = False

    def media(self) -> Media:
        """The m= section: red first when offered, then t140 (RFC 4103 §7.2, §10)."""
        if not 0 <= self.generations <= MAX_GENERATIONS:
            raise ValueError(f"generations must be 0-{MAX_GENERATIONS}")
        proto = "RTP/SAVP" if self.secure_profile else "RTP/AVP"
        formats = [str(self.t140_pt)]
        if self.red_pt is not None:
            formats.insert(0, str(self.red_pt))
        media = Media("text", self.port, proto, formats)
        if self.red_pt is not None:
            media.add("a", f"rtpmap:{self.red_pt} red/{CLOCK}")
            media.add(
                "a", f"fmtp:{self.red_pt} " + "/".join([str(self.t140_pt)] * (self.generations + 1))
            )
        media.add("a", f"rtpmap:{self.t140_pt} t140/{CLOCK}")
        media.add("a", f"fmtp:{self.t140_pt} cps={self.cps}")
        if self.rtcp_mux:
            media.add("a", "rtcp-mux")
        for line in self.crypto:
            media.add("a", f"crypto:{line}")
        if self.direction != "sendrecv":
            media.add("a", self.direction)
        return media

    @classmethod
    def answering(
        cls,
        offer: PhoneText,
        address: str,
        port: int,
        *,
        generations: int,
        cps: int,
        direction: str,
        crypto: list[str] | None = None,
    ) -> LocalText:
        """The answer to ``offer``: its payload-type numbers, red only if it offered red."""
        return cls(
            address=address,
            port=port,
            t140_pt=offer.t140_pt,
            red_pt=offer.red_pt,
            generations=generations if offer.red_pt is not None else 0,
            cps=cps,
            direction=direction,
            crypto=crypto or [],
            secure_profile=offer.secure_profile,
            rtcp_mux=offer.rtcp_mux,
        )
