"""Desired state from the configuration, snapshots, and the JSON forms."""

from __future__ import annotations

from appliance.config.schema import InterfaceConfig, NetworkConfig, RouteConfig
from appliance.net.model import (
    IPV6_DEFAULT_METRIC,
    RTPROT_BOOT,
    RTPROT_DHCP,
    RTPROT_KERNEL,
    RTPROT_STATIC,
    Address,
    Link,
    LinkSpec,
    NetState,
    Route,
    VlanSpec,
    desired_from_config,
    desired_from_snapshot,
)


def test_desired_from_config_normalises() -> None:
    network = NetworkConfig(
        manage=True,
        interfaces=[
            InterfaceConfig(name="eth0", addresses=["192.0.2.10/24", "2001:DB8::0010/64"]),
            InterfaceConfig(name="eth0.20", vlan_id=20, parent="eth0", mtu=1400),
            InterfaceConfig(name="eth1", enabled=False, dhcp=False),
        ],
        routes=[
            RouteConfig(destination="default", gateway="2001:db8::1"),
            RouteConfig(destination="198.51.100.0/24", gateway="192.0.2.1", metric=7),
            RouteConfig(destination="default", gateway="203.0.113.1"),
        ],
    )
    desired = desired_from_config(network)
    assert desired.links == (
        LinkSpec("eth0", addresses=("192.0.2.10/24", "2001:db8::10/64")),
        LinkSpec("eth0.20", mtu=1400, vlan=VlanSpec("eth0", 20)),
        LinkSpec("eth1", up=False),
    )
    assert desired.routes == (
        Route("::/0", "2001:db8::1", "eth0", IPV6_DEFAULT_METRIC, RTPROT_STATIC),
        Route("198.51.100.0/24", "192.0.2.1", "eth0", 7, RTPROT_STATIC),
        Route("0.0.0.0/0", "203.0.113.1", "", 0, RTPROT_STATIC),
    )
    assert desired.scope == {"eth0", "eth0.20", "eth1"}


STATE = NetState(
    links=(
        Link("lo", up=True, mtu=65536, index=1),
        Link("eth0", kind="veth", up=True, carrier=True, mac="02:00:00:00:00:01", index=2),
        Link("eth0.20", kind="vlan", up=True, mtu=1400, parent="eth0", vlan_id=20, index=3),
        Link("eth1", kind="veth", index=4),
    ),
    addresses=(
        Address("lo", "127.0.0.1/8"),
        Address("eth0", "192.0.2.10/24"),
        Address("eth0", "192.0.2.11/24", secondary=True),
        Address("eth0", "192.0.2.99/24", permanent=False, secondary=True, valid_lft=60),
        Address("eth0", "fe80::1/64"),
        Address("eth0.20", "10.20.0.1/24"),
        Address("eth1", "203.0.113.5/24"),
    ),
    routes=(
        Route("0.0.0.0/0", "192.0.2.1", "eth0", 0, RTPROT_STATIC),
        Route("10.0.0.0/8", "192.0.2.1", "eth0", 0, RTPROT_BOOT),
        Route("0.0.0.0/0", "192.0.2.254", "eth0", 1024, RTPROT_DHCP),
        Route("192.0.2.0/24", "", "eth0", 0, RTPROT_KERNEL, "192.0.2.10"),
        Route("10.1.0.0/16", "203.0.113.1", "eth1", 0, RTPROT_STATIC),
    ),
)


def test_json_round_trip() -> None:
    assert NetState.from_json(STATE.to_json()) == STATE


def test_managed_view_keeps_only_what_a_config_owns() -> None:
    managed = STATE.managed(["eth0", "eth0.20", "lo"])
    assert [link.name for link in managed.links] == ["eth0", "eth0.20"]
    assert [a.cidr for a in managed.addresses] == ["192.0.2.10/24", "192.0.2.11/24", "10.20.0.1/24"]
    assert [(r.destination, r.protocol) for r in managed.routes] == [
        ("0.0.0.0/0", RTPROT_STATIC),
        ("10.0.0.0/8", RTPROT_BOOT),
    ]


def test_desired_from_snapshot_restores_what_was_there_and_removes_the_rest() -> None:
    snapshot = STATE.managed(["eth0", "eth0.20"])
    desired = desired_from_snapshot(snapshot, ["eth0", "eth0.20", "eth0.30"])
    assert desired.links == (
        LinkSpec("eth0", up=True, mtu=1500, addresses=("192.0.2.10/24", "192.0.2.11/24")),
        LinkSpec(
            "eth0.20", up=True, mtu=1400, vlan=VlanSpec("eth0", 20), addresses=("10.20.0.1/24",)
        ),
        LinkSpec("eth0.30", present=False),
    )
    assert desired.routes == snapshot.routes
    assert desired.scope == {"eth0", "eth0.20", "eth0.30"}


def test_comparable_ignores_carrier_and_index() -> None:
    moved = NetState(
        links=tuple(
            Link(**{**link.__dict__, "carrier": False, "index": 99}) for link in STATE.links
        ),
        addresses=STATE.addresses,
        routes=STATE.routes,
    )
    assert moved.comparable() == STATE.comparable()
    down = NetState(
        links=tuple(Link(**{**link.__dict__, "up": False}) for link in STATE.links),
        addresses=STATE.addresses,
        routes=STATE.routes,
    )
    assert down.comparable() != STATE.comparable()
