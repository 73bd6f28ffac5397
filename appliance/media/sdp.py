"""Session descriptions (RFC 8866), kept line by line so that nothing is lost.

A :class:`SessionDescription` holds the session-level lines and one :class:`Media` per
``m=`` line, each with its own lines in order. Helpers read the attributes this
gateway needs (rtpmap, fmtp, direction, connection, crypto, setup, candidates) and
build answers that keep the offer's m-line count and order (RFC 3264 §6).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_MEDIA = re.compile(r"^(\S+) (\d+)(?:/(\d+))? (\S+)(?: (.*))?$")
_RTPMAP = re.compile(r"^(\d+) ([^/\s]+)/(\d+)(?:/(\d+))?$")


class SdpError(ValueError):
    """A session description that cannot be used."""


@dataclass(frozen=True)
class RtpMap:
    """``a=rtpmap:<pt> <name>/<clock>[/<channels>]`` (RFC 8866 §6.6)."""

    payload_type: int
    name: str
    clock_rate: int
    channels: int = 1

    def __str__(self) -> str:
        channels = f"/{self.channels}" if self.channels != 1 else ""
        return f"{self.payload_type} {self.name}/{self.clock_rate}{channels}"


# RFC 3551 §6 static payload types that may appear without an rtpmap.
STATIC_AUDIO = {
    0: RtpMap(0, "PCMU", 8000),
    3: RtpMap(3, "GSM", 8000),
    8: RtpMap(8, "PCMA", 8000),
    9: RtpMap(9, "G722", 8000),
    18: RtpMap(18, "G729", 8000),
}


@dataclass
class Media:
    """One ``m=`` section."""

    kind: str
    port: int
    proto: str
    formats: list[str]
    lines: list[tuple[str, str]] = field(default_factory=list)
    port_count: int | None = None

    # ----- attributes -----

    def attributes(self, name: str) -> list[str]:
        """Values of every ``a=name:value`` (or ``a=name`` → empty string)."""
        out = []
        for kind, value in self.lines:
            if kind != "a":
                continue
            attr, _, rest = value.partition(":")
            if attr == name:
                out.append(rest)
        return out

    def attribute(self, name: str) -> str | None:
        """The first value of ``a=name``, or None."""
        values = self.attributes(name)
        return values[0] if values else None

    def has(self, name: str) -> bool:
        """Whether ``a=name`` (with or without a value) is present."""
        return any(k == "a" and v.partition(":")[0] == name for k, v in self.lines)

    def add(self, kind: str, value: str) -> None:
        """Append a line (``kind`` is the one-letter type)."""
        self.lines.append((kind, value))

    def remove_attributes(self, *names: str) -> None:
        """Drop every ``a=`` line with one of these names."""
        self.lines = [
            (k, v) for k, v in self.lines if not (k == "a" and v.partition(":")[0] in names)
        ]

    @property
    def rtpmaps(self) -> dict[int, RtpMap]:
        """Payload types of this section with their encodings (static ones filled in).

        Numbers beyond 127 do not fit the RTP header's 7 bits (RFC 3550 §5.1) and are left out.
        """
        out: dict[int, RtpMap] = {}
        for value in self.attributes("rtpmap"):
            match = _RTPMAP.match(value.strip())
            if match and int(match.group(1)) <= 127:
                pt = int(match.group(1))
                out[pt] = RtpMap(pt, match.group(2), int(match.group(3)), int(match.group(4) or 1))
        for fmt in self.formats:
            if fmt.isdigit() and int(fmt) not in out and int(fmt) in STATIC_AUDIO:
                out[int(fmt)] = STATIC_AUDIO[int(fmt)]
        return out

    def fmtp(self, payload_type: int | str) -> str | None:
        """The ``a=fmtp`` parameters of a format."""
        prefix = f"{payload_type} "
        for value in self.attributes("fmtp"):
            if value.startswith(prefix):
                return value[len(prefix) :].strip()
        return None

    @property
    def direction(self) -> str | None:
        """The media-level direction attribute, if any (RFC 8866 §6.7)."""
        for kind, value in self.lines:
            if kind == "a" and value in DIRECTIONS:
                return value
        return None

    def set_direction(self, direction: str) -> None:
        """Replace the direction attribute."""
        self.lines = [(k, v) for k, v in self.lines if not (k == "a" and v in DIRECTIONS)]
        self.lines.append(("a", direction))

    @property
    def connection(self) -> str | None:
        """The media-level ``c=`` address, if any."""
        for kind, value in self.lines:
            if kind == "c":
                return _connection_address(value)
        return None

    @property
    def rejected(self) -> bool:
        """Port 0: the stream is refused or disabled (RFC 3264 §6, §8.2)."""
        return self.port == 0

    def header(self) -> str:
        """The ``m=`` value."""
        count = f"/{self.port_count}" if self.port_count is not None else ""
        formats = " ".join(self.formats)
        return f"{self.kind} {self.port}{count} {self.proto}" + (f" {formats}" if formats else "")


@dataclass
class SessionDescription:
    """A whole SDP document."""

    lines: list[tuple[str, str]]
    media: list[Media]

    @classmethod
    def parse(cls, text: str | bytes) -> SessionDescription:
        """Parse SDP text; bare LF line ends are accepted (RFC 8866 §5)."""
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise SdpError(f"SDP is not UTF-8 text: {exc}") from None
        session: list[tuple[str, str]] = []
        media: list[Media] = []
        for number, raw in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
            line = raw.rstrip("\r")
            if not line:
                continue
            if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
                raise SdpError(f"line {number} is not <type>=<value>: {line[:40]!r}")
            kind, value = line[0], line[2:]
            if kind == "m":
                match = _MEDIA.match(value)
                if not match:
                    raise SdpError(f"bad m= line {number}: {value[:60]!r}")
                media.append(Media(
                    kind=match.group(1), port=int(match.group(2)), proto=match.group(4),
                    formats=(match.group(5) or "").split(),
                    port_count=int(match.group(3)) if match.group(3) else None,
                ))  # fmt: skip
            elif media:
                media[-1].lines.append((kind, value))
            else:
                session.append((kind, value))
        if not session or session[0] != ("v", "0"):
            raise SdpError("SDP must start with v=0")
        if not any(k == "o" for k, _ in session):
            raise SdpError("SDP has no o= line")
        return cls(session, media)

    def __str__(self) -> str:
        out = [f"{k}={v}" for k, v in self.lines]
        for m in self.media:
            out.append(f"m={m.header()}")
            out += [f"{k}={v}" for k, v in m.lines]
        return "\r\n".join(out) + "\r\n"

    def encode(self) -> bytes:
        """UTF-8 bytes with CRLF line ends."""
        return str(self).encode("utf-8")

    def session_attribute(self, name: str) -> str | None:
        """A session-level ``a=`` value."""
        for kind, value in self.lines:
            attr, _, rest = value.partition(":")
            if kind == "a" and attr == name:
                return rest
        return None

    @property
    def connection(self) -> str | None:
        """The session-level ``c=`` address."""
        for kind, value in self.lines:
            if kind == "c":
                return _connection_address(value)
        return None

    def media_connection(self, media: Media) -> str | None:
        """The address a stream's media goes to: its own c=, else the session's."""
        return media.connection or self.connection

    def media_direction(self, media: Media) -> str:
        """The effective direction of a stream: media level, session level, else sendrecv."""
        if media.direction is not None:
            return media.direction
        for kind, value in self.lines:
            if kind == "a" and value in DIRECTIONS:
                return value
        return "sendrecv"

    @property
    def origin(self) -> tuple[str, str, str, str, str, str]:
        """``o=`` fields: username, session id, version, nettype, addrtype, address."""
        for kind, value in self.lines:
            if kind == "o":
                parts = value.split()
                if len(parts) == 6:
                    return (parts[0], parts[1], parts[2], parts[3], parts[4], parts[5])
        raise SdpError("bad o= line")


NULL_ADDRESSES = frozenset(("0.0.0.0", "::"))  # noqa: S104 - compared, never bound


def is_null_address(address: str) -> bool:
    """``c=0.0.0.0``: the RFC 2543 way of putting a stream on hold (RFC 3264 §8.4)."""
    return address in NULL_ADDRESSES


def _connection_address(value: str) -> str | None:
    parts = value.split()
    if len(parts) < 3:
        return None
    return parts[2].split("/")[0]


def new_session(
    session_id: int, version: int, address: str, extra: Iterable[tuple[str, str]] = ()
) -> SessionDescription:
    """An empty description with o=, s=, c= and t= for ``address`` (RFC 8866 §5)."""
    family = "IP6" if ":" in address else "IP4"
    lines = [
        ("v", "0"),
        ("o", f"appliance {session_id} {version} IN {family} {address}"),
        ("s", "-"),
        ("c", f"IN {family} {address}"),
        ("t", "0 0"),
        *extra,
    ]
    return SessionDescription(lines, [])


def answer_direction(offered: str, wanted: str = "sendrecv") -> str:
    """The direction an answer may take for an offered direction (RFC 3264 §6.1)."""
    allowed = {
        "sendrecv": {"sendrecv", "sendonly", "recvonly", "inactive"},
        "sendonly": {"recvonly", "inactive"},
        "recvonly": {"sendonly", "inactive"},
        "inactive": {"inactive"},
    }[offered]
    if wanted in allowed:
        return wanted
    mirror = {"sendonly": "recvonly", "recvonly": "sendonly"}
    if offered in mirror and wanted in ("sendrecv", mirror[offered]):
        return mirror[offered]
    return "inactive"


def rejected_copy(offer: Media) -> Media:
    """The answer to a stream this side refuses: same type, port 0, one format (§6)."""
    return Media(offer.kind, 0, offer.proto, offer.formats[:1] or ["0"])
