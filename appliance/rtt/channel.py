"""The T.140 data channel (RFC 8865) and its SDP (RFC 8864), and the gateway rules that tie
it to an RTP text stream (RFC 8865 §6).

* :func:`parse_dcmap`, :func:`format_dcmap`, :func:`t140_channels` and
  :func:`t140_attributes` read and write ``a=dcmap``/``a=dcsa`` lines;
* :class:`Direction`, :func:`answer_direction` and :func:`text_flow` apply the RFC 3264
  direction rules as RFC 8865 §4.2.3 uses them;
* :class:`ChannelText` moves text between the RTP receiver and the channel, and from the
  channel toward the RTP sender, marking possible loss after a channel re-open (§5.4, §6).
"""

from __future__ import annotations

import codecs
import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from appliance.rtt.receiver import Origin, ReceivedBlock
from appliance.rtt.t140 import BOM, LOSS_MARK, T140Writer, sanitize

SUBPROTOCOL = "t140"
DEFAULT_CPS = 30
"""Without a ``cps`` parameter the peer can take 30 characters per second (RFC 4103 §6)."""

MAX_STREAM_ID = 65534
"""SCTP stream 65535 is reserved (RFC 8831 §6.5)."""


class ChannelSdpError(ValueError):
    """A dcmap/dcsa that makes the offer unacceptable (or the answer a failure)."""


# ----------------------------------------------------------------------- direction
class Direction(enum.Enum):
    """A text direction attribute, as written by the side that sends the SDP."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        """The SDP's author may send text."""
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        """The SDP's author accepts text."""
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    @classmethod
    def of(cls, *, sends: bool, receives: bool) -> Direction:
        """The attribute for a sending/receiving combination."""
        if sends:
            return cls.SENDRECV if receives else cls.SENDONLY
        return cls.RECVONLY if receives else cls.INACTIVE

    def reverse(self) -> Direction:
        """The same flow seen from the other end (sendonly ⇄ recvonly)."""
        return Direction.of(sends=self.receives, receives=self.sends)


def answer_direction(offered: Direction, local: Direction = Direction.SENDRECV) -> Direction:
    """The answer to ``offered`` for an answerer that wants ``local`` (RFC 8865 §4.2.3.2,
    RFC 3264 §6.1): it sends only if the offerer receives, receives only if it sends."""
    allowed = offered.reverse()
    return Direction.of(
        sends=allowed.sends and local.sends, receives=allowed.receives and local.receives
    )


def text_flow(offer: Direction, answer: Direction) -> tuple[bool, bool]:
    """Whether text flows offerer→answerer and answerer→offerer after an exchange.

    A gateway MUST keep the text direction the same on both legs (RFC 8865 §6): it offers
    on one leg the direction the other leg's peer offered, and answers with the direction
    the other leg's peer answered, so ``text_flow`` agrees on both legs.
    """
    return offer.sends and answer.receives, answer.sends and offer.receives


# --------------------------------------------------------------------------- dcmap
_QUOTED_OK = frozenset(range(0x20, 0x7F)) - {0x22, 0x25}  # RFC 8864 §5.1.1 quoted-char


def _quote(value: str) -> str:
    """A quoted-string with %HH escapes for bytes that are not quoted-char (§5.1.3)."""
    out = []
    for byte in value.encode("utf-8"):
        out.append(chr(byte) if byte in _QUOTED_OK else f"%{byte:02X}")
    return '"' + "".join(out) + '"'


def _unquote(token: str) -> str:
    if len(token) < 2 or token[0] != '"' or token[-1] != '"':
        raise ChannelSdpError(f"{token!r} is not a quoted string (RFC 8864 §5.1.1)")
    raw = bytearray()
    body = token[1:-1]
    pos = 0
    while pos < len(body):
        char = body[pos]
        if char == "%":
            digits = body[pos + 1 : pos + 3]
            if len(digits) != 2 or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise ChannelSdpError(f"bad escape in {token!r} (RFC 8864 §5.1.1)")
            raw.append(int(digits, 16))
            pos += 3
            continue
        if ord(char) not in _QUOTED_OK:
            raise ChannelSdpError(f"{char!r} may not appear unescaped in {token!r}")
        raw.append(ord(char))
        pos += 1
    return raw.decode("utf-8", errors="replace")


