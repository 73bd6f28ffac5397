"""The planner on hand-made states: order, kernel side effects made explicit, inverses."""

from __future__ import annotations

import pytest

from appliance.net.model import (
    RTPROT_BOOT,
    RTPROT_DHCP,
    RTPROT_KERNEL,
    Address,
    Desired,
    Link,
    LinkSpec,
    NetState,
    Route,
    VlanSpec,
)
from appliance.net.plan import (
    AddAddress,
    AddRoute,
    CreateVlan,
    DelAddress,
    DeleteLink,
    DelRoute,
    PlanError,
    SetMtu,
    SetUp,
    Step,
    plan,
    step_from_json,
    undo_steps,
)

ETH0 = Link("eth0", kind="veth", up=True, carrier=True, index=2)
ETH1 = Link("eth1", kind="veth", up=False, index=3)
LO = Link("lo", up=True, mtu=65536, index=1)


def desired(*links: LinkSpec, routes: tuple[Route, ...] = ()) -> Desired:
    return Desired(links=links, routes=routes, scope=frozenset(s.name for s in links))


def state(
    links: tuple[Link, ...] = (LO, ETH0, ETH1),
    addresses: tuple[Address, ...] = (),
    routes: tuple[Route, ...] = (),
) -> NetState:
    return NetState(links, addresses, routes)


def test_nothing_to_do_when_already_so() -> None:
    actual = state(
        addresses=(Address("eth0", "192.0.2.10/24"), Address("eth0", "fe80::1/64")),
        routes=(Route("0.0.0.0/0", "192.0.2.1", "eth0", 0),),
    )
    wanted = desired(
        LinkSpec("eth0", addresses=("192.0.2.10/24",)),
        routes=(Route("0.0.0.0/0", "192.0.2.1", "eth0", 0),),
    )
    assert plan(wanted, actual).steps == ()


def test_order_up_then_addresses_then_routes() -> None:
    wanted = desired(
        LinkSpec("eth1", mtu=9000, addresses=("198.51.100.10/24", "2001:db8::10/64")),
        routes=(Route("0.0.0.0/0", "198.51.100.1", "eth1", 0),),
    )
    assert plan(wanted, state()).steps == (
        SetMtu("eth1", 9000, 1500),
        SetUp("eth1", True),
        AddAddress("eth1", "198.51.100.10/24"),
        AddAddress("eth1", "2001:db8::10/64"),
        AddRoute(Route("0.0.0.0/0", "198.51.100.1", "eth1", 0)),
    )


def test_unnamed_links_and_their_routes_are_left_alone() -> None:
    actual = state(
        addresses=(Address("eth1", "203.0.113.5/24"),),
        routes=(Route("10.0.0.0/8", "203.0.113.1", "eth1", 0, RTPROT_BOOT),),
    )
    assert plan(desired(LinkSpec("eth0")), actual).steps == ()


def test_dynamic_and_link_local_addresses_are_not_managed() -> None:
    actual = state(
        addresses=(
            Address("eth0", "192.0.2.99/24", permanent=False, valid_lft=100),
            Address("eth0", "fe80::1/64"),
            Address("eth0", "192.0.2.10/24"),
        ),
        routes=(Route("0.0.0.0/0", "192.0.2.1", "eth0", 1024, RTPROT_DHCP),),
    )
    assert plan(desired(LinkSpec("eth0")), actual).steps == (DelAddress("eth0", "192.0.2.10/24"),)


def test_new_primary_replaces_the_subnet_in_order() -> None:
    actual = state(
        addresses=(
            Address("eth0", "192.0.2.10/24"),
            Address("eth0", "192.0.2.11/24", secondary=True),
        ),
        routes=(Route("198.51.100.0/24", "192.0.2.1", "eth0", 0),),
    )
    wanted = desired(
        LinkSpec("eth0", addresses=("192.0.2.11/24", "192.0.2.10/24")),
        routes=(Route("198.51.100.0/24", "192.0.2.1", "eth0", 0),),
    )
    route = Route("198.51.100.0/24", "192.0.2.1", "eth0", 0)
    assert plan(wanted, actual).steps == (
        DelRoute(route),  # the kernel flushes it when eth0 loses its last IPv4 address
        DelAddress("eth0", "192.0.2.11/24"),  # secondaries before their primary
        DelAddress("eth0", "192.0.2.10/24"),
        AddAddress("eth0", "192.0.2.11/24"),
        AddAddress("eth0", "192.0.2.10/24"),
        AddRoute(route),
    )


