"""Checks of a valid [network] section against the box, with located messages."""

from __future__ import annotations

from appliance.config.schema import InterfaceConfig, NetworkConfig, RouteConfig
from appliance.net.checks import check, issues
from appliance.net.model import RTPROT_BOOT, RTPROT_DHCP, RTPROT_STATIC, Link, NetState, Route

BOX = NetState(
    links=(
        Link("lo", up=True, index=1),
        Link("eth0", kind="veth", mtu=1500, index=2),
        Link("eth1", kind="veth", mtu=9000, index=3),
        Link("br0", kind="bridge", index=4),
    ),
    routes=(Route("0.0.0.0/0", "203.0.113.1", "eth1", 1024, RTPROT_DHCP),),
)


def test_a_config_that_fits_has_no_problems() -> None:
    network = NetworkConfig(
        manage=True,
        interfaces=[
            InterfaceConfig(name="eth1", addresses=["192.0.2.10/24"]),
            InterfaceConfig(name="eth1.5", vlan_id=5, parent="eth1", mtu=9000),
        ],
        routes=[RouteConfig(destination="default", gateway="192.0.2.1")],
    )
    assert check(network, BOX) == []


def test_problems_name_their_key() -> None:
    network = NetworkConfig(
        manage=True,
        interfaces=[
            InterfaceConfig(name="eth9", addresses=["192.0.2.10/24"]),
            InterfaceConfig(name="br0", vlan_id=7, parent="eth0"),
            InterfaceConfig(name="eth0.7", vlan_id=7, parent="wlan0"),
            InterfaceConfig(name="eth0.8", vlan_id=8, parent="eth0", mtu=9000),
        ],
        routes=[RouteConfig(destination="default", gateway="192.0.2.1", metric=1024)],
    )
    assert check(network, BOX) == [
        ("interfaces.0.name", "expected an interface of this box (eth0, eth1, br0), found 'eth9'"),
        (
            "interfaces.1.name",
            "expected a name for the VLAN, found 'br0', which exists and is a bridge",
        ),
        (
            "interfaces.2.parent",
            "expected an interface of this box (eth0, eth1, br0), found 'wlan0'",
        ),
        ("interfaces.3.mtu", "expected at most the MTU of eth0 (1500), found 9000"),
        (
            "routes.0.destination",
            "expected no other route with this destination and metric 1024, found default via "
            "203.0.113.1 dev eth1 metric 1024 (protocol dhcp), which this configuration does "
            "not manage",
        ),
    ]


def test_admin_routes_on_managed_links_are_not_conflicts() -> None:
    box = NetState(
        links=BOX.links,
        routes=(
            Route("0.0.0.0/0", "192.0.2.9", "eth0", 0, RTPROT_BOOT),
            Route("10.0.0.0/8", "192.0.2.9", "eth0", 0, RTPROT_STATIC),
        ),
    )
    network = NetworkConfig(
        manage=True,
        interfaces=[InterfaceConfig(name="eth0", addresses=["192.0.2.10/24"])],
        routes=[RouteConfig(destination="default", gateway="192.0.2.1")],
    )
    assert check(network, box) == []


def test_issues_carry_file_line_and_table() -> None:
    source = (
        '[network]\nmanage = true\n\n[[network.interfaces]]\nname = "eth0"\n\n'
        '[[network.interfaces]]\nname = "eth9"\n'
    )
    found = issues(
        [("interfaces.1.name", "expected an interface of this box")], file="a.toml", source=source
    )
    assert [str(i) for i in found] == [
        "a.toml:8: [[network.interfaces]] #2 name: expected an interface of this box"
    ]
