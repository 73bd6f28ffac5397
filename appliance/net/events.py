"""Network events raised to the service: links, addresses, DHCP leases, applied changes.

Consumers (the SIP layer re-registers, the WebRTC layer refreshes its ICE host candidates)
subscribe through :meth:`appliance.net.monitor.NetworkMonitor.subscribe`. Events are small
frozen dataclasses; ``at`` is the monotonic time the monitor saw the change (not compared).
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field


def _now() -> float:
    return time.monotonic()


@dataclass(frozen=True)
class LinkAdded:
    """A network interface appeared."""

    interface: str
    at: float = field(default_factory=_now, compare=False)

    def describe(self) -> str:
        """One log line."""
        return f"{self.interface} appeared"


@dataclass(frozen=True)
class LinkRemoved:
    """A network interface went away."""

    interface: str
    at: float = field(default_factory=_now, compare=False)

    def describe(self) -> str:
        """One log line."""
        return f"{self.interface} went away"


@dataclass(frozen=True)
class AdminStateChanged:
    """A link was set up or down (``IFF_UP``)."""

    interface: str
    up: bool
    at: float = field(default_factory=_now, compare=False)

    def describe(self) -> str:
        """One log line."""
        return f"{self.interface} set {'up' if self.up else 'down'}"


@dataclass(frozen=True)
class CarrierChanged:
    """The lower layer came up or went down (``IFF_LOWER_UP``: cable, switch port, peer)."""

    interface: str
    carrier: bool
    at: float = field(default_factory=_now, compare=False)

    def describe(self) -> str:
        """One log line."""
        return f"{self.interface} {'has carrier' if self.carrier else 'lost carrier'}"


@dataclass(frozen=True)
class AddressAdded:
    """An address was added to an interface."""

    interface: str
    address: str
    at: float = field(default_factory=_now, compare=False)

    def describe(self) -> str:
        """One log line."""
        return f"{self.address} added to {self.interface}"


@dataclass(frozen=True)
class AddressRemoved:
    """An address was removed from an interface."""

    interface: str
    address: str
    at: float = field(default_factory=_now, compare=False)

    def describe(self) -> str:
        """One log line."""
        return f"{self.address} removed from {self.interface}"


@dataclass(frozen=True)
class DhcpChanged:
    """The helper reported a DHCP lease bound, renewed, rebound, expired or released."""

    interface: str
    state: str
    address: str = ""
    seconds_left: float | None = None
    at: float = field(default_factory=_now, compare=False)

    def describe(self) -> str:
        """One log line."""
        left = f", {self.seconds_left:.0f} s left" if self.seconds_left is not None else ""
        return f"DHCP lease on {self.interface} {self.state} ({self.address or 'no address'}{left})"


@dataclass(frozen=True)
class NetworkChanged:
    """The helper applied, confirmed or rolled back a configuration."""

    what: str
    at: float = field(default_factory=_now, compare=False)

    def describe(self) -> str:
        """One log line."""
        return f"network configuration {self.what}"


NetEvent = (
    LinkAdded
    | LinkRemoved
    | AdminStateChanged
    | CarrierChanged
    | AddressAdded
    | AddressRemoved
    | DhcpChanged
    | NetworkChanged
)


def changes_reachability(event: NetEvent) -> bool:
    """Whether peers may now reach the box at other addresses, or again after an outage.

    True for a global address added or removed (link-local and loopback ones follow links
    and never reach a registrar or a browser: RFC 4291 §2.5.6, RFC 3927) and for carrier
    regained. A DHCP renewal that keeps its address changes nothing; a new lease shows as
    an address added.
    """
    if isinstance(event, AddressAdded | AddressRemoved):
        try:
            ip = ipaddress.ip_interface(event.address).ip
        except ValueError:
            return False
        return not (ip.is_link_local or ip.is_loopback)
    return isinstance(event, CarrierChanged) and event.carrier