def test_removing_a_primary_takes_its_secondaries_explicitly() -> None:
    actual = state(
        addresses=(
            Address("eth0", "192.0.2.10/24"),
            Address("eth0", "192.0.2.11/24", secondary=True),
            Address("eth0", "198.51.100.10/24"),
        ),
    )
    wanted = desired(LinkSpec("eth0", addresses=("198.51.100.10/24", "192.0.2.11/24")))
    assert plan(wanted, actual).steps == (
        DelAddress("eth0", "192.0.2.11/24"),
        DelAddress("eth0", "192.0.2.10/24"),
        AddAddress("eth0", "192.0.2.11/24"),
    )


def test_taking_a_link_down_drops_its_ipv6_and_routes_first() -> None:
    route = Route("2001:db8:1::/48", "2001:db8::1", "eth0", 1024)
    actual = state(
        addresses=(Address("eth0", "192.0.2.10/24"), Address("eth0", "2001:db8::10/64")),
        routes=(route,),
    )
    wanted = desired(
        LinkSpec("eth0", up=False, addresses=("192.0.2.10/24", "2001:db8::10/64")),
        routes=(route,),
    )
    steps = plan(wanted, actual).steps
    assert steps == (DelRoute(route), DelAddress("eth0", "2001:db8::10/64"), SetUp("eth0", False))
    after = state(links=(LO, Link("eth0", up=False), ETH1), addresses=(actual.addresses[0],))
    assert plan(wanted, after).steps == (), "a down link wants no IPv6 address and no route"


def test_route_with_a_new_gateway_is_replaced() -> None:
    old = Route("0.0.0.0/0", "192.0.2.1", "eth0", 0)
    new = Route("0.0.0.0/0", "192.0.2.254", "eth0", 0)
    actual = state(addresses=(Address("eth0", "192.0.2.10/24"),), routes=(old,))
    wanted = desired(LinkSpec("eth0", addresses=("192.0.2.10/24",)), routes=(new,))
    assert plan(wanted, actual).steps == (DelRoute(old), AddRoute(new))


def test_route_using_a_removed_source_is_re_added() -> None:
    kept = Route("203.0.113.0/24", "192.0.2.1", "eth0", 0, source="192.0.2.10")
    actual = state(
        addresses=(
            Address("eth0", "192.0.2.10/24"),
            Address("eth0", "198.51.100.10/24"),
        ),
        routes=(kept,),
    )
    wanted = desired(
        LinkSpec("eth0", addresses=("198.51.100.10/24",)),
        routes=(Route("203.0.113.0/24", "192.0.2.1", "eth0", 0, source="192.0.2.10"),),
    )
    steps = plan(wanted, actual)
    assert steps.steps[0] == DelRoute(kept)
    assert steps.deferred == (kept,), "its gateway is in no subnet any more"


def test_route_waits_for_dhcp_when_its_gateway_is_in_no_subnet() -> None:
    route = Route("10.0.0.0/8", "172.16.0.1", "", 0)
    wanted = desired(LinkSpec("eth0", dhcp=True), routes=(route,))
    assert plan(wanted, state()).deferred == (route,)
    leased = state(addresses=(Address("eth0", "172.16.0.50/24", permanent=False, valid_lft=60),))
    assert plan(wanted, leased).steps == (AddRoute(route),)


def test_vlans_created_parents_first_with_their_mtu() -> None:
    wanted = desired(
        LinkSpec("eth1", mtu=9000),
        LinkSpec("eth1.20.5", vlan=VlanSpec("eth1.20", 5), addresses=("10.5.0.1/24",)),
        LinkSpec("eth1.20", vlan=VlanSpec("eth1", 20), mtu=9000, addresses=("10.20.0.1/24",)),
    )
    assert plan(wanted, state()).steps == (
        SetMtu("eth1", 9000, 1500),  # before a VLAN on it may have 9000 too
        CreateVlan("eth1.20", "eth1", 20, 9000),
        CreateVlan("eth1.20.5", "eth1.20", 5, None),
        SetUp("eth1", True),
        SetUp("eth1.20", True),
        SetUp("eth1.20.5", True),
        AddAddress("eth1.20", "10.20.0.1/24"),
        AddAddress("eth1.20.5", "10.5.0.1/24"),
    )


