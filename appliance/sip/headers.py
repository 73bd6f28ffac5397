"""Header fields: names, compact forms, and the structured values the core reads.

Names are case-insensitive and have compact forms (RFC 3261 §7.3.3, §20); values of
list headers may be comma-separated or repeated (§7.3.1). Structured values parsed
here: name-addr/addr-spec with parameters (§20.10, §25.1), Via (§20.42), CSeq (§20.16).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

from appliance.sip.grammar import (
    TOKEN_CHARS,
    Scanner,
    SipSyntaxError,
    fast_params,
    format_params,
    is_token,
    quote,
    split_commas,
)
from appliance.sip.uri import SipUri, Uri, parse_uri, valid_host

# RFC 3261 §7.3.3 and later registrations (RFC 3265, 3515, 3892, 4028).
COMPACT = {
    "i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length",
    "c": "Content-Type", "f": "From", "s": "Subject", "k": "Supported", "t": "To",
    "v": "Via", "o": "Event", "u": "Allow-Events", "r": "Refer-To", "b": "Referred-By",
    "x": "Session-Expires",
}  # fmt: skip
_KNOWN = [
    "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Allow-Events",
    "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact",
    "Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length",
    "Content-Type", "CSeq", "Date", "Error-Info", "Event", "Expires", "From", "In-Reply-To",
    "Max-Forwards", "Min-Expires", "Min-SE", "MIME-Version", "Organization", "P-Asserted-Identity",
    "Priority", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "Reason",
    "Record-Route", "Refer-To", "Referred-By", "Reply-To", "Require", "Retry-After", "Route",
    "Server", "Session-Expires", "Subject", "Supported", "Timestamp", "To", "Unsupported",
    "User-Agent", "Via", "Warning", "WWW-Authenticate",
]  # fmt: skip
_CANONICAL = {name.lower(): name for name in _KNOWN}
# Headers whose values are comma-separated lists (RFC 3261 §7.3.1, §25.1).
LIST_HEADERS = frozenset(
    name.lower()
    for name in (
        "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Allow-Events",
        "Call-Info", "Contact", "Content-Encoding", "Content-Language", "Error-Info",
        "In-Reply-To", "Proxy-Require", "Record-Route", "Require", "Route", "Supported",
        "Unsupported", "Via", "Warning", "P-Asserted-Identity",
    )
)  # fmt: skip


def canonical_name(name: str) -> str:
    """The long form in its usual spelling; unknown names are kept as given."""
    if len(name) == 1:
        long = COMPACT.get(name.lower())
        if long is not None:
            return long
    return _CANONICAL.get(name.lower(), name)


class Headers:
    """An ordered multi-map of header fields, names matched case-insensitively."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        # (spelling, value, lower-cased long name) per field, in order.
        self._items: list[tuple[str, str, str]] = []
        for name, value in items:
            self.add(name, value)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return ((n, v) for n, v, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = _key(name)
        return any(k == key for _, _, k in self._items)

    def copy(self) -> Headers:
        """An independent copy."""
        out = Headers()
        out._items = list(self._items)
        return out

    def get(self, name: str) -> str | None:
        """The first field's value, or None."""
        key = _key(name)
        for _, v, k in self._items:
            if k == key:
                return v
        return None

    def lines(self, name: str) -> list[str]:
        """Every field's value as received, one per header line."""
        key = _key(name)
        return [v for _, v, k in self._items if k == key]

    def values(self, name: str) -> list[str]:
        """Every value, comma-separated list headers split into elements (§7.3.1)."""
        key = _key(name)
        out: list[str] = []
        for _, v, k in self._items:
            if k != key:
                continue
            if key in LIST_HEADERS:
                out.extend(p for p in split_commas(v) if p)
            else:
                out.append(v)
        return out

    def add(self, name: str, value: str) -> None:
        """Append a field."""
        name = canonical_name(name)
        self._items.append((name, value, name.lower()))

    def prepend(self, name: str, value: str) -> None:
        """Insert a field before every other field of that name (or first of all)."""
        name = canonical_name(name)
        key = name.lower()
        for index, (_, _, k) in enumerate(self._items):
            if k == key:
                self._items.insert(index, (name, value, key))
                return
        self._items.insert(0, (name, value, key))

    def set(self, name: str, value: str) -> None:
        """Replace every field of that name with one (in the first one's place)."""
        name = canonical_name(name)
        key = name.lower()
        out: list[tuple[str, str, str]] = []
        placed = False
        for item in self._items:
            if item[2] == key:
                if not placed:
                    out.append((name, value, key))
                    placed = True
            else:
                out.append(item)
        if not placed:
            out.append((name, value, key))
        self._items = out

    def remove(self, name: str) -> None:
        """Drop every field of that name."""
        key = _key(name)
        self._items = [item for item in self._items if item[2] != key]


def _key(name: str) -> str:
    return canonical_name(name).lower()


# Fast paths for the common, tidy shapes; anything else goes through the Scanner.
_NAME_ADDR = re.compile(r'^(?:"([^"\\]*)"[ \t]*|([^"<]*))<([^<>\s]+)>((?:;[^;]*)*)$')
_VIA = re.compile(r"^SIP/2\.0/([A-Za-z]+) ([^;\s]+)((?:;[^;\s]*)*)$", re.IGNORECASE)


@dataclass(frozen=True)
class NameAddr:
    """``[display-name] <URI> *(;param)`` or an addr-spec with parameters (§20.10)."""

    uri: Uri
    display_name: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        """Parse a From/To/Contact/Route-style value (RFC 3261 §25.1)."""
        fast = _NAME_ADDR.match(text)
        if fast is not None:
            params = fast_params(fast.group(4))
            if params is not None:
                quoted, plain, uri = fast.group(1), fast.group(2), fast.group(3)
                name = quoted if quoted is not None else (" ".join(plain.split()) or None)
                if name is None or quoted is not None or all(is_token(w) for w in name.split()):
                    return cls(parse_uri(uri), name, params)
        scan = Scanner(text)
        display: str | None = None
        if scan.peek() == '"':
            display = scan.quoted()
            scan.skip_ws()
            if scan.peek() != "<":
                raise SipSyntaxError("expected '<' after the display name")
        elif "<" in text:
            raw = scan.until("<")
            if raw:
                # *(token LWS): tokens separated by white space only.
                if not all(is_token(word) for word in raw.split()):
                    raise SipSyntaxError(f"bad display name {raw!r}")
                display = " ".join(raw.split())
        if scan.accept("<"):
            start = scan.pos
            end = text.find(">", start)
            if end < 0:
                raise SipSyntaxError("missing '>'")
            uri = parse_uri(text[start:end])
            scan.pos = end + 1
        else:
            raw_uri = scan.until(";")
            if not raw_uri or any(c in raw_uri for c in ",?"):
                raise SipSyntaxError(f"bad address {raw_uri!r}")
            uri = parse_uri(raw_uri)
        params = scan.params()
        if not scan.at_end():
            raise SipSyntaxError(f"unexpected {text[scan.pos :]!r}")
        return cls(uri, display, params)

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter (From/To, §19.3)."""
        return self.params.get("tag")

    def with_tag(self, tag: str) -> NameAddr:
        """A copy carrying ``tag``."""
        return replace(self, params={**self.params, "tag": tag})

    def __str__(self) -> str:
        out = ""
        if self.display_name:
            name = self.display_name
            words = name.split(" ")
            out = (name if all(is_token(w) for w in words) else quote(name)) + " "
        return f"{out}<{self.uri}>{format_params(self.params)}"


def parse_contacts(value_list: list[str]) -> list[NameAddr] | None:
    """Contact values; ``None`` for the wildcard ``*`` (§10.2.2)."""
    if [v.strip() for v in value_list] == ["*"]:
        return None
    return [NameAddr.parse(v) for v in value_list]


@dataclass(frozen=True)
class Via:
    """One Via value: ``SIP/2.0/transport sent-by *(;param)`` (RFC 3261 §20.42)."""

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Via:
        """Parse one Via element (LWS is allowed around '/' and ';', see RFC 4475 §3.1.1.1)."""
        fast = _VIA.match(text)
        if fast is not None:
            params = fast_params(fast.group(3))
            if params is not None and params.get("branch", "x"):
                host, port = _host_port(fast.group(2))
                return cls(fast.group(1).upper(), host, port, params)
        scan = Scanner(text)
        if scan.token().upper() != "SIP":
            raise SipSyntaxError("Via protocol must be SIP")
        scan.expect("/")
        if scan.token() != "2.0":
            raise SipSyntaxError("Via version must be 2.0")
        scan.expect("/")
        transport = scan.token().upper()
        scan.skip_ws()
        sent_by = scan.until(";")
        host, port = _host_port(sent_by)
        params = scan.params()
        if not scan.at_end():
            raise SipSyntaxError(f"unexpected {text[scan.pos :]!r} in Via")
        branch = params.get("branch", "x")
        if branch is None or branch == "":
            raise SipSyntaxError("empty branch parameter")
        return cls(transport, host, port, params)

    @property
    def branch(self) -> str | None:
        """The branch parameter (§8.1.1.7)."""
        return self.params.get("branch")

    @property
    def sent_by(self) -> tuple[str, int | None]:
        """Host and port the sender put in the Via."""
        return self.host, self.port

    def with_params(self, **params: str | None) -> Via:
        """A copy with parameters added or replaced."""
        return replace(self, params={**self.params, **params})

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"SIP/2.0/{self.transport} {self.host}{port}{format_params(self.params)}"


def _host_port(text: str) -> tuple[str, int | None]:
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        host, rest = text[: end + 1], text[end + 1 :].strip()
    else:
        host, _, rest = text.partition(":")
        host = host.strip()
        rest = (":" + rest) if _ else ""
    if not valid_host(host):
        raise SipSyntaxError(f"bad host {host!r}")
    if not rest:
        return host, None
    port = rest.lstrip(":").strip()
    if not rest.startswith(":") or not port.isdigit() or not 0 < int(port) < 65536:
        raise SipSyntaxError(f"bad port in {text!r}")
    return host, int(port)


@dataclass(frozen=True)
class CSeq:
    """``CSeq: number method`` (RFC 3261 §20.16); the number is below 2**31 (§8.1.1.5)."""

    number: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        """Parse ``1 INVITE``; leading zeros are allowed (RFC 4475 §3.1.1.1)."""
        parts = text.split()
        if len(parts) != 2 or not parts[0].isdigit() or not is_token(parts[1]):
            raise SipSyntaxError(f"bad CSeq {text!r}")
        number = int(parts[0])
        if number >= 2**31:
            raise SipSyntaxError(f"CSeq number {parts[0]} is not below 2**31")
        return cls(number, parts[1])

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


def parse_int(text: str | None, *, maximum: int, what: str) -> int | None:
    """A non-negative decimal integer header (Content-Length, Max-Forwards, Expires)."""
    if text is None:
        return None
    value = text.strip()
    if not value.isdigit() or not value.isascii():
        raise SipSyntaxError(f"bad {what} {text!r}")
    number = int(value)
    if number > maximum:
        raise SipSyntaxError(f"{what} {value} is larger than {maximum}")
    return number


def parse_tokens(values: list[str]) -> list[str]:
    """A list of option tags or methods (Require, Supported, Allow), as given."""
    out = []
    for value in values:
        token = value.strip()
        if not token or not all(c in TOKEN_CHARS for c in token):
            raise SipSyntaxError(f"bad token {value!r}")
        out.append(token)
    return out


def sip_uri_of(address: NameAddr) -> SipUri | None:
    """The address's URI if it is a SIP/SIPS URI."""
    return address.uri if isinstance(address.uri, SipUri) else None
