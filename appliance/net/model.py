"""Snapshots of the network (links, addresses, routes) and the desired state from ``[network]``.

Everything here is plain data: no netlink. A :class:`NetState` is what the kernel reports
(read by :mod:`appliance.net.netlink`), serialisable to JSON for ``appliance net show --json``
and for the rollback record. A :class:`Desired` is what the configuration (or a rollback
record) asks for. Which kernel objects are *managed* — and so may be changed or removed — is
decided here once:

* links named by the configuration (never ``lo``, never an unnamed link);
* their permanent, non-link-local addresses (``IFA_F_PERMANENT`` is set on addresses added
  without a lifetime, rtnetlink(7)); addresses with a lifetime belong to DHCP or SLAAC;
* routes in the main table added by an administrator (``RTPROT_BOOT`` from ``ip route add``,
  ``RTPROT_STATIC`` from this appliance) whose output interface is a managed link.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from appliance.config.schema import NetworkConfig

# Route protocols (include/uapi/linux/rtnetlink.h).
RTPROT_KERNEL = 2
RTPROT_BOOT = 3
RTPROT_STATIC = 4
RTPROT_RA = 9
RTPROT_DHCP = 16
ADMIN_PROTOCOLS = frozenset({RTPROT_BOOT, RTPROT_STATIC})
PROTOCOL_NAMES = {
    RTPROT_KERNEL: "kernel",
    RTPROT_BOOT: "boot",
    RTPROT_STATIC: "static",
    RTPROT_RA: "ra",
    RTPROT_DHCP: "dhcp",
}

IPV6_DEFAULT_METRIC = 1024
"""Metric the kernel gives an IPv6 route added with none (IP6_RT_PRIO_USER, ip6_route.h)."""

DHCP_ROUTE_METRIC = 1024
"""Metric of default routes learnt by DHCP, so static default routes (metric 0) win."""

LOOPBACK = "lo"

# Link flags (include/uapi/linux/if.h).
IFF_UP = 0x1
IFF_LOWER_UP = 0x10000


def normalize_interface(cidr: str) -> str:
    """``2001:DB8::0010/64`` → ``2001:db8::10/64``: one spelling for comparisons."""
    return ipaddress.ip_interface(cidr).with_prefixlen


def normalize_destination(destination: str, gateway: str = "") -> str:
    """A route destination as a network; ``default`` takes the gateway's family."""
    if destination == "default":
        family = ipaddress.ip_address(gateway).version if gateway else 4
        return "0.0.0.0/0" if family == 4 else "::/0"
    return ipaddress.ip_network(destination, strict=False).with_prefixlen


def family_of(address: str) -> int:
    """4 or 6 for an address, with or without prefix."""
    return ipaddress.ip_interface(address).version


@dataclass(frozen=True)
class Link:
    """One network interface as the kernel reports it (rtnetlink(7) RTM_NEWLINK)."""

    name: str
    kind: str = ""
    """``IFLA_INFO_KIND``: ``veth``, ``vlan``, ``bridge`` …; empty for a plain device."""
    up: bool = False
    """Administrative state (``IFF_UP``)."""
    carrier: bool = False
    """Lower layer up (``IFF_LOWER_UP``): a cable, or a veth peer that is up."""
    mtu: int = 1500
    parent: str = ""
    """A VLAN's lower device."""
    vlan_id: int = 0
    mac: str = ""
    index: int = 0


@dataclass(frozen=True)
class Address:
    """One address on an interface (rtnetlink(7) RTM_NEWADDR)."""

    interface: str
    cidr: str
    permanent: bool = True
    """No lifetime (``IFA_F_PERMANENT``): added statically."""
    secondary: bool = False
    """IPv4: another address of the same subnet came first (``IFA_F_SECONDARY``)."""
    valid_lft: int | None = None
    """Seconds left, or ``None`` for forever."""

    @property
    def family(self) -> int:
        """4 or 6."""
        return family_of(self.cidr)

    @property
    def managed(self) -> bool:
        """A static, global address: one the configuration owns on a managed link."""
        ip = ipaddress.ip_interface(self.cidr).ip
        return self.permanent and not ip.is_link_local and not ip.is_loopback

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        """The subnet, such as 192.0.2.0/24."""
        return ipaddress.ip_interface(self.cidr).network


@dataclass(frozen=True)
class Route:
    """One route in the main table (rtnetlink(7) RTM_NEWROUTE)."""

    destination: str
    gateway: str = ""
    interface: str = ""
    metric: int = 0
    protocol: int = RTPROT_STATIC
    source: str = ""
    """Preferred source address (``RTA_PREFSRC``), when one was set."""

    @property
    def family(self) -> int:
        """4 or 6."""
        return family_of(self.destination)

    @property
    def key(self) -> tuple[str, int]:
        """What the kernel keys a unicast route by in one table: destination and metric."""
        return (self.destination, self.metric)

    @property
    def admin(self) -> bool:
        """Added by an administrator (``ip route add`` or this appliance)."""
        return self.protocol in ADMIN_PROTOCOLS

    def describe(self) -> str:
        """``default via 192.0.2.1 dev eth0 metric 0``."""
        dest = "default" if self.destination in ("0.0.0.0/0", "::/0") else self.destination
        parts = [dest]
        if self.gateway:
            parts.append(f"via {self.gateway}")
        if self.interface:
            parts.append(f"dev {self.interface}")
        parts.append(f"metric {self.metric}")
        if self.source:
            parts.append(f"src {self.source}")
        return " ".join(parts)