def test_vlan_with_another_id_is_recreated() -> None:
    voice = Link("voice", kind="vlan", up=True, mtu=1500, parent="eth0", vlan_id=20, index=9)
    actual = state(links=(LO, ETH0, voice), addresses=(Address("voice", "10.20.0.1/24"),))
    wanted = desired(
        LinkSpec("voice", vlan=VlanSpec("eth0", 30), addresses=("10.20.0.1/24",)),
    )
    assert plan(wanted, actual).steps == (
        DelAddress("voice", "10.20.0.1/24"),
        DeleteLink("voice", "eth0", 20, 1500, True),
        CreateVlan("voice", "eth0", 30, None),
        SetUp("voice", True),
        AddAddress("voice", "10.20.0.1/24"),
    )


def test_restoring_deletes_a_vlan_made_since() -> None:
    voice = Link("eth0.20", kind="vlan", up=True, mtu=1400, parent="eth0", vlan_id=20, index=9)
    actual = state(links=(LO, ETH0, voice), addresses=(Address("eth0.20", "10.20.0.1/24"),))
    steps = plan(desired(LinkSpec("eth0.20", present=False)), actual).steps
    assert steps == (
        DelAddress("eth0.20", "10.20.0.1/24"),
        DeleteLink("eth0.20", "eth0", 20, 1400, True),
    )
    assert undo_steps(steps) == [
        CreateVlan("eth0.20", "eth0", 20, 1400, True),
        AddAddress("eth0.20", "10.20.0.1/24"),
    ]


def test_mtu_decreases_upper_first_increases_lower_first() -> None:
    vlan = Link("eth0.20", kind="vlan", up=True, mtu=9000, parent="eth0", vlan_id=20, index=9)
    big = Link("eth0", kind="veth", up=True, mtu=9000, index=2)
    actual = state(links=(LO, big, vlan))
    shrink = desired(
        LinkSpec("eth0", mtu=1500), LinkSpec("eth0.20", vlan=VlanSpec("eth0", 20), mtu=1400)
    )
    assert plan(shrink, actual).steps == (SetMtu("eth0.20", 1400, 9000), SetMtu("eth0", 1500, 9000))
    small = state(
        links=(LO, Link("eth0", up=True, mtu=1500, index=2), Link(**{**vlan.__dict__, "mtu": 1500}))
    )
    grow = desired(
        LinkSpec("eth0.20", vlan=VlanSpec("eth0", 20), mtu=9000), LinkSpec("eth0", mtu=9000)
    )
    assert plan(grow, small).steps == (SetMtu("eth0", 9000, 1500), SetMtu("eth0.20", 9000, 1500))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (LinkSpec("eth7"), "no interface named eth7"),
        (LinkSpec("eth0", vlan=VlanSpec("eth1", 5)), "eth0 exists and is a veth, not a VLAN"),
        (LinkSpec("eth0", present=False), "eth0 is a veth, not a VLAN"),
        (LinkSpec("lo"), "lo is never managed"),
    ],
)
def test_impossible_plans_are_refused(spec: LinkSpec, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        plan(desired(spec), state())


def test_kernel_routes_are_never_touched() -> None:
    actual = state(
        addresses=(Address("eth0", "192.0.2.10/24"),),
        routes=(Route("192.0.2.0/24", "", "eth0", 0, RTPROT_KERNEL, "192.0.2.10"),),
    )
    assert plan(desired(LinkSpec("eth0", addresses=("192.0.2.10/24",))), actual).steps == ()


STEPS: list[Step] = [
    CreateVlan("eth0.20", "eth0", 20, 1400, True),
    DeleteLink("eth0.20", "eth0", 20, None, False),
    SetMtu("eth0", 9000, 1500),
    SetUp("eth0", False),
    AddAddress("eth0", "192.0.2.10/24"),
    DelAddress("eth0", "2001:db8::1/64"),
    AddRoute(Route("0.0.0.0/0", "192.0.2.1", "eth0", 0)),
    DelRoute(Route("::/0", "fe80::1", "eth0", 1024, RTPROT_BOOT)),
]


@pytest.mark.parametrize("step", STEPS, ids=lambda s: s.op)
def test_inverse_and_json(step: Step) -> None:
    assert step.inverse().inverse() == step
    assert step.inverse() != step
    assert step_from_json(step.to_json()) == step
    assert step.describe()
