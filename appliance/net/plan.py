"""The planner: desired state + actual state → ordered steps, each with its inverse.

Pure: no netlink, no clock. The order avoids the kernel's side effects, and makes the ones it
cannot avoid explicit so that every step's inverse undoes exactly that step:

1. remove routes (those not wanted, and those the kernel would flush later in the plan);
2. remove addresses (IPv4 secondaries before their primary: deleting a primary deletes the
   secondaries of its subnet unless ``promote_secondaries`` is set, ip-sysctl.rst);
3. delete VLANs (restores only);
4. MTU (decreases on upper devices first, increases on lower devices first), so that
5. VLANs are created (lower devices first) with an MTU their lower device already allows;
6. bring links up, 7. add addresses (the first of each IPv4 subnet becomes primary),
8. add routes, 9. take links down.

Kernel behaviour the plan accounts for (checked on Linux 6.x):

* taking a link down flushes its IPv6 addresses (``keep_addr_on_down`` is 0 by default) and
  every route through it, so a link meant to be down has no IPv6 addresses or routes wanted;
* removing the last IPv4 address of a link flushes the IPv4 routes through it, and removing
  an address flushes the routes using it as preferred source;
* IPv4 routes are keyed by destination and metric: a changed gateway is a remove and an add.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from appliance.net.model import (
    LOOPBACK,
    Address,
    Desired,
    Link,
    LinkSpec,
    NetState,
    Route,
    family_of,
)


class PlanError(Exception):
    """The desired state cannot be reached from this actual state (checks should say so)."""


@dataclass(frozen=True)
class Step:
    """One change; :meth:`inverse` is the change that undoes it."""

    op: ClassVar[str] = ""

    def inverse(self) -> Step:
        """The step that undoes this one."""
        raise NotImplementedError

    def describe(self) -> str:
        """One human-readable line."""
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        """``{"op": ..., fields...}``."""
        return {"op": self.op, **asdict(self)}


@dataclass(frozen=True)
class CreateVlan(Step):
    """Create an 802.1Q sub-interface (ip-link(8) ``type vlan``), optionally set MTU and up."""

    op: ClassVar[str] = "create-vlan"
    name: str
    parent: str
    vlan_id: int
    mtu: int | None = None
    up: bool = False

    def inverse(self) -> Step:
        return DeleteLink(self.name, self.parent, self.vlan_id, self.mtu, self.up)

    def describe(self) -> str:
        extra = f", mtu {self.mtu}" if self.mtu else ""
        state = ", up" if self.up else ""
        return f"create VLAN {self.name} (id {self.vlan_id} on {self.parent}{extra}{state})"


@dataclass(frozen=True)
class DeleteLink(Step):
    """Delete a VLAN sub-interface; the fields are what re-creating it needs."""

    op: ClassVar[str] = "delete-link"
    name: str
    parent: str
    vlan_id: int
    mtu: int | None = None
    up: bool = False

    def inverse(self) -> Step:
        return CreateVlan(self.name, self.parent, self.vlan_id, self.mtu, self.up)

    def describe(self) -> str:
        return f"delete VLAN {self.name} (id {self.vlan_id} on {self.parent})"


@dataclass(frozen=True)
class SetMtu(Step):
    """Change a link's MTU."""

    op: ClassVar[str] = "set-mtu"
    interface: str
    mtu: int
    previous: int

    def inverse(self) -> Step:
        return SetMtu(self.interface, self.previous, self.mtu)

    def describe(self) -> str:
        return f"set MTU of {self.interface} to {self.mtu} (was {self.previous})"


@dataclass(frozen=True)
class SetUp(Step):
    """Set a link's administrative state."""

    op: ClassVar[str] = "set-up"
    interface: str
    up: bool

    def inverse(self) -> Step:
        return SetUp(self.interface, not self.up)

    def describe(self) -> str:
        return f"bring {self.interface} up" if self.up else f"take {self.interface} down"


@dataclass(frozen=True)
class AddAddress(Step):
    """Add a static address."""

    op: ClassVar[str] = "add-address"
    interface: str
    cidr: str

    def inverse(self) -> Step:
        return DelAddress(self.interface, self.cidr)

    def describe(self) -> str:
        return f"add address {self.cidr} to {self.interface}"


@dataclass(frozen=True)
class DelAddress(Step):
    """Remove a static address."""

    op: ClassVar[str] = "remove-address"
    interface: str
    cidr: str

    def inverse(self) -> Step:
        return AddAddress(self.interface, self.cidr)

    def describe(self) -> str:
        return f"remove address {self.cidr} from {self.interface}"


@dataclass(frozen=True)
class AddRoute(Step):
    """Add a route to the main table."""

    op: ClassVar[str] = "add-route"
    route: Route

    def inverse(self) -> Step:
        return DelRoute(self.route)

    def describe(self) -> str:
        return f"add route {self.route.describe()}"


