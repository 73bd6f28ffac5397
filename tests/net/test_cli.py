"""The human-readable `appliance net show`."""

from __future__ import annotations

import time

from appliance.net.cli import render_show
from appliance.net.model import RTPROT_DHCP, RTPROT_KERNEL, Address, Link, NetState, Route


def test_show_lists_links_addresses_routes_leases_and_a_pending_try() -> None:
    state = NetState(
        links=(
            Link("lo", up=True, carrier=True, mtu=65536, index=1),
            Link("eth0", kind="veth", up=True, carrier=True, mac="02:00:00:00:00:01", index=2),
            Link("eth0.20", kind="vlan", up=True, parent="eth0", vlan_id=20, index=3),
        ),
        addresses=(
            Address("eth0", "192.0.2.10/24"),
            Address("eth0", "192.0.2.11/24", secondary=True),
            Address("eth0", "198.51.100.7/24", permanent=False, valid_lft=80),
        ),
        routes=(
            Route("0.0.0.0/0", "198.51.100.1", "eth0", 1024, RTPROT_DHCP),
            Route("192.0.2.0/24", "", "eth0", 0, RTPROT_KERNEL, "192.0.2.10"),
        ),
    )
    text = render_show(
        {
            "state": state.to_json(),
            "managed": ["eth0", "eth0.20"],
            "manage": True,
            "leases": {
                "eth0": {"state": "bound", "address": "198.51.100.7/24", "seconds_left": 79.6}
            },
            "dns": ["192.0.2.53"],
            "resolv_conf": "/run/appliance-net/resolv.conf",
            "pending": {"status": "pending", "seconds_left": 90.0},
            "last_rollback": {
                "reason": "not confirmed within 120 s",
                "exact": True,
                "at": time.time(),
            },
        }
    )
    lines = text.splitlines()
    assert lines[1] == "eth0            up  carrier  mtu 1500  veth  02:00:00:00:00:01  managed"
    assert "    192.0.2.11/24  (secondary)" in lines
    assert "    198.51.100.7/24  (dhcp bound, 80 s left)" in lines
    assert lines[5].startswith("eth0.20         up  no-carrier  mtu 1500  vlan 20 on eth0")
    assert "    default via 198.51.100.1 dev eth0 metric 1024 (dhcp)" in lines
    assert "DNS: 192.0.2.53 (in /run/appliance-net/resolv.conf)" in lines
    assert any(line.startswith("A try is pending: it rolls back at ") for line in lines)
    assert lines[-1].endswith("not confirmed within 120 s (restored exactly)")


def test_show_says_what_rollback_would_undo() -> None:
    created = time.mktime((2025, 3, 4, 10, 20, 30, 0, 0, -1))
    base = {"state": NetState().to_json(), "manage": True, "last_rollback": None}
    text = render_show({**base, "pending": {"status": "done", "mode": "apply", "created": created}})
    assert (
        text.splitlines()[-1]
        == "`appliance net rollback` would undo the apply of 2025-03-04 10:20:30."
    )
    text = render_show({**base, "pending": {"status": "done", "mode": "try", "created": created}})
    assert text.splitlines()[-1].endswith("would undo the confirmed try of 2025-03-04 10:20:30.")
    assert "rollback" not in render_show({**base, "pending": None})