def _split_options(text: str) -> list[str]:
    """Split ``a;b="x;y";c`` at semicolons outside quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == ";" and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if quoted:
        raise ChannelSdpError(f"unterminated quoted string in {text!r}")
    parts.append("".join(current))
    return parts


def _uint(name: str, value: str, limit: int) -> int:
    if not value.isdigit() or int(value) >= limit:
        raise ChannelSdpError(f"{name}={value!r} is not an integer below {limit}")
    return int(value)


@dataclass(frozen=True)
class DcMap:
    """An ``a=dcmap`` line (RFC 8864 §5.1)."""

    stream_id: int
    label: str = ""
    subprotocol: str = ""
    ordered: bool = True
    max_retr: int | None = None
    max_time: int | None = None
    priority: int | None = None


def _attribute_value(line: str, name: str) -> str:
    line = line.strip()
    for prefix in (f"a={name}:", f"{name}:"):
        if line.startswith(prefix):
            return line[len(prefix) :]
    raise ChannelSdpError(f"{line!r} is not an a={name} line")


def parse_dcmap(line: str) -> DcMap:
    """Parse an ``a=dcmap:<id> <options>`` line, ``a=`` optional (RFC 8864 §5.1.1)."""
    value = _attribute_value(line, "dcmap")
    stream, _, options = value.partition(" ")
    if not stream.isdigit() or len(stream) > 5 or int(stream) > MAX_STREAM_ID:
        raise ChannelSdpError(f"dcmap stream id {stream!r} is not 0-{MAX_STREAM_ID}")
    label = subprotocol = ""
    ordered = True
    max_retr = max_time = priority = None
    seen: set[str] = set()
    for option in _split_options(options) if options.strip() else []:
        name, eq, raw = option.strip().partition("=")
        if not eq:
            raise ChannelSdpError(f"dcmap option {option!r} has no value")
        if name in seen:
            raise ChannelSdpError(f"dcmap option {name} appears twice")
        seen.add(name)
        if name == "label":
            label = _unquote(raw)
        elif name == "subprotocol":
            subprotocol = _unquote(raw)
        elif name == "ordered":
            ordered = raw != "false"  # any other value means true (§5.1.7)
        elif name == "max-retr":
            max_retr = _uint(name, raw, 2**32)
        elif name == "max-time":
            max_time = _uint(name, raw, 2**32)
        elif name == "priority":
            priority = _uint(name, raw, 2**16)
        # other options are extensions this side does not know: ignored
    if max_retr is not None and max_time is not None:
        raise ChannelSdpError("dcmap has both max-retr and max-time (RFC 8864 §6.2)")
    return DcMap(int(stream), label, subprotocol, ordered, max_retr, max_time, priority)


def format_dcmap(dcmap: DcMap) -> str:
    """The ``a=dcmap`` line for ``dcmap`` (RFC 8864 §5.1.1)."""
    options = []
    if dcmap.label:
        options.append(f"label={_quote(dcmap.label)}")
    if dcmap.subprotocol:
        options.append(f"subprotocol={_quote(dcmap.subprotocol)}")
    if not dcmap.ordered:
        options.append("ordered=false")
    if dcmap.max_retr is not None:
        options.append(f"max-retr={dcmap.max_retr}")
    if dcmap.max_time is not None:
        options.append(f"max-time={dcmap.max_time}")
    if dcmap.priority is not None:
        options.append(f"priority={dcmap.priority}")
    tail = " " + ";".join(options) if options else ""
    return f"a=dcmap:{dcmap.stream_id}{tail}"


# ---------------------------------------------------------------- t140 channels
@dataclass(frozen=True)
class T140Channel:
    """A T.140 data channel as one side's SDP describes it (RFC 8865 §4).

    ``cps`` is what that side can receive; ``direction`` is written from that side.
    """

    stream_id: int
    label: str = ""
    cps: int = DEFAULT_CPS
    direction: Direction = Direction.SENDRECV
    hlang_send: tuple[str, ...] = ()
    hlang_recv: tuple[str, ...] = ()


_CPS = re.compile(r"^\s*cps\s*=\s*(\d{1,9})\s*$")


def _fmtp_cps(value: str) -> int | None:
    """``cps`` from a dcsa ``fmtp:t140 cps=N``; ``None`` when the dcsa must be ignored
    (another format, or no valid cps: RFC 8865 §4.2.1)."""
    fmt, _, params = value.partition(" ")
    if fmt != SUBPROTOCOL:
        return None
    for param in params.split(";"):
        match = _CPS.match(param)
        if match and int(match.group(1)) > 0:
            return int(match.group(1))
    return None


def t140_channels(attributes: Iterable[str]) -> list[T140Channel]:
    """The T.140 channels in one ``m=application`` section's attribute lines.

    Raises :class:`ChannelSdpError` when a t140 dcmap carries ``max-retr``/``max-time`` or
    ``ordered=false`` (RFC 8865 §4.1: the offer MUST be rejected, the answer not accepted),
    or when a dcmap is malformed. A dcsa without its dcmap is discarded, and one whose
    attribute has no T.140 meaning is ignored (RFC 8864 §6.7, RFC 8865 §4.2).
    """
    dcmaps: dict[int, DcMap] = {}
    dcsas: list[tuple[int, str]] = []
    for raw in attributes:
        line = raw.strip()
        if line.startswith("a="):
            line = line[2:]
        if line.startswith("dcmap:"):
            dcmap = parse_dcmap(line)
            if dcmap.stream_id in dcmaps:
                raise ChannelSdpError(f"two dcmap lines for stream {dcmap.stream_id}")
            dcmaps[dcmap.stream_id] = dcmap
        elif line.startswith("dcsa:"):
            stream, _, attribute = line[5:].partition(" ")
            if stream.isdigit() and attribute:
                dcsas.append((int(stream), attribute.strip()))
    channels: dict[int, T140Channel] = {}
    for stream_id, dcmap in dcmaps.items():
        if dcmap.subprotocol != SUBPROTOCOL:
            continue
        if dcmap.max_retr is not None or dcmap.max_time is not None:
            raise ChannelSdpError(
                f"t140 channel {stream_id} is partially reliable (RFC 8865 §4.1 forbids"
                " max-retr and max-time)"
            )
        if not dcmap.ordered:
            raise ChannelSdpError(f"t140 channel {stream_id} is unordered (RFC 8865 §4.1)")
        channels[stream_id] = T140Channel(stream_id, dcmap.label)
    for stream_id, attribute in dcsas:
        channel = channels.get(stream_id)
        if channel is None:
            continue
        name, _, value = attribute.partition(":")
        if name == "fmtp":
            cps = _fmtp_cps(value)
            if cps is not None:
                channel = replace(channel, cps=cps)
        elif name in ("sendrecv", "sendonly", "recvonly", "inactive") and not value:
            channel = replace(channel, direction=Direction(name))
        elif name == "hlang-send" and value.strip():
            channel = replace(channel, hlang_send=tuple(value.split()))
        elif name == "hlang-recv" and value.strip():
            channel = replace(channel, hlang_recv=tuple(value.split()))
        channels[stream_id] = channel
    return list(channels.values())


def t140_attributes(channel: T140Channel, *, explicit: bool = False) -> list[str]:
    """The dcmap/dcsa lines for ``channel`` (RFC 8865 §4.1-4.2).

    The ``cps`` line is always written; the direction only when it is not the default
    sendrecv, unless ``explicit``.
    """
    sid = channel.stream_id
    lines = [
        format_dcmap(DcMap(sid, channel.label, SUBPROTOCOL)),
        f"a=dcsa:{sid} fmtp:{SUBPROTOCOL} cps={channel.cps}",
    ]
    if explicit or channel.direction is not Direction.SENDRECV:
        lines.append(f"a=dcsa:{sid} {channel.direction.value}")
    if channel.hlang_send:
        lines.append(f"a=dcsa:{sid} hlang-send:{' '.join(channel.hlang_send)}")
    if channel.hlang_recv:
        lines.append(f"a=dcsa:{sid} hlang-recv:{' '.join(channel.hlang_recv)}")
    return lines


# ------------------------------------------------------------------ the gateway
@dataclass(frozen=True)
class ChannelOpened:
    """What to send when the channel (re)opens: messages for the channel, text for RTP."""

    to_channel: tuple[str, ...]
    to_rtp: str


class ChannelText:
    """One call's text between an RTP text stream and a T.140 data channel (RFC 8865 §6).

    Toward the channel: received RTP blocks are forwarded as they come, keep-alive BOMs
    removed and unrecovered blocks as U+FFFD; a BOM opens each channel (RFC 9071 §3.2).
    While the channel is down, text waits (at most ``max_queue`` characters; beyond that it
    is dropped and one U+FFFD marks the drop, RFC 8865 §4.2.1). After a re-open nothing
    already sent is repeated; one U+FFFD goes both ways, because text in flight when the
    channel failed may be lost (RFC 8865 §5.4, §6).

    Toward RTP: channel messages are decoded and normalised (CR LF / CR / LF to U+2028) as
    text for :meth:`appliance.rtt.sender.RttSender.write`; BOMs are removed, since the RTP
    side sends its own (RFC 9071 §3.2).
    """

    def __init__(self, *, max_queue: int = 65536) -> None:
        self.max_queue = max_queue
        self._open = False
        self._was_open = False
        self._queue: list[str] = []
        self._queued = 0
        self._overflowed = False
        self._rtp_decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._channel_decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._writer = T140Writer(bom=False)
        self.dropped = 0

    @property
    def is_open(self) -> bool:
        """Whether the channel is open."""
        return self._open

    def channel_opened(self) -> ChannelOpened:
        """The channel is open (again): BOM, a loss mark after a re-open, then queued text."""
        reopened = self._was_open
        self._open = self._was_open = True
        head = BOM + (LOSS_MARK if reopened else "")
        queued = "".join(self._queue)
        self._queue.clear()
        self._queued = 0
        self._overflowed = False
        return ChannelOpened((head + queued,), LOSS_MARK if reopened else "")

    def channel_closed(self) -> None:
        """The channel failed or closed; text toward it waits for a re-open."""
        self._open = False

    def from_rtp(self, block: ReceivedBlock) -> list[str]:
        """Messages for the channel now, for one block from :class:`RttReceiver`."""
        if block.origin is Origin.LOST:
            text = self._rtp_decoder.decode(b"", final=True) + LOSS_MARK
            self._rtp_decoder.reset()
        else:
            text = self._rtp_decoder.decode(block.data)
        text = text.replace(BOM, "")
        if not text:
            return []
        if self._open:
            return [text]
        self._enqueue(text)
        return []

    def _enqueue(self, text: str) -> None:
        room = self.max_queue - self._queued
        if len(text) > room:
            self.dropped += len(text) - max(room, 0)
            text = text[: max(room, 0)]
            if not self._overflowed:
                self._overflowed = True
                text += LOSS_MARK
        self._queue.append(text)
        self._queued += len(text)

    def from_channel(self, message: str | bytes) -> str:
        """Text for the RTP sender from one channel message (string or binary)."""
        if isinstance(message, bytes):
            text = self._channel_decoder.decode(message)
        else:
            text = sanitize(message)
        return self._writer.text(text.replace(BOM, ""))