@dataclass(frozen=True)
class DelRoute(Step):
    """Remove a route from the main table."""

    op: ClassVar[str] = "remove-route"
    route: Route

    def inverse(self) -> Step:
        return AddRoute(self.route)

    def describe(self) -> str:
        return f"remove route {self.route.describe()}"


STEP_TYPES: dict[str, type[Step]] = {
    cls.op: cls
    for cls in (CreateVlan, DeleteLink, SetMtu, SetUp, AddAddress, DelAddress, AddRoute, DelRoute)
}


def step_from_json(data: Mapping[str, Any]) -> Step:
    """Inverse of :meth:`Step.to_json`; raises ``KeyError``/``TypeError`` when malformed."""
    fields = dict(data)
    cls = STEP_TYPES[fields.pop("op")]
    if "route" in fields:
        fields["route"] = Route(**fields["route"])
    return cls(**fields)


@dataclass(frozen=True)
class Plan:
    """Steps to run in order, and routes left for later."""

    steps: tuple[Step, ...]
    deferred: tuple[Route, ...] = ()
    """Routes whose gateway is in no subnet yet (a DHCP lease will bring it)."""

    def __bool__(self) -> bool:
        return bool(self.steps)


def _depths(desired: Desired, actual: NetState) -> dict[str, int]:
    """VLAN nesting depth of every link (0 for a plain device), from the desired topology."""
    parents: dict[str, str] = {link.name: link.parent for link in actual.links}
    for spec in desired.links:
        if spec.present:
            parents[spec.name] = spec.vlan.parent if spec.vlan else parents.get(spec.name, "")

    def depth(name: str, seen: frozenset[str] = frozenset()) -> int:
        parent = parents.get(name, "")
        if not parent or name in seen:
            return 0
        return 1 + depth(parent, seen | {name})

    return {name: depth(name) for name in set(parents) | {s.name for s in desired.links}}


def _address_changes(have: list[Address], wanted: list[str]) -> tuple[list[Address], list[str]]:
    """Removals (safe order) and additions (wanted order) that turn ``have`` into ``wanted``.

    The first wanted address of each IPv4 subnet must end up primary: when the current
    primary is to go, or is not that address, the whole subnet is removed and re-added.
    """
    wanted_set = set(wanted)
    remove = {a.cidr for a in have if a.cidr not in wanted_set}
    by_subnet: dict[Any, list[Address]] = {}
    for address in have:
        if address.family == 4:
            by_subnet.setdefault(address.network, []).append(address)
    for subnet, members in by_subnet.items():
        primary = next((a for a in members if not a.secondary), None)
        in_subnet = [
            c for c in wanted if family_of(c) == 4 and ipaddress.ip_interface(c).network == subnet
        ]
        first = in_subnet[0] if in_subnet else None
        if primary is not None and (
            primary.cidr in remove or (first is not None and first != primary.cidr)
        ):
            remove |= {a.cidr for a in members}
    doomed = [a for a in have if a.cidr in remove]
    ordered = [a for a in reversed(doomed) if a.secondary] + [
        a for a in reversed(doomed) if not a.secondary
    ]
    kept = {a.cidr for a in have} - remove
    return ordered, [c for c in wanted if c not in kept]


def _same_route(want: Route, have: Route) -> bool:
    """``have`` satisfies ``want`` (an unset interface in ``want`` matches any)."""
    return (
        want.key == have.key
        and want.gateway == have.gateway
        and want.source == have.source
        and (not want.interface or want.interface == have.interface)
    )


def _reachable(route: Route, networks: Iterable[tuple[str, Any]]) -> bool:
    """The gateway lies in a subnet that will be on an up link (or needs none)."""
    if not route.gateway:
        return True
    gateway = ipaddress.ip_address(route.gateway)
    if gateway.is_link_local and route.interface:
        return True
    return any(
        gateway in network and (not route.interface or route.interface == name)
        for name, network in networks
    )


