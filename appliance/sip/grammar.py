"""Lexical pieces of the SIP grammar (RFC 3261 §25.1): a scanner for header values.

Header values may contain linear white space (LWS) around separators, quoted strings
with backslash escapes, and parameters (``;name=value``). :class:`Scanner` reads them;
:func:`split_commas` splits comma-separated header values without breaking quoted
strings or ``<...>`` URIs.
"""

from __future__ import annotations

import re

# RFC 3261 §25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'"
# / "~")
TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
WSP = " \t"
_TOKEN_RUN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_WS_RUN = re.compile(r"[ \t]*")


class SipSyntaxError(ValueError):
    """A header value or start line does not follow the RFC 3261 grammar."""


def is_token(text: str) -> bool:
    """Whether ``text`` is a non-empty token (RFC 3261 §25.1)."""
    return _TOKEN_RUN.fullmatch(text) is not None


def quote(text: str) -> str:
    """A quoted-string for ``text``, escaping backslash and DQUOTE (RFC 3261 §25.1)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Scanner:
    """Reads one header value left to right."""

    __slots__ = ("pos", "text")

    def __init__(self, text: str, pos: int = 0) -> None:
        self.text = text
        self.pos = pos

    def at_end(self) -> bool:
        """Whether only white space remains."""
        self.skip_ws()
        return self.pos >= len(self.text)

    def skip_ws(self) -> None:
        """Skip spaces and tabs (folding is already undone by the message parser)."""
        match = _WS_RUN.match(self.text, self.pos)
        if match is not None:
            self.pos = match.end()

    def peek(self) -> str:
        """The next character after white space, or '' at the end."""
        self.skip_ws()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def accept(self, char: str) -> bool:
        """Consume ``char`` (after white space) if it is next."""
        if self.peek() == char:
            self.pos += 1
            return True
        return False

    def expect(self, char: str) -> None:
        """Consume ``char`` or fail."""
        if not self.accept(char):
            found = self.text[self.pos : self.pos + 10] or "end of value"
            raise SipSyntaxError(f"expected {char!r} at {found!r}")

    def token(self, chars: frozenset[str] = TOKEN_CHARS) -> str:
        """A non-empty run of ``chars`` (a token by default)."""
        self.skip_ws()
        if chars is TOKEN_CHARS:
            match = _TOKEN_RUN.match(self.text, self.pos)
            if match is None:
                found = self.text[self.pos : self.pos + 10] or "end of value"
                raise SipSyntaxError(f"expected a token at {found!r}")
            self.pos = match.end()
            return match.group()
        text, start = self.text, self.pos
        pos = start
        while pos < len(text) and text[pos] in chars:
            pos += 1
        if pos == start:
            found = text[start : start + 10] or "end of value"
            raise SipSyntaxError(f"expected a token at {found!r}")
        self.pos = pos
        return text[start:pos]

    def quoted(self) -> str:
        """A quoted-string; returns its content with escapes undone (RFC 3261 §25.1)."""
        self.expect('"')
        text = self.text
        out: list[str] = []
        pos = self.pos
        while pos < len(text):
            char = text[pos]
            if char == "\\":
                if pos + 1 >= len(text):
                    break
                out.append(text[pos + 1])
                pos += 2
                continue
            if char == '"':
                self.pos = pos + 1
                return "".join(out)
            out.append(char)
            pos += 1
        raise SipSyntaxError("unterminated quoted string")

    def until(self, stops: str) -> str:
        """Everything up to (not including) one of ``stops`` or the end, stripped."""
        text, start = self.text, self.pos
        pos = start
        while pos < len(text) and text[pos] not in stops:
            pos += 1
        self.pos = pos
        return text[start:pos].strip()

    def params(self) -> dict[str, str | None]:
        """``*( SEMI generic-param )``: names lower-cased, values unquoted (§25.1)."""
        out: dict[str, str | None] = {}
        while self.accept(";"):
            name = self.token().lower()
            value: str | None = None
            if self.accept("="):
                if self.peek() == '"':
                    value = self.quoted()
                else:
                    # gen-value = token / host / quoted-string; a host may be an IPv6 reference.
                    value = self.token(TOKEN_CHARS | frozenset("[]:"))
            out[name] = value
        return out


_PARAM_VALUE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~\[\]:]+")


def fast_params(text: str) -> dict[str, str | None] | None:
    """``;a=b;c`` without quotes or white space, or None to use the full scanner."""
    if '"' in text or " " in text or "\t" in text:
        return None
    out: dict[str, str | None] = {}
    for part in text.split(";")[1:]:
        name, eq, value = part.partition("=")
        if not _TOKEN_RUN.fullmatch(name) or (eq and not _PARAM_VALUE.fullmatch(value)):
            return None
        out[name.lower()] = value if eq else None
    return out


def split_commas(value: str) -> list[str]:
    """Split a comma-separated header value, respecting quotes and ``<...>`` (RFC 3261 §7.3.1)."""
    if "," not in value:
        return [value.strip()]
    parts: list[str] = []
    depth = 0
    quoted = False
    start = 0
    pos = 0
    n = len(value)
    while pos < n:
        char = value[pos]
        if quoted:
            if char == "\\":
                pos += 2
                continue
            if char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char == "<":
            depth += 1
        elif char == ">":
            depth = max(0, depth - 1)
        elif char == "," and depth == 0:
            parts.append(value[start:pos].strip())
            start = pos + 1
        pos += 1
    parts.append(value[start:].strip())
    return parts


def format_params(params: dict[str, str | None]) -> str:
    """``;name=value`` for each parameter, quoting values that are not tokens."""
    out = []
    for name, value in params.items():
        if value is None:
            out.append(f";{name}")
        elif is_token(value) or _is_host(value):
            out.append(f";{name}={value}")
        else:
            out.append(f";{name}={quote(value)}")
    return "".join(out)


def _is_host(value: str) -> bool:
    return value.startswith("[") and value.endswith("]")
