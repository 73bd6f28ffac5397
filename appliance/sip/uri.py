"""SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966).

A URI keeps its parts separately; ``str()`` gives the wire form. Escaped characters
stay escaped as received (they are compared unescaped, §19.1.4), so a URI that is
parsed and printed again is unchanged.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field, replace
from urllib.parse import unquote

from appliance.sip.grammar import SipSyntaxError

_HOSTNAME = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)*[A-Za-z](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.?$"
)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"^{_OCTET}(?:\.{_OCTET}){{3}}$")
# RFC 3261 §25.1 user part: unreserved / escaped / user-unreserved.
_USER = re.compile(r"^(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2})+$")
_PASSWORD = re.compile(r"^(?:[A-Za-z0-9\-_.!~*'()&=+$,]|%[0-9A-Fa-f]{2})*$")
_PARAM = re.compile(r"^(?:[A-Za-z0-9\-_.!~*'()\[\]/:&+$]|%[0-9A-Fa-f]{2})+$")
_HEADER = re.compile(r"^(?:[A-Za-z0-9\-_.!~*'()\[\]/?:+$]|%[0-9A-Fa-f]{2})*$")


def valid_host(host: str) -> bool:
    """A hostname, an IPv4 address or a bracketed IPv6 reference (RFC 3261 §25.1)."""
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return True
    if _IPV4.match(host):
        return True
    if host[:1].isdigit() and host.replace(".", "").isdigit():
        return False  # all digits but not a valid IPv4 address
    return bool(_HOSTNAME.match(host)) and len(host) <= 255


@dataclass(frozen=True)
class SipUri:
    """A ``sip:`` or ``sips:`` URI."""

    scheme: str
    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: str = ""

    @classmethod
    def parse(cls, text: str) -> SipUri:
        """Parse ``sip:user:password@host:port;params?headers`` (RFC 3261 §19.1.1)."""
        scheme, sep, rest = text.partition(":")
        scheme = scheme.lower()
        if not sep or scheme not in ("sip", "sips"):
            raise SipSyntaxError(f"not a SIP URI: {text!r}")
        if any(c in rest for c in ' \t\r\n<>"'):
            raise SipSyntaxError(f"white space or delimiter inside a URI: {text!r}")
        user = password = None
        if "@" in rest:
            userinfo, _, rest = rest.partition("@")
            user, colon, pw = userinfo.partition(":")
            password = pw if colon else None
            if not _USER.match(user) or (password is not None and not _PASSWORD.match(password)):
                raise SipSyntaxError(f"bad user part in {text!r}")
        rest, qmark, headers = rest.partition("?")
        if qmark and not _HEADER.match(headers.replace("&", "").replace("=", "")):
            raise SipSyntaxError(f"bad headers in {text!r}")
        hostport, *raw_params = rest.split(";")
        host, port = _split_hostport(hostport, text)
        params: dict[str, str | None] = {}
        for raw in raw_params:
            name, eq, value = raw.partition("=")
            if not name or not _PARAM.match(name) or (eq and not _PARAM.match(value)):
                raise SipSyntaxError(f"bad URI parameter {raw!r} in {text!r}")
            params[name.lower()] = value if eq else None
        return cls(scheme, host, user, password, port, params, headers)

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out += [":", self.password]
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out += [":", str(self.port)]
        for name, value in self.params.items():
            out += [";", name] if value is None else [";", name, "=", value]
        if self.headers:
            out += ["?", self.headers]
        return "".join(out)

    @property
    def transport(self) -> str:
        """The transport this URI asks for: ``tls`` for sips (RFC 3261 §19.1.2), else udp."""
        value = self.params.get("transport")
        if value:
            return value.lower()
        return "tls" if self.scheme == "sips" else "udp"

    @property
    def user_unescaped(self) -> str | None:
        """The user part with %HH escapes decoded."""
        return unquote(self.user) if self.user is not None else None

    def with_params(self, **params: str | None) -> SipUri:
        """A copy with parameters added or replaced."""
        return replace(self, params={**self.params, **params})

    def without_params(self, *names: str) -> SipUri:
        """A copy without the named parameters."""
        return replace(self, params={k: v for k, v in self.params.items() if k not in names})

    def equivalent(self, other: object) -> bool:
        """URI equality of RFC 3261 §19.1.4 (case and escaping rules, special parameters)."""
        if not isinstance(other, SipUri):
            return False
        if self.scheme != other.scheme:
            return False
        if _unescape(self.user) != _unescape(other.user):  # user part is case-sensitive
            return False
        if _unescape(self.password) != _unescape(other.password):
            return False
        if self.host.lower() != other.host.lower() or self.port != other.port:
            return False
        mine = {k: _lower(v) for k, v in self.params.items()}
        theirs = {k: _lower(v) for k, v in other.params.items()}
        for name in ("user", "ttl", "method", "maddr", "transport"):
            if mine.get(name) != theirs.get(name):
                return False
        for name in set(mine) & set(theirs):
            if mine[name] != theirs[name]:
                return False
        return _headers(self.headers) == _headers(other.headers)


def _split_hostport(hostport: str, text: str) -> tuple[str, int | None]:
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise SipSyntaxError(f"unterminated IPv6 reference in {text!r}")
        host, rest = hostport[: end + 1], hostport[end + 1 :]
        if rest and not rest.startswith(":"):
            raise SipSyntaxError(f"bad host in {text!r}")
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_raw = hostport.partition(":")
        port_text = port_text_raw if colon else None
    if not valid_host(host):
        raise SipSyntaxError(f"bad host {host!r} in {text!r}")
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise SipSyntaxError(f"bad port in {text!r}")
    return host, int(port_text)


def _unescape(text: str | None) -> str | None:
    return None if text is None else unquote(text)


def _lower(value: str | None) -> str | None:
    return None if value is None else unquote(value).lower()


def _headers(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in text.split("&") if text else []:
        name, _, value = part.partition("=")
        out[unquote(name).lower()] = unquote(value)
    return out


@dataclass(frozen=True)
class TelUri:
    """A ``tel:`` URI (RFC 3966): a global (+...) or local number with parameters."""

    number: str
    params: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> TelUri:
        """Parse ``tel:+1-201-555-0123;phone-context=...`` (RFC 3966 §3)."""
        scheme, sep, rest = text.partition(":")
        if not sep or scheme.lower() != "tel" or not rest:
            raise SipSyntaxError(f"not a tel URI: {text!r}")
        number, *raw = rest.split(";")
        digits = number[1:] if number.startswith("+") else number
        if not digits or not re.fullmatch(r"[0-9A-Fa-f*#\-.()]+", digits):
            raise SipSyntaxError(f"bad telephone number in {text!r}")
        if not number.startswith("+") and not any(p.startswith("phone-context=") for p in raw):
            raise SipSyntaxError(f"local number without phone-context in {text!r}")
        params: dict[str, str | None] = {}
        for part in raw:
            name, eq, value = part.partition("=")
            params[name.lower()] = value if eq else None
        return cls(number, params)

    @property
    def digits(self) -> str:
        """The number without visual separators (RFC 3966 §5.1.1)."""
        return re.sub(r"[\-.()]", "", self.number)

    def __str__(self) -> str:
        return (
            "tel:"
            + self.number
            + "".join(f";{k}" if v is None else f";{k}={v}" for k, v in self.params.items())
        )


_ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+\-.]*:[^\s<>\"]+$")


@dataclass(frozen=True)
class AbsoluteUri:
    """A URI of another scheme (RFC 3261 §25.1 absoluteURI), kept as text."""

    text: str

    @property
    def scheme(self) -> str:
        """The scheme, lower-cased."""
        return self.text.partition(":")[0].lower()

    def __str__(self) -> str:
        return self.text


Uri = SipUri | TelUri | AbsoluteUri


def parse_uri(text: str, *, strict: bool = False) -> Uri:
    """A sip, sips or tel URI; other schemes as :class:`AbsoluteUri` unless ``strict``."""
    scheme = text.partition(":")[0].lower()
    if scheme in ("sip", "sips"):
        return SipUri.parse(text)
    if scheme == "tel":
        return TelUri.parse(text)
    if strict or not _ABSOLUTE.match(text):
        raise SipSyntaxError(f"unsupported URI {text!r}")
    return AbsoluteUri(text)