@dataclass(frozen=True)
class NetState:
    """Links, addresses and main-table routes at one moment."""

    links: tuple[Link, ...] = ()
    addresses: tuple[Address, ...] = ()
    routes: tuple[Route, ...] = ()

    def link(self, name: str) -> Link | None:
        """The link called ``name``, if there is one."""
        for link in self.links:
            if link.name == name:
                return link
        return None

    def addresses_of(self, name: str) -> list[Address]:
        """Addresses of one interface, in the kernel's order (IPv4 primaries first)."""
        return [a for a in self.addresses if a.interface == name]

    def managed(self, scope: Iterable[str]) -> NetState:
        """Only what a configuration naming ``scope`` manages: see the module docstring."""
        names = set(scope) - {LOOPBACK}
        return NetState(
            links=tuple(link for link in self.links if link.name in names),
            addresses=tuple(a for a in self.addresses if a.interface in names and a.managed),
            routes=tuple(r for r in self.routes if r.admin and r.interface in names),
        )

    def comparable(self) -> dict[str, Any]:
        """What a restore must reproduce exactly: link settings, addresses, admin routes.

        Carrier and interface indexes are left out: carrier follows the peer, and a VLAN
        deleted and created again gets a new index.
        """
        return {
            "links": sorted(
                (link.name, link.kind, link.up, link.mtu, link.parent, link.vlan_id)
                for link in self.links
            ),
            "addresses": sorted((a.interface, a.cidr, a.secondary) for a in self.addresses),
            "routes": sorted(
                (r.destination, r.gateway, r.interface, r.metric, r.protocol, r.source)
                for r in self.routes
            ),
        }

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dictionary (the rollback record and ``net show --json``)."""
        return {
            "links": [asdict(link) for link in self.links],
            "addresses": [asdict(a) for a in self.addresses],
            "routes": [asdict(r) for r in self.routes],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NetState:
        """Inverse of :meth:`to_json`; raises ``KeyError``/``TypeError`` on a malformed one."""
        return cls(
            links=tuple(Link(**item) for item in data["links"]),
            addresses=tuple(Address(**item) for item in data["addresses"]),
            routes=tuple(Route(**item) for item in data["routes"]),
        )


@dataclass(frozen=True)
class VlanSpec:
    """An 802.1Q sub-interface: its lower device and VLAN id (IEEE 802.1Q §9.6)."""

    parent: str
    vlan_id: int


@dataclass(frozen=True)
class LinkSpec:
    """What one managed link should look like."""

    name: str
    present: bool = True
    """False only when restoring: a VLAN created since the snapshot is deleted."""
    up: bool = True
    mtu: int | None = None
    """``None`` leaves the MTU as it is."""
    vlan: VlanSpec | None = None
    addresses: tuple[str, ...] = ()
    """Static addresses, normalised, in order: the first of each IPv4 subnet is primary."""
    dhcp: bool = False


@dataclass(frozen=True)
class Desired:
    """The desired state of the managed links and their routes."""

    links: tuple[LinkSpec, ...] = ()
    routes: tuple[Route, ...] = ()
    scope: frozenset[str] = field(default_factory=frozenset)
    """Links whose addresses and admin routes are managed (the names in ``links``)."""

    def spec(self, name: str) -> LinkSpec | None:
        """The spec of link ``name``, if managed."""
        for spec in self.links:
            if spec.name == name:
                return spec
        return None


def route_interface(gateway: str, network: NetworkConfig) -> str:
    """The configured interface whose static subnet holds ``gateway`` ("" if none does)."""
    ip = ipaddress.ip_address(gateway)
    for iface in network.interfaces:
        for address in iface.addresses:
            if ip in ipaddress.ip_interface(address).network:
                return iface.name
    return ""


def desired_from_config(network: NetworkConfig) -> Desired:
    """The desired state a validated ``[network]`` section asks for."""
    links = tuple(
        LinkSpec(
            name=iface.name,
            up=iface.enabled,
            mtu=iface.mtu or None,
            vlan=VlanSpec(iface.parent, iface.vlan_id) if iface.vlan_id else None,
            addresses=tuple(normalize_interface(a) for a in iface.addresses),
            dhcp=iface.dhcp,
        )
        for iface in network.interfaces
    )
    routes = []
    for route in network.routes:
        destination = normalize_destination(route.destination, route.gateway)
        metric = route.metric
        if family_of(destination) == 6 and metric == 0:
            metric = IPV6_DEFAULT_METRIC
        routes.append(
            Route(
                destination=destination,
                gateway=str(ipaddress.ip_address(route.gateway)),
                interface=route_interface(route.gateway, network),
                metric=metric,
                protocol=RTPROT_STATIC,
            )
        )
    return Desired(links=links, routes=tuple(routes), scope=frozenset(spec.name for spec in links))


def desired_from_snapshot(snapshot: NetState, scope: Iterable[str]) -> Desired:
    """The desired state that puts the links in ``scope`` back as ``snapshot`` saw them.

    A link in ``scope`` missing from the snapshot did not exist then: it is to be absent.
    """
    names = sorted(set(scope) - {LOOPBACK})
    links = []
    for name in names:
        link = snapshot.link(name)
        if link is None:
            links.append(LinkSpec(name=name, present=False))
            continue
        links.append(
            LinkSpec(
                name=name,
                up=link.up,
                mtu=link.mtu,
                vlan=VlanSpec(link.parent, link.vlan_id) if link.kind == "vlan" else None,
                addresses=tuple(a.cidr for a in snapshot.addresses_of(name) if a.managed),
            )
        )
    routes = tuple(r for r in snapshot.routes if r.admin and r.interface in names)
    return Desired(links=tuple(links), routes=routes, scope=frozenset(names))
