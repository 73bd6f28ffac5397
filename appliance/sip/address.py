"""Where SIP messages come from and go to: transports, ports, next hops (RFC 3261 §18)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace

from appliance.sip.uri import SipUri

DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061}
TRANSPORTS = ("udp", "tcp", "tls")


@dataclass(frozen=True)
class Peer:
    """A transport address; ``connection`` names a stream connection to reuse, if any."""

    transport: str
    host: str
    port: int
    connection: int | None = None

    def without_connection(self) -> Peer:
        """The same address, any connection."""
        return replace(self, connection=None)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"


def strip_brackets(host: str) -> str:
    """``[2001:db8::1]`` -> ``2001:db8::1``."""
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def bracket(host: str) -> str:
    """An IPv6 address in brackets for URIs and Via (§19.1.1); others unchanged."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def is_ip(host: str) -> bool:
    """Whether ``host`` is an IP literal (bracketed IPv6 allowed)."""
    try:
        ipaddress.ip_address(strip_brackets(host))
    except ValueError:
        return False
    return True


def next_hop(uri: SipUri) -> Peer:
    """Transport, host and port for sending to ``uri`` without DNS SRV (RFC 3263 §4 defaults)."""
    transport = uri.transport
    if transport not in TRANSPORTS:
        transport = "udp"
    host = strip_brackets(uri.params.get("maddr") or uri.host)
    return Peer(transport, host, uri.port or DEFAULT_PORTS[transport])
