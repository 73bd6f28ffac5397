"""The netlink adapter: reads :class:`NetState` and runs plan steps with pyroute2.

Thin on purpose: the decisions live in :mod:`appliance.net.plan`. Message fields follow
rtnetlink(7) (``RTM_NEWLINK``/``RTM_NEWADDR``/``RTM_NEWROUTE``).
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError

from appliance.net.model import (
    IFF_LOWER_UP,
    IFF_UP,
    RTPROT_DHCP,
    Address,
    Link,
    NetState,
    Route,
)
from appliance.net.plan import (
    AddAddress,
    AddRoute,
    CreateVlan,
    DelAddress,
    DeleteLink,
    DelRoute,
    SetMtu,
    SetUp,
    Step,
)

log = logging.getLogger(__name__)

IFA_F_SECONDARY = 0x01
IFA_F_PERMANENT = 0x80
RT_TABLE_MAIN = 254
RTN_UNICAST = 1
INFINITY_LIFE_TIME = 0xFFFFFFFF
# RTM_SETLINK with IFLA_AF_SPEC → AF_INET → IFLA_INET_CONF (net/ipv4/devinet.c
# inet_set_link_af); the index is enum IPV4_DEVCONF_* in include/uapi/linux/ip.h.
RTM_SETLINK = 19
NLM_F_REQUEST_ACK = 0x1 | 0x4
NLMSG_ERROR = 2
IFLA_AF_SPEC = 26
IFLA_INET_CONF = 1
IPV4_DEVCONF_PROMOTE_SECONDARIES = 20

# What "already done" looks like when an undo or a restore repeats a step (errno(3)).
_ALREADY = {
    AddAddress: {errno.EEXIST},
    AddRoute: {errno.EEXIST},
    CreateVlan: {errno.EEXIST},
    DelAddress: {errno.EADDRNOTAVAIL, errno.ENOENT, errno.ENODEV},
    DelRoute: {errno.ESRCH, errno.ENOENT, errno.ENODEV},
    DeleteLink: {errno.ENODEV},
}


class StepError(Exception):
    """The kernel refused a step."""

    def __init__(self, step: Step, code: int, reason: str) -> None:
        super().__init__(f"{step.describe()}: {reason}")
        self.step = step
        self.code = code
        self.reason = reason


def _reason(exc: BaseException) -> tuple[int, str]:
    if isinstance(exc, NetlinkError):
        code = int(exc.code)
        text = exc.args[1] if len(exc.args) > 1 else str(exc)
        if code == errno.EOPNOTSUPP:
            text += " (is the kernel's support for this link type missing? VLANs need 8021q)"
        return code, str(text)
    if isinstance(exc, OSError):
        return exc.errno or 0, exc.strerror or str(exc)
    return 0, str(exc)


def _attr(msg: Any, name: str, default: Any = None) -> Any:
    value = msg.get_attr(name)
    return default if value is None else value


def parse_link(msg: Any, names: dict[int, str]) -> Link:
    """A :class:`Link` from an ``RTM_NEWLINK`` message (``names``: index → name)."""
    kind = ""
    vlan_id = 0
    info = msg.get_attr("IFLA_LINKINFO")
    if info is not None:
        kind = info.get_attr("IFLA_INFO_KIND") or ""
        data = info.get_attr("IFLA_INFO_DATA")
        if kind == "vlan" and data is not None:
            vlan_id = int(data.get_attr("IFLA_VLAN_ID") or 0)
    parent = ""
    if kind == "vlan":
        parent = names.get(int(_attr(msg, "IFLA_LINK", 0)), "")
    flags = int(msg["flags"])
    return Link(
        name=str(_attr(msg, "IFLA_IFNAME", "")),
        kind=str(kind),
        up=bool(flags & IFF_UP),
        carrier=bool(flags & IFF_LOWER_UP),
        mtu=int(_attr(msg, "IFLA_MTU", 0)),
        parent=parent,
        vlan_id=vlan_id,
        mac=str(_attr(msg, "IFLA_ADDRESS", "")),
        index=int(msg["index"]),
    )


def parse_address(msg: Any, names: dict[int, str]) -> Address | None:
    """An :class:`Address` from an ``RTM_NEWADDR`` message (``None`` for unknown links)."""
    name = names.get(int(msg["index"]))
    ip = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
    if name is None or ip is None:
        return None
    flags = msg.get_attr("IFA_FLAGS")
    if flags is None:
        flags = msg["flags"]
    cache = msg.get_attr("IFA_CACHEINFO")
    valid: int | None = None
    if cache is not None and int(cache["ifa_valid"]) != INFINITY_LIFE_TIME:
        valid = int(cache["ifa_valid"])
    return Address(
        interface=name,
        cidr=ipaddress.ip_interface(f"{ip}/{msg['prefixlen']}").with_prefixlen,
        permanent=bool(flags & IFA_F_PERMANENT),
        secondary=bool(flags & IFA_F_SECONDARY) and int(msg["family"]) == 2,
        valid_lft=valid,
    )


def parse_route(msg: Any, names: dict[int, str]) -> Route | None:
    """A main-table unicast :class:`Route` from ``RTM_NEWROUTE`` (``None`` for others)."""
    table = msg.get_attr("RTA_TABLE") or msg["table"]
    if int(table) != RT_TABLE_MAIN or int(msg["type"]) != RTN_UNICAST:
        return None
    if msg.get_attr("RTA_MULTIPATH") is not None:
        return None
    family = int(msg["family"])
    dst = msg.get_attr("RTA_DST") or ("0.0.0.0" if family == 2 else "::")  # noqa: S104 - a route
    return Route(
        destination=ipaddress.ip_network(f"{dst}/{msg['dst_len']}", strict=False).with_prefixlen,
        gateway=str(msg.get_attr("RTA_GATEWAY") or ""),
        interface=names.get(int(msg.get_attr("RTA_OIF") or 0), ""),
        metric=int(msg.get_attr("RTA_PRIORITY") or 0),
        protocol=int(msg["proto"]),
        source=str(msg.get_attr("RTA_PREFSRC") or ""),
    )


def _nla(kind: int, payload: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(payload), kind) + payload
    return raw + b"\0" * (-len(raw) % 4)


def set_promote_secondaries(index: int) -> None:
    """Set ``promote_secondaries`` on a link, in this process's namespace.

    Deleting a primary IPv4 address otherwise deletes every secondary of its subnet
    (ip-sysctl.rst). A DHCP address can be primary with static ones behind it; when the
    lease ends, the static addresses must stay. Sent over rtnetlink because the helper's
    sandbox keeps /proc/sys read-only. Raises ``OSError`` with the kernel's errno.
    """
    conf = _nla(IPV4_DEVCONF_PROMOTE_SECONDARIES, struct.pack("=I", 1))
    spec = _nla(IFLA_AF_SPEC, _nla(socket.AF_INET, _nla(IFLA_INET_CONF, conf)))
    body = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, index, 0, 0) + spec
    message = struct.pack("=LHHLL", 16 + len(body), RTM_SETLINK, NLM_F_REQUEST_ACK, 1, 0) + body
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0) as sock:
        sock.settimeout(5)
        sock.bind((0, 0))
        sock.send(message)
        reply = sock.recv(65536)
    kind = struct.unpack_from("=H", reply, 4)[0]
    code = struct.unpack_from("=i", reply, 16)[0] if kind == NLMSG_ERROR else 0
    if code:
        raise OSError(-code, os.strerror(-code))


@dataclass
class ApplyResult:
    """What an execution did: the steps done, the one that failed, and the undo."""

    done: list[Step] = field(default_factory=list)
    failed: Step | None = None
    error: str = ""
    undone: list[Step] = field(default_factory=list)
    undo_errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every step ran."""
        return self.failed is None and not self.undo_errors

    def to_json(self) -> dict[str, Any]:
        """For the helper's answers."""
        return {
            "done": [s.describe() for s in self.done],
            "failed": self.failed.describe() if self.failed else None,
            "error": self.error,
            "undone": [s.describe() for s in self.undone],
            "undo_errors": self.undo_errors,
        }