def plan(desired: Desired, actual: NetState) -> Plan:
    """The steps that turn ``actual`` into ``desired`` for the links ``desired`` manages."""
    specs: dict[str, LinkSpec] = {}
    for spec in desired.links:
        if spec.name == LOOPBACK:
            raise PlanError("the loopback interface lo is never managed")
        specs[spec.name] = spec

    deleting: dict[str, Link] = {}
    creating: dict[str, LinkSpec] = {}
    for name, spec in specs.items():
        current = actual.link(name)
        if not spec.present:
            if current is not None:
                if current.kind != "vlan":
                    raise PlanError(f"{name} is a {current.kind or 'device'}, not a VLAN")
                deleting[name] = current
            continue
        if spec.vlan is not None:
            if current is None:
                creating[name] = spec
            elif current.kind != "vlan":
                raise PlanError(f"{name} exists and is a {current.kind or 'device'}, not a VLAN")
            elif (current.parent, current.vlan_id) != (spec.vlan.parent, spec.vlan.vlan_id):
                deleting[name] = current
                creating[name] = spec
        elif current is None:
            raise PlanError(f"no interface named {name}")

    depth = _depths(desired, actual)
    present = {name: spec for name, spec in specs.items() if spec.present}
    final_up = {name: spec.up for name, spec in present.items()}
    going_down = {
        name
        for name, up in final_up.items()
        if not up and name not in deleting and (link := actual.link(name)) and link.up
    }

    # Addresses.
    remove_addresses: list[Address] = []
    add_addresses: list[tuple[str, str]] = []
    v4_emptied: set[str] = set()
    for name in sorted(specs, key=lambda n: depth.get(n, 0)):
        spec = specs[name]
        kept_link = actual.link(name) is not None and name not in deleting
        have = [a for a in actual.addresses_of(name) if a.managed] if kept_link else []
        if name in deleting:
            gone = [a for a in actual.addresses_of(name) if a.managed]
            remove_addresses += [a for a in reversed(gone) if a.secondary]
            remove_addresses += [a for a in reversed(gone) if not a.secondary]
        if not spec.present:
            continue
        wanted = [c for c in spec.addresses if spec.up or family_of(c) == 4]
        removals, additions = _address_changes(have, wanted)
        remove_addresses += removals
        add_addresses += [(name, cidr) for cidr in additions]
        all_v4 = [a for a in actual.addresses_of(name) if a.family == 4] if kept_link else []
        removed = {a.cidr for a in removals}
        if all_v4 and all(a.cidr in removed for a in all_v4):
            v4_emptied.add(name)
    removed_ips = {str(ipaddress.ip_interface(a.cidr).ip) for a in remove_addresses}

    # Routes.
    flushed = set(deleting) | going_down
    final_networks: list[tuple[str, Any]] = []
    for name, spec in present.items():
        if not spec.up:
            continue
        final_networks += [(name, ipaddress.ip_interface(c).network) for c in spec.addresses]
        if name not in deleting:
            final_networks += [
                (name, a.network) for a in actual.addresses_of(name) if not a.managed
            ]
    for address in actual.addresses:
        if address.interface not in specs and not address.network.is_link_local:
            final_networks.append((address.interface, address.network))

    wanted_routes: list[Route] = []
    deferred: list[Route] = []
    for route in desired.routes:
        if route.interface in final_up and not final_up[route.interface]:
            continue
        if route.interface in specs and not specs[route.interface].present:
            continue
        if _reachable(route, final_networks):
            wanted_routes.append(route)
        else:
            deferred.append(route)

    def doomed(route: Route) -> bool:
        return (
            route.interface in flushed
            or (route.family == 4 and route.interface in v4_emptied)
            or (bool(route.source) and route.source in removed_ips)
        )

    have_routes = [r for r in actual.routes if r.admin and r.interface in desired.scope]
    keep_routes = [
        r for r in have_routes if not doomed(r) and any(_same_route(w, r) for w in wanted_routes)
    ]
    remove_routes = [r for r in have_routes if r not in keep_routes]
    add_routes = [w for w in wanted_routes if not any(_same_route(w, k) for k in keep_routes)]

    # Links.
    steps: list[Step] = [DelRoute(r) for r in reversed(remove_routes)]
    steps += [DelAddress(a.interface, a.cidr) for a in remove_addresses]
    for name in sorted(deleting, key=lambda n: -depth.get(n, 0)):
        link = deleting[name]
        steps.append(DeleteLink(name, link.parent, link.vlan_id, link.mtu, link.up))
    mtu_changes: list[SetMtu] = []
    for name, spec in present.items():
        link = actual.link(name)
        if name not in creating and link is not None and spec.mtu and spec.mtu != link.mtu:
            mtu_changes.append(SetMtu(name, spec.mtu, link.mtu))
    decreases = [s for s in mtu_changes if s.mtu < s.previous]
    increases = [s for s in mtu_changes if s.mtu > s.previous]
    decreases.sort(key=lambda s: -depth.get(s.interface, 0))
    increases.sort(key=lambda s: depth.get(s.interface, 0))
    steps += decreases + increases
    for name in sorted(creating, key=lambda n: depth.get(n, 0)):
        spec = creating[name]
        assert spec.vlan is not None
        steps.append(CreateVlan(name, spec.vlan.parent, spec.vlan.vlan_id, spec.mtu))
    ups = [
        name
        for name, spec in present.items()
        if spec.up and (name in creating or not (link := actual.link(name)) or not link.up)
    ]
    steps += [SetUp(name, True) for name in sorted(ups, key=lambda n: depth.get(n, 0))]
    steps += [AddAddress(name, cidr) for name, cidr in add_addresses]
    steps += [AddRoute(r) for r in add_routes]
    steps += [SetUp(n, False) for n in sorted(going_down, key=lambda n: -depth.get(n, 0))]
    return Plan(tuple(steps), tuple(deferred))


def undo_steps(done: Iterable[Step]) -> list[Step]:
    """The inverses of ``done``, last first."""
    return [step.inverse() for step in reversed(list(done))]
