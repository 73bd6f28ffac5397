"""Field metadata for the configuration schema, and value checks shared by its sections.

Every setting is a dataclass field made with :func:`setting`, so the validator, the
README reference and the default-config test all read the same documentation, limits
and checks.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable
from dataclasses import MISSING, Field, field
from pathlib import Path
from typing import Any

Check = Callable[[Any], str | None]
"""A value check: returns ``None`` when the value is acceptable, else what was expected."""


def setting(
    default: Any = MISSING,
    doc: str = "",
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    check: Check | None = None,
    unit: str = "",
    factory: Callable[[], Any] | None = None,
) -> Any:
    """Declare one configuration key with its documentation and limits."""
    metadata = {"doc": doc, "min": minimum, "max": maximum, "check": check, "unit": unit}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    if default is MISSING:
        return field(metadata=metadata)
    return field(default=default, metadata=metadata)


def meta(f: Field[Any]) -> dict[str, Any]:
    """The metadata :func:`setting` stored on a dataclass field."""
    return dict(f.metadata)


def ip_address(value: str) -> str | None:
    """An IPv4 or IPv6 address, without prefix."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return "an IPv4 or IPv6 address"
    return None


def ip_interface(value: str) -> str | None:
    """An address with its prefix length, such as 192.0.2.10/24 or 2001:db8::10/64."""
    if "/" not in value:
        return "an address with a prefix length (for example 192.0.2.10/24)"
    try:
        ipaddress.ip_interface(value)
    except ValueError:
        return "an address with a prefix length (for example 192.0.2.10/24)"
    return None


def ip_network(value: str) -> str | None:
    """A network such as 192.0.2.0/24 or a single address (a /32 or /128)."""
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return "a network such as 192.0.2.0/24"
    return None


def ip_network_or_default(value: str) -> str | None:
    """A destination network (192.0.2.0/24) or the word ``default``."""
    if value == "default":
        return None
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError:
        return 'a network such as 198.51.100.0/24 (host bits zero) or "default"'
    return None


_IFNAME = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")


def interface_name(value: str) -> str | None:
    """A Linux interface name: 1-15 characters, no slash or white space (IFNAMSIZ)."""
    if _IFNAME.match(value) and value not in {".", ".."}:
        return None
    return "an interface name of 1-15 letters, digits, '_', '.', ':' or '-'"


_HOST = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)


def hostname_or_address(value: str) -> str | None:
    """A DNS host name or an IP address (RFC 1123 §2.1 host names)."""
    if ip_address(value) is None or _HOST.match(value):
        return None
    return "a host name or an IP address"


def optional(check: Check) -> Check:
    """Accept the empty string (meaning "not set") or whatever ``check`` accepts."""

    def wrapped(value: Any) -> str | None:
        if value == "":
            return None
        problem = check(value)
        return None if problem is None else f'"" or {problem}'

    wrapped.__doc__ = check.__doc__
    return wrapped


def each(check: Check) -> Check:
    """Apply ``check`` to every element of a list, naming the first bad element."""

    def wrapped(values: list[Any]) -> str | None:
        for index, value in enumerate(values):
            problem = check(value)
            if problem is not None:
                return f"element {index + 1} to be {problem} (found {value!r})"
        return None

    wrapped.__doc__ = check.__doc__
    return wrapped


_SIP_URI = re.compile(r"^sips?:([^@\s;]+@)?[A-Za-z0-9.\-\[\]:]+(:\d{1,5})?(;[^\s]*)?$")


def sip_uri(value: str) -> str | None:
    """A SIP or SIPS URI such as sip:pbx.example.net;transport=tcp (RFC 3261 §19.1)."""
    if _SIP_URI.match(value):
        return None
    return "a SIP URI such as sip:pbx.example.net or sips:pbx.example.net:5061"


_ICE_URL = re.compile(
    r"^(stun|stuns|turn|turns):[A-Za-z0-9.\-\[\]:]+(:\d{1,5})?(\?transport=(udp|tcp))?$"
)


def ice_server_url(value: str) -> str | None:
    """A STUN or TURN server URL (RFC 7064, RFC 7065), such as stun:192.0.2.1:3478."""
    if _ICE_URL.match(value):
        return None
    return "a stun:, stuns:, turn: or turns: URL such as stun:192.0.2.1:3478"


_USER = re.compile(r"^[A-Za-z0-9\-_.!~*'()&=+$,;?/]{1,64}$")


def sip_user(value: str) -> str | None:
    """A SIP user part: unreserved characters and user-unreserved marks (RFC 3261 §25.1)."""
    if _USER.match(value):
        return None
    return "a SIP user name of 1-64 letters, digits or -_.!~*'()&=+$,;?/"


def scrypt_hash(value: str) -> str | None:
    """A password hash made by ``appliance passwd``: scrypt$N$r$p$salt$hash (hex)."""
    parts = value.split("$")
    if (
        len(parts) == 6
        and parts[0] == "scrypt"
        and all(p.isdigit() for p in parts[1:4])
        and all(re.fullmatch(r"[0-9a-f]{16,}", p) for p in parts[4:])
    ):
        return None
    return "an scrypt password hash (scrypt$N$r$p$salt$hash)"


_SERIAL = re.compile(r"^/dev/[A-Za-z0-9_/.\-]+$")


def serial_path(value: str) -> str | None:
    """A serial device path under /dev, such as /dev/ttyUSB0 or /dev/serial/by-id/..."""
    if _SERIAL.match(value):
        return None
    return "a device path under /dev such as /dev/ttyUSB0"


def absolute_path(value: str) -> str | None:
    """An absolute path (which need not exist yet)."""
    if Path(value).is_absolute():
        return None
    return "an absolute path"


def readable_file(value: str) -> str | None:
    """An absolute path to a file this process can read."""
    path = Path(value)
    if not path.is_absolute():
        return "an absolute path"
    if not path.is_file():
        return "an existing file"
    if not os.access(value, os.R_OK):
        return "a file this service can read"
    return None
