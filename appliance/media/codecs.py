"""The audio codecs the box relays without transcoding (RFC 3551, RFC 7587, RFC 4733)."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.media.sdp import RtpMap


@dataclass(frozen=True)
class Codec:
    """An encoding as SDP names it: name, clock rate and channels."""

    name: str
    clock_rate: int
    channels: int = 1

    def matches(self, rtpmap: RtpMap) -> bool:
        """Same encoding (names compare case-insensitively, RFC 8866 §6.6)."""
        return (
            rtpmap.name.lower() == self.name.lower()
            and rtpmap.clock_rate == self.clock_rate
            and rtpmap.channels == self.channels
        )

    @property
    def mime(self) -> str:
        """``audio/<name>`` as aiortc names codecs."""
        return f"audio/{self.name}"


OPUS = Codec("opus", 48000, 2)  # RFC 7587 §7: always opus/48000/2
G722 = Codec("G722", 8000)  # RFC 3551 §4.5.2: 8000 for historical reasons
PCMU = Codec("PCMU", 8000)
PCMA = Codec("PCMA", 8000)
RELAYABLE = {c.name: c for c in (OPUS, G722, PCMU, PCMA)}
TELEPHONE_EVENT = "telephone-event"
STATIC_PT = {"PCMU": 0, "PCMA": 8, "G722": 9}


def codec_of(rtpmap: RtpMap) -> Codec | None:
    """The relayable codec an rtpmap names, if any."""
    for codec in RELAYABLE.values():
        if codec.matches(rtpmap):
            return codec
    return None


def preferred(names: list[str]) -> list[Codec]:
    """Relayable codecs in the configured order (``[media] codecs``)."""
    return [RELAYABLE[n] for n in names if n in RELAYABLE]
