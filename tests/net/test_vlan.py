"""802.1Q VLAN sub-interfaces, where the kernel has them (else test_vlan_vm.py runs this file
in a VM on Debian's kernel): created, kept idempotent, carrying tagged traffic, and rolled back
exactly by `rollback` (of a try, then of the apply) and after the helper is killed during a try.
The try's timer is the same restore path, tested without VLANs in test_helper.py."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from appliance.config.schema import InterfaceConfig, NetworkConfig
from appliance.net.model import desired_from_config, desired_from_snapshot
from appliance.net.netlink import Netlink
from appliance.net.plan import CreateVlan, DeleteLink, plan, undo_steps
from tests.net.conftest import HelperProcess, Lab, Namespace, ip, needs_netns, network_toml


def kernel_has_vlans() -> bool:
    """Create a VLAN on a veth in a throwaway namespace (this also loads 8021q if needed)."""
    if os.geteuid() != 0:
        return False
    name = f"aplvlan{os.getpid()}"
    if ip("netns", "add", name, check=False).returncode != 0:
        return False
    try:
        ip("-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1", check=False)
        made = ip(
            "-n",
            name,
            "link",
            "add",
            "link",
            "v0",
            "name",
            "v0.2",
            "type",
            "vlan",
            "id",
            "2",
            check=False,
        )
        return made.returncode == 0
    finally:
        ip("netns", "del", name, check=False)


HAS_VLANS = kernel_has_vlans()
pytestmark = [
    needs_netns,
    pytest.mark.skipif(
        not HAS_VLANS,
        reason="the running kernel has no 802.1Q support (CONFIG_VLAN_8021Q); "
        "test_vlan_vm.py runs these tests in a VM on Debian's kernel",
    ),
]

INTERFACES: list[dict[str, Any]] = [
    {"name": "eth0", "mtu": 1600, "addresses": ["192.0.2.10/24"]},
    {
        "name": "eth0.20",
        "parent": "eth0",
        "vlan_id": 20,
        "mtu": 1500,
        "addresses": ["10.20.0.1/24", "2001:db8:20::1/64"],
    },
    {"name": "voice", "parent": "eth0", "vlan_id": 30, "addresses": ["10.30.0.1/24"]},
]
ROUTES: list[dict[str, Any]] = [
    {"destination": "10.99.0.0/16", "gateway": "10.20.0.254"},
    {"destination": "default", "gateway": "10.30.0.254", "metric": 10},
]


def ok(answer: dict[str, Any]) -> dict[str, Any]:
    assert answer["ok"] is True, answer
    result: dict[str, Any] = answer["result"]
    return result


def udp_across(sender: Namespace, receiver: Namespace, target: str) -> None:
    """A datagram from ``sender`` reaches ``target`` in ``receiver``."""
    listen = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "s.bind((sys.argv[1], 9999)); s.settimeout(60)\n"
        "print(s.recvfrom(100)[0].decode(), flush=True)\n"
    )
    proc = subprocess.Popen(
        ["ip", "netns", "exec", receiver.name, sys.executable, "-c", listen, target],
        stdout=subprocess.PIPE,
        text=True,
    )
    receiver.procs.append(proc)
    send = (
        "import socket, sys, time\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "for _ in range(600):\n"
        "    s.sendto(b'tagged', (sys.argv[1], 9999)); time.sleep(0.1)\n"
    )
    sender_proc = subprocess.Popen(
        ["ip", "netns", "exec", sender.name, sys.executable, "-c", send, target]
    )
    sender.procs.append(sender_proc)
    try:
        out, _ = proc.communicate(timeout=90)
    finally:
        sender_proc.kill()
    assert out.strip() == "tagged"


def test_vlans_through_the_helper(
    lab: Callable[..., Lab], helper_in: Callable[..., HelperProcess]
) -> None:
    world = lab("eth0")
    world.peer.ip("link", "set", "p0", "mtu", "1600")
    helper = helper_in(world.box)
    config = network_toml(INTERFACES, ROUTES)
    before = world.box.witness()

    applied = ok(helper.request({"op": "apply", "config": config, "file": "vlan.toml"}))
    assert "create VLAN eth0.20 (id 20 on eth0, mtu 1500)" in applied["steps"]
    assert "create VLAN voice (id 30 on eth0)" in applied["steps"]
    state = world.box.witness()
    assert ("eth0", True, 1600, 0, "") in state["links"]
    assert ("eth0.20", True, 1500, 20, "eth0") in state["links"]
    assert ("voice", True, 1600, 30, "eth0") in state["links"]
    assert ("eth0.20", "2001:db8:20::1/64", False) in state["addresses"]
    assert ("10.99.0.0/16", "10.20.0.254", "eth0.20", 0, "static", "") in state["routes"]
    assert ("default", "10.30.0.254", "voice", 10, "static", "") in state["routes"]
    again = ok(helper.request({"op": "apply", "config": config, "file": "vlan.toml"}))
    assert again["steps"] == [], "a second apply changes nothing"

    world.peer.ip("link", "add", "link", "p0", "name", "p0.20", "type", "vlan", "id", "20")
    world.peer.ip("addr", "add", "10.20.0.2/24", "dev", "p0.20")
    world.peer.ip("link", "set", "p0.20", "up")
    udp_across(world.box, world.peer, "10.20.0.2")

    changed = [
        {**INTERFACES[0]},
        {**INTERFACES[1], "vlan_id": 21, "mtu": 1400},
        {"name": "voice", "parent": "eth0", "vlan_id": 30, "enabled": False},
    ]
    tried = ok(
        helper.request(
            {"op": "try", "config": network_toml(changed), "file": "t.toml", "timeout": 600}
        )
    )
    assert "delete VLAN eth0.20 (id 20 on eth0)" in tried["steps"]
    assert "create VLAN eth0.20 (id 21 on eth0, mtu 1400)" in tried["steps"]
    during = world.box.witness()
    assert ("eth0.20", True, 1400, 21, "eth0") in during["links"]
    assert ("voice", False, 1600, 30, "eth0") in during["links"]
    assert not [a for a in during["addresses"] if a[0] == "voice"]

    rolled = ok(helper.request({"op": "rollback"}))
    assert rolled["exact"] is True
    assert world.box.witness() == state, "the try's VLAN changes are undone exactly"
    rolled = ok(helper.request({"op": "rollback"}))
    assert rolled["exact"] is True
    assert world.box.witness() == before, "the VLANs made by the apply are gone"

    ok(helper.request({"op": "try", "config": config, "file": "vlan.toml", "timeout": 600}))
    assert world.box.witness() == state
    helper.kill9()
    helper.start(timeout=120)
    assert world.box.witness() == before


def test_recreate_and_undo_in_process(lab: Callable[..., Lab]) -> None:
    world = lab("eth0")
    first = NetworkConfig(
        manage=True,
        interfaces=[
            InterfaceConfig(name="eth0"),
            InterfaceConfig(name="lan", vlan_id=5, parent="eth0", addresses=["10.5.0.1/24"]),
        ],
    )
    second = NetworkConfig(
        manage=True,
        interfaces=[
            InterfaceConfig(name="eth0"),
            InterfaceConfig(name="lan", vlan_id=6, parent="eth0", addresses=["10.5.0.1/24"]),
        ],
    )

    async def scenario() -> None:
        async with Netlink(world.box.name) as nl:
            empty = await nl.read_state()
            result = await nl.execute(plan(desired_from_config(first), empty).steps)
            assert result.ok, result.error
            made = await nl.read_state()
            steps = plan(desired_from_config(second), made).steps
            assert DeleteLink("lan", "eth0", 5, 1500, True) in steps
            assert CreateVlan("lan", "eth0", 6, None) in steps
            changed = await nl.execute(steps)
            assert changed.ok, changed.error
            lan = (await nl.read_state()).link("lan")
            assert lan is not None and (lan.kind, lan.vlan_id, lan.parent) == ("vlan", 6, "eth0")
            undone = await nl.execute(undo_steps(changed.done))
            assert undone.ok, undone.error
            scope = ["eth0", "lan"]
            assert (await nl.read_state()).managed(scope).comparable() == made.managed(
                scope
            ).comparable()
            restore = plan(desired_from_snapshot(empty.managed(scope), scope), made)
            assert DeleteLink("lan", "eth0", 5, 1500, True) in restore.steps
            assert (await nl.execute(restore.steps)).ok
            assert (await nl.read_state()).link("lan") is None

    asyncio.run(scenario())
