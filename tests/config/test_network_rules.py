"""The [network] rules that span keys: each names its table and key, with the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.config import read_config

IFACE = '[network]\nmanage = true\n\n[[network.interfaces]]\nname = "eth0"\n'

CASES = [
    (
        '[network]\n[[network.interfaces]]\nname = "lo"\n',
        "3: [[network.interfaces]] #1 name: expected an interface other than lo",
    ),
    (
        IFACE + "enabled = false\ndhcp = true\n",
        "7: [[network.interfaces]] #1 dhcp: expected enabled = true when dhcp = true",
    ),
    (
        '[network]\n[[network.interfaces]]\nname = "eth0.5"\nparent = "eth0.5"\nvlan_id = 5\n',
        "4: [[network.interfaces]] #1 parent: expected a parent other than the interface itself",
    ),
    (
        IFACE
        + 'addresses = ["192.0.2.10/24"]\n\n[[network.routes]]\ndestination = "default"\n'
        + 'gateway = "192.0.2.1"\n\n[[network.routes]]\ndestination = "default"\n'
        + 'gateway = "192.0.2.2"\n',
        "13: [[network.routes]] #2 destination: expected each destination and metric once, "
        "found default metric 0 again",
    ),
    (
        IFACE
        + 'addresses = ["2001:db8::10/64"]\n\n[[network.routes]]\ndestination = "::/0"\n'
        + 'gateway = "2001:db8::1"\nmetric = 1024\n\n[[network.routes]]\n'
        + 'destination = "default"\ngateway = "2001:db8::2"\n',
        "14: [[network.routes]] #2 destination: expected each destination and metric once",
    ),
    (
        IFACE
        + 'enabled = false\naddresses = ["192.0.2.10/24"]\n\n[[network.routes]]\n'
        + 'destination = "10.0.0.0/8"\ngateway = "192.0.2.1"\n',
        "11: [[network.routes]] #1 gateway: expected a gateway inside the subnet of an enabled "
        "interface, found 192.0.2.1",
    ),
    (
        IFACE
        + 'addresses = ["2001:db8::10/64"]\n\n[[network.routes]]\ndestination = "10.0.0.0/8"\n'
        + 'gateway = "2001:db8::1"\n',
        "10: [[network.routes]] #1 gateway: expected an IPv4 gateway for 10.0.0.0/8, found "
        "2001:db8::1",
    ),
    (
        '[network]\nhelper_socket = "run/net.sock"\n',
        '2: [network] helper_socket: expected an absolute path, found a string ("run/net.sock")',
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_network_rules(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "appliance.toml"
    path.write_text(text)
    config, issues = read_config(path)
    assert config is None
    assert len(issues) == 1, [str(i) for i in issues]
    assert str(issues[0]).startswith(f"{path}:{expected}"), str(issues[0])


def test_a_vlan_and_routes_that_fit_are_valid(tmp_path: Path) -> None:
    path = tmp_path / "appliance.toml"
    path.write_text(
        IFACE
        + 'addresses = ["192.0.2.10/24"]\n\n[[network.interfaces]]\nname = "eth0.20"\n'
        + 'parent = "eth0"\nvlan_id = 20\naddresses = ["198.51.100.10/24"]\n\n'
        + '[[network.routes]]\ndestination = "default"\ngateway = "192.0.2.1"\n\n'
        + '[[network.routes]]\ndestination = "default"\ngateway = "198.51.100.1"\nmetric = 10\n'
    )
    config, issues = read_config(path)
    assert issues == []
    assert config is not None and len(config.network.routes) == 2
