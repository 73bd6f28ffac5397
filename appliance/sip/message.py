"""SIP messages: parsing and serialization (RFC 3261 §7, §18.3, §20, §25).

:func:`parse_message` turns one complete message (a datagram, or one message cut from
a stream by :class:`~appliance.sip.framing.StreamFramer`) into a :class:`Request` or
:class:`Response`. Bad input raises :class:`ParseError`, which keeps whatever head it
could read so that a request can still be answered with 400 (§8.2, §21.4.1).
Text is decoded as UTF-8 with ``surrogateescape``, so bytes that are not UTF-8 survive
a parse/serialize round trip unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from appliance.sip.grammar import SipSyntaxError, is_token
from appliance.sip.headers import CSeq, Headers, NameAddr, Via, parse_contacts, parse_int
from appliance.sip.uri import AbsoluteUri, Uri, parse_uri

SIP_VERSION = "SIP/2.0"
_STATUS_LINE = re.compile(r"^SIP/(\d+)\.(\d+) (\d{3}) (.*)$", re.DOTALL)
_VERSION = re.compile(r"^SIP/(\d+)\.(\d+)$", re.IGNORECASE)
_CRLF2 = b"\r\n\r\n"


@dataclass(frozen=True)
class Limits:
    """Bounds on what a peer may send (protect memory and CPU)."""

    max_size: int = 65535
    max_headers: int = 256
    max_line: int = 16384


DEFAULT_LIMITS = Limits()


class ParseError(ValueError):
    """A message that cannot be used; ``head`` is set when a 400 can still be sent."""

    def __init__(self, reason: str, head: Request | None = None, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.head = head
        self.status = status


class Message:
    """Fields common to requests and responses."""

    __slots__ = ("body", "headers")

    def __init__(self, headers: Headers | None = None, body: bytes = b"") -> None:
        self.headers = headers if headers is not None else Headers()
        self.body = body

    # Structured accessors; each raises SipSyntaxError on a malformed or missing value.

    @property
    def call_id(self) -> str:
        """Call-ID (§20.8): exactly one, a word without white space."""
        lines = self.headers.lines("Call-ID")
        if len(lines) != 1 or not lines[0] or any(c.isspace() for c in lines[0].strip()):
            raise SipSyntaxError("expected exactly one Call-ID")
        return lines[0].strip()

    @property
    def cseq(self) -> CSeq:
        """CSeq (§20.16)."""
        lines = self.headers.lines("CSeq")
        if len(lines) != 1:
            raise SipSyntaxError("expected exactly one CSeq")
        return CSeq.parse(lines[0])

    def _single_address(self, name: str) -> NameAddr:
        lines = self.headers.lines(name)
        if len(lines) != 1:
            raise SipSyntaxError(f"expected exactly one {name}")
        return NameAddr.parse(lines[0])

    @property
    def from_(self) -> NameAddr:
        """From (§20.20)."""
        return self._single_address("From")

    @property
    def to(self) -> NameAddr:
        """To (§20.39)."""
        return self._single_address("To")

    @property
    def vias(self) -> list[Via]:
        """Every Via, topmost first (§20.42)."""
        return [Via.parse(v) for v in self.headers.values("Via")]

    @property
    def top_via(self) -> Via:
        """The topmost Via."""
        values = self.headers.values("Via")
        if not values:
            raise SipSyntaxError("missing Via")
        return Via.parse(values[0])

    @property
    def contacts(self) -> list[NameAddr] | None:
        """Contact addresses; ``None`` for ``*`` (§20.10)."""
        return parse_contacts(self.headers.values("Contact"))

    @property
    def content_type(self) -> str | None:
        """The media type without parameters, lower-cased (§20.15)."""
        value = self.headers.get("Content-Type")
        return value.split(";")[0].strip().lower() if value else None

    @property
    def expires(self) -> int | None:
        """Expires as delta-seconds (§20.19)."""
        return parse_int(self.headers.get("Expires"), maximum=2**32 - 1, what="Expires")

    def header_block(self) -> str:
        """The header fields with a fresh Content-Length, each line CRLF-terminated."""
        lines = [f"{n}: {v}\r\n" for n, v in self.headers if n != "Content-Length"]
        lines.append(f"Content-Length: {len(self.body)}\r\n")
        return "".join(lines)


class Request(Message):
    """A SIP request."""

    __slots__ = ("method", "uri")

    def __init__(
        self, method: str, uri: Uri, headers: Headers | None = None, body: bytes = b""
    ) -> None:
        super().__init__(headers, body)
        self.method = method
        self.uri = uri

    def encode(self) -> bytes:
        """The wire form (§7.1)."""
        head = f"{self.method} {self.uri} {SIP_VERSION}\r\n{self.header_block()}\r\n"
        return head.encode("utf-8", "surrogateescape") + self.body

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"


class Response(Message):
    """A SIP response."""

    __slots__ = ("reason", "status")

    def __init__(
        self, status: int, reason: str, headers: Headers | None = None, body: bytes = b""
    ) -> None:
        super().__init__(headers, body)
        self.status = status
        self.reason = reason

    def encode(self) -> bytes:
        """The wire form (§7.2)."""
        head = f"{SIP_VERSION} {self.status} {self.reason}\r\n{self.header_block()}\r\n"
        return head.encode("utf-8", "surrogateescape") + self.body

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    """Head and body, separated by the first empty line (CRLF CRLF; bare LF tolerated)."""
    index = data.find(_CRLF2)
    if index >= 0:
        return data[:index], data[index + 4 :]
    index = data.find(b"\n\n")
    if index >= 0:
        return data[:index], data[index + 2 :]
    return data, b""


def _unfold(head: str, limits: Limits) -> tuple[str, list[tuple[str, str]]]:
    """Start line and (name, value) pairs with folded lines joined (§7.3.1)."""
    lines = head.replace("\r\n", "\n").split("\n")
    if len(lines) > limits.max_headers + 1:
        raise ParseError(f"more than {limits.max_headers} header lines")
    start = lines[0]
    fields: list[tuple[str, str]] = []
    for line in lines[1:]:
        if len(line) > limits.max_line:
            raise ParseError(f"a header line is longer than {limits.max_line} characters")
        if line[:1] in (" ", "\t"):
            if not fields:
                raise ParseError("continuation line before any header")
            name, value = fields[-1]
            fields[-1] = (name, f"{value} {line.strip()}".strip())
            continue
        if not line:
            continue
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not is_token(name):
            raise ParseError(f"malformed header line {line[:40]!r}")
        fields.append((name, value.strip(" \t")))
    return start, fields


def parse_message(
    data: bytes, *, limits: Limits = DEFAULT_LIMITS, stream: bool = False
) -> Request | Response:
    """Parse one whole message; ``stream`` means the body was cut by Content-Length."""
    if len(data) > limits.max_size:
        raise ParseError(f"message of {len(data)} bytes exceeds {limits.max_size}", status=513)
    data = data.lstrip(b"\r\n")  # §7.5: CRLFs before the start line are ignored
    raw_head, body = _split_head(data)
    head = raw_head.decode("utf-8", "surrogateescape")
    start, fields = _unfold(head, limits)
    if len(start) > limits.max_line:
        raise ParseError("start line too long")
    headers = Headers(fields)
    message: Request | Response
    if start.startswith("SIP/"):
        match = _STATUS_LINE.match(start)
        if not match:
            raise ParseError(f"malformed status line {start[:60]!r}")
        if (match.group(1), match.group(2)) != ("2", "0"):
            raise ParseError("unsupported SIP version")
        status = int(match.group(3))
        if not 100 <= status <= 699:
            raise ParseError(f"status code {status} out of range")
        message = Response(status, match.group(4), headers)
    else:
        message = _request_line(start, headers)
    _frame_body(message, body, stream)
    return message


def _request_line(start: str, headers: Headers) -> Request:
    """``Method SP Request-URI SP SIP-Version`` with exactly single spaces (§25.1)."""
    parts = start.split(" ")
    if len(parts) != 3 or not all(parts):
        raise ParseError(f"malformed request line {start[:60]!r}", _answerable(start, headers))
    method, raw_uri, version = parts
    if not is_token(method):
        raise ParseError(f"bad method {method[:20]!r}")
    version_match = _VERSION.match(version)
    if not version_match:
        raise ParseError(f"bad SIP version {version[:20]!r}")
    try:
        uri = parse_uri(raw_uri)
    except SipSyntaxError as exc:
        raise ParseError(
            f"bad Request-URI: {exc}", Request(method, AbsoluteUri(raw_uri), headers)
        ) from None
    request = Request(method, uri, headers)
    if (version_match.group(1), version_match.group(2)) != ("2", "0"):
        raise ParseError("SIP version not supported", head=request, status=505)
    return request


def _answerable(start: str, headers: Headers) -> Request | None:
    """A head to answer a request whose request line is malformed but whose method and
    version are recognisable (RFC 4475 §3.1.2.8-10 ask for 400)."""
    words = start.split()
    if len(words) >= 3 and is_token(words[0]) and _VERSION.match(words[-1]):
        return Request(words[0], AbsoluteUri(" ".join(words[1:-1])), headers)
    return None


def _frame_body(message: Request | Response, body: bytes, stream: bool) -> None:
    """Apply Content-Length (§18.3, §20.14): truncate extra datagram bytes, reject short ones."""
    head = message if isinstance(message, Request) else None
    lengths = message.headers.lines("Content-Length")
    if len(lengths) > 1 and len(set(v.strip() for v in lengths)) > 1:
        raise ParseError("conflicting Content-Length values", head=head)
    try:
        length = parse_int(lengths[0] if lengths else None, maximum=2**31, what="Content-Length")
    except SipSyntaxError as exc:
        raise ParseError(str(exc), head=head) from None
    if length is None:
        if stream:
            raise ParseError("Content-Length is required on stream transports", head=head)
        message.body = body
        return
    if length > len(body):
        raise ParseError(
            f"Content-Length {length} is larger than the {len(body)} body bytes received",
            head=head,
        )
    message.body = body[:length]


def make_response(
    request: Request, status: int, reason: str, to_tag: str | None = None
) -> Response:
    """A response to ``request`` per RFC 3261 §8.2.6.2: Via, From, To, Call-ID, CSeq copied."""
    headers = Headers()
    for value in request.headers.lines("Via"):
        headers.add("Via", value)
    for name in ("From", "Call-ID", "CSeq"):
        copied = request.headers.get(name)
        if copied is not None:
            headers.add(name, copied)
    to_value = request.headers.get("To")
    if to_value is not None:
        if to_tag is not None and status > 100:
            try:
                to = request.to
            except SipSyntaxError:
                to = None
            if to is not None and to.tag is None:
                to_value = str(to.with_tag(to_tag))
        headers.add("To", to_value)
    if status == 100:
        timestamp = request.headers.get("Timestamp")
        if timestamp is not None:  # §8.2.6.1
            headers.add("Timestamp", timestamp)
    return Response(status, reason, headers)