class Netlink:
    """rtnetlink through pyroute2's ``AsyncIPRoute``, in this or a named namespace."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self._ipr: Any = None

    async def __aenter__(self) -> Netlink:
        self._ipr = AsyncIPRoute(netns=self.netns) if self.netns else AsyncIPRoute()
        await self._ipr.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the netlink socket."""
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None

    @property
    def ipr(self) -> Any:
        """The pyroute2 ``AsyncIPRoute``."""
        if self._ipr is None:
            raise RuntimeError("netlink socket is not open")
        return self._ipr

    async def read_state(self) -> NetState:
        """Every link and address, and the main table's unicast routes."""
        link_msgs = [m async for m in await self.ipr.get_links()]
        names = {int(m["index"]): str(m.get_attr("IFLA_IFNAME")) for m in link_msgs}
        links = tuple(parse_link(m, names) for m in link_msgs)
        addresses = [parse_address(m, names) async for m in await self.ipr.get_addr()]
        routes = [parse_route(m, names) async for m in await self.ipr.get_routes(table=254)]
        return NetState(
            links=links,
            addresses=tuple(a for a in addresses if a is not None),
            routes=tuple(r for r in routes if r is not None),
        )

    async def index(self, name: str) -> int:
        """The index of link ``name``; ``NetlinkError(ENODEV)`` when there is none."""
        found = await self.ipr.link_lookup(ifname=name)
        if not found:
            raise NetlinkError(errno.ENODEV, f"no interface named {name}")
        return int(found[0])

    async def run(self, step: Step) -> None:
        """Carry out one step; raises :class:`StepError` when the kernel refuses it."""
        try:
            await self._run(step)
        except (NetlinkError, OSError) as exc:
            code, reason = _reason(exc)
            raise StepError(step, code, reason) from exc

    async def _run(self, step: Step) -> None:
        ipr = self.ipr
        if isinstance(step, CreateVlan):
            parent = await self.index(step.parent)
            await ipr.link("add", ifname=step.name, kind="vlan", link=parent, vlan_id=step.vlan_id)
            index = await self.index(step.name)
            if step.mtu:
                await ipr.link("set", index=index, mtu=step.mtu)
            if step.up:
                await ipr.link("set", index=index, state="up")
        elif isinstance(step, DeleteLink):
            await ipr.link("del", index=await self.index(step.name))
        elif isinstance(step, SetMtu):
            await ipr.link("set", index=await self.index(step.interface), mtu=step.mtu)
        elif isinstance(step, SetUp):
            state = "up" if step.up else "down"
            await ipr.link("set", index=await self.index(step.interface), state=state)
        elif isinstance(step, AddAddress | DelAddress):
            command = "add" if isinstance(step, AddAddress) else "del"
            iface = ipaddress.ip_interface(step.cidr)
            await ipr.addr(
                command,
                index=await self.index(step.interface),
                address=str(iface.ip),
                prefixlen=iface.network.prefixlen,
            )
        elif isinstance(step, AddRoute | DelRoute):
            command = "add" if isinstance(step, AddRoute) else "del"
            await ipr.route(command, **await self._route_fields(step.route))
        else:  # pragma: no cover - every Step type is handled above
            raise TypeError(f"unknown step {step!r}")

    async def _route_fields(self, route: Route) -> dict[str, Any]:
        network = ipaddress.ip_network(route.destination)
        fields: dict[str, Any] = {
            "family": 2 if network.version == 4 else 10,
            "dst": str(network.network_address),
            "dst_len": network.prefixlen,
            "table": RT_TABLE_MAIN,
            "priority": route.metric,
            "proto": route.protocol,
        }
        if route.gateway:
            fields["gateway"] = route.gateway
        if route.interface:
            fields["oif"] = await self.index(route.interface)
        if route.source:
            fields["prefsrc"] = route.source
        return fields

    async def execute(
        self,
        steps: Iterable[Step],
        *,
        undo_on_failure: bool = True,
        keep_going: bool = False,
        progress: Callable[[Step], None] | None = None,
    ) -> ApplyResult:
        """Run ``steps`` in order, recording each one done.

        On a failure, the steps already done are undone, last first (``undo_on_failure``),
        so a half-failed apply leaves the links as it found them. ``keep_going`` (restores)
        runs every step regardless and treats "already so" answers as success.
        """
        result = ApplyResult()
        for step in steps:
            try:
                if keep_going:
                    await self.run_tolerant(step)
                else:
                    await self.run(step)
            except StepError as exc:
                log.error("network step failed: %s", exc)
                if keep_going:
                    result.undo_errors.append(str(exc))
                    continue
                result.failed = step
                result.error = str(exc)
                break
            result.done.append(step)
            if progress is not None:
                progress(step)
        if result.failed is not None and undo_on_failure:
            for step in reversed(result.done):
                inverse = step.inverse()
                try:
                    await self.run_tolerant(inverse)
                except StepError as exc:
                    log.error("undo step failed: %s", exc)
                    result.undo_errors.append(str(exc))
                    continue
                result.undone.append(inverse)
        return result

    async def run_tolerant(self, step: Step) -> None:
        """Like :meth:`run`, but "already so" (EEXIST on add, ESRCH on delete) is success."""
        try:
            await self.run(step)
        except StepError as exc:
            if exc.code in _ALREADY.get(type(step), set()):
                log.info("%s: already so", step.describe())
                return
            raise

    # DHCP-owned objects: addresses with a lifetime and routes of protocol dhcp.

    async def set_lease_address(self, interface: str, cidr: str, lifetime: int) -> None:
        """Add or refresh an address that the kernel drops by itself after ``lifetime`` s."""
        iface = ipaddress.ip_interface(cidr)
        lifetime = max(1, min(int(lifetime), INFINITY_LIFE_TIME - 1))
        await self.ipr.addr(
            "replace",
            index=await self.index(interface),
            address=str(iface.ip),
            prefixlen=iface.network.prefixlen,
            valid_lft=lifetime,
            preferred_lft=lifetime,
        )

    async def remove_address(self, interface: str, cidr: str) -> None:
        """Remove an address; absent already is fine."""
        try:
            await self.run_tolerant(DelAddress(interface, cidr))
        except StepError as exc:
            if exc.code != errno.ENODEV:
                raise

    async def set_dhcp_route(self, interface: str, gateway: str, metric: int) -> None:
        """Add or replace the default route learnt by DHCP (protocol ``dhcp``)."""
        route = Route("0.0.0.0/0", gateway, interface, metric, RTPROT_DHCP)
        await self.ipr.route("replace", **await self._route_fields(route))

    async def remove_dhcp_route(self, interface: str, gateway: str, metric: int) -> None:
        """Remove the DHCP default route; absent already is fine."""
        route = Route("0.0.0.0/0", gateway, interface, metric, RTPROT_DHCP)
        try:
            await self.run_tolerant(DelRoute(route))
        except StepError as exc:
            if exc.code != errno.ENODEV:
                raise
