"""The planner and executor against the real kernel, on generated configurations.

For each pair of configurations (A, B) on a namespace reset to a fresh box:
apply A, then B; each apply leaves nothing to plan; undoing B's steps (their inverses,
last first) gives back the state before B exactly; so does restoring the snapshot taken
before B (what a rollback does). "Exactly" is judged twice: by the appliance's own reader
and by `ip -j`, which knows nothing of the appliance.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from appliance.config.schema import InterfaceConfig, NetworkConfig, RouteConfig
from appliance.net.checks import check
from appliance.net.model import NetState, desired_from_config, desired_from_snapshot
from appliance.net.netlink import Netlink
from appliance.net.plan import plan, undo_steps
from tests.net.conftest import Lab, Namespace, ip, needs_netns

pytestmark = needs_netns

LINKS = ["eth0", "eth1", "eth2"]
POOL = {
    "eth0": [
        "192.0.2.10/24",
        "192.0.2.11/24",
        "192.0.2.200/25",
        "2001:db8::10/64",
        "2001:db8::11/64",
    ],
    "eth1": ["198.51.100.10/24", "198.51.100.11/24", "10.1.0.1/16", "2001:db8:1::10/64"],
    "eth2": ["203.0.113.10/24", "2001:db8:2::10/64", "172.16.5.1/30"],
}
DESTINATIONS = ["default", "10.200.0.0/16", "192.168.77.0/24", "2001:db8:f00::/48"]


@st.composite
def networks(draw: st.DrawFn) -> NetworkConfig:
    interfaces = []
    for name in LINKS:
        if draw(st.integers(0, 3)) == 0:  # most configurations name most links
            continue
        addresses = draw(st.permutations(POOL[name]))[: draw(st.integers(0, len(POOL[name])))]
        interfaces.append(
            InterfaceConfig(
                name=name,
                enabled=draw(st.booleans()),
                addresses=list(addresses),
                mtu=draw(st.sampled_from([0, 1280, 1400, 1500, 9000])),
            )
        )
    gateways = [
        str(next(ipaddress.ip_interface(a).network.hosts()))
        for iface in interfaces
        if iface.enabled
        for a in iface.addresses
    ]
    routes: list[RouteConfig] = []
    taken: set[tuple[str, int]] = set()
    for destination in DESTINATIONS:
        if not gateways or not draw(st.booleans()):
            continue
        if destination == "default":
            family = draw(st.sampled_from([4, 6]))
        else:
            family = ipaddress.ip_network(destination).version
        fitting = [g for g in gateways if ipaddress.ip_address(g).version == family]
        if not fitting:
            continue
        metric = draw(st.sampled_from([0, 5, 100]))
        key = (destination if destination != "default" else f"default{family}", metric)
        if key in taken:
            continue
        taken.add(key)
        routes.append(
            RouteConfig(
                destination=destination, gateway=draw(st.sampled_from(fitting)), metric=metric
            )
        )
    network = NetworkConfig(manage=True, interfaces=interfaces, routes=routes)
    assert network.problems() == []
    return network


@pytest.fixture(scope="module")
def kernel_box() -> Iterator[Namespace]:
    """One namespace for every example (each starts from a reset), deleted at the end."""
    box = Namespace(f"aplprop{os.getpid()}")
    peer = Namespace(f"aplpeer{os.getpid()}")
    ip("netns", "add", box.name)
    ip("netns", "add", peer.name)
    try:
        for index, name in enumerate(LINKS):
            ip(
                "link",
                "add",
                name,
                "netns",
                box.name,
                "type",
                "veth",
                "peer",
                "name",
                f"p{index}",
                "netns",
                peer.name,
            )
            peer.ip("link", "set", f"p{index}", "mtu", "9000", "up")
        yield box
    finally:
        ip("netns", "del", box.name, check=False)
        ip("netns", "del", peer.name, check=False)


def reset(box: Namespace) -> None:
    commands = []
    for name in LINKS:
        commands += [
            f"link set {name} down",
            f"link set {name} mtu 1500",
            f"address flush dev {name}",
        ]
    commands.append("route flush table main")
    result = box.exec("ip", "-force", "-batch", "-", input="\n".join(commands) + "\n")
    assert result.returncode == 0, result.stderr
    box.ip("-6", "route", "flush", "table", "main")


async def apply(nl: Netlink, network: NetworkConfig) -> list[Any]:
    steps = plan(desired_from_config(network), await nl.read_state())
    result = await nl.execute(steps.steps)
    assert result.ok, result.error
    after = await nl.read_state()
    assert plan(desired_from_config(network), after).steps == (), "a second apply plans nothing"
    return result.done


@needs_netns
@settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(first=networks(), second=networks())
def test_apply_undo_and_restore_are_exact(
    kernel_box: Namespace, first: NetworkConfig, second: NetworkConfig
) -> None:
    box = kernel_box
    reset(box)
    scope = [i.name for i in second.interfaces]

    async def scenario() -> None:
        async with Netlink(box.name) as nl:
            await apply(nl, first)
            before = await nl.read_state()
            problems = check(second, before)
            if problems:
                # The helper refuses such a B before touching anything (test_helper.py).
                assert all("expected no other route" in message for _, message in problems)
                event("B refused by the checks")
                return
            witness = box.witness()
            done = await apply(nl, second)
            event(f"steps of B: {min(len(done), 20) // 5 * 5}+")

            undone = await nl.execute(undo_steps(done))
            assert undone.ok, undone.error
            assert (await nl.read_state()).managed(scope).comparable() == before.managed(
                scope
            ).comparable()
            assert box.witness() == witness

            await apply(nl, second)
            snapshot = before.managed(scope)
            restore = plan(desired_from_snapshot(snapshot, scope), await nl.read_state())
            result = await nl.execute(restore.steps, undo_on_failure=False, keep_going=True)
            assert result.ok, result.undo_errors
            assert restore.deferred == ()
            after: NetState = await nl.read_state()
            assert after.managed(scope).comparable() == snapshot.comparable()
            assert box.witness() == witness

    asyncio.run(scenario())


def test_reader_sees_what_ip_reports(lab: Callable[..., Lab]) -> None:
    world = lab("eth0")
    world.box.ip("link", "set", "eth0", "up", "mtu", "1400")
    world.box.ip("addr", "add", "192.0.2.10/24", "dev", "eth0")
    world.box.ip("addr", "add", "192.0.2.11/24", "dev", "eth0")
    world.box.ip(
        "addr", "add", "192.0.2.12/24", "dev", "eth0", "valid_lft", "100", "preferred_lft", "100"
    )
    world.box.ip(
        "route", "add", "10.0.0.0/8", "via", "192.0.2.1", "metric", "7", "src", "192.0.2.11"
    )

    async def read() -> NetState:
        async with Netlink(world.box.name) as nl:
            return await nl.read_state()

    state = asyncio.run(read())
    eth0 = state.link("eth0")
    assert eth0 is not None
    assert (eth0.kind, eth0.up, eth0.carrier, eth0.mtu) == ("veth", True, True, 1400)
    by_cidr = {a.cidr: a for a in state.addresses_of("eth0")}
    assert not by_cidr["192.0.2.10/24"].secondary and by_cidr["192.0.2.11/24"].secondary
    assert by_cidr["192.0.2.10/24"].permanent and by_cidr["192.0.2.10/24"].managed
    dynamic = by_cidr["192.0.2.12/24"]
    assert not dynamic.permanent and not dynamic.managed and 90 < (dynamic.valid_lft or 0) <= 100
    (route,) = [r for r in state.routes if r.destination == "10.0.0.0/8"]
    assert (route.gateway, route.interface, route.metric, route.source) == (
        "192.0.2.1",
        "eth0",
        7,
        "192.0.2.11",
    )
    assert route.admin
