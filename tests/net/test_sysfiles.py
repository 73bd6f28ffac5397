"""The resolver file and the systemd-networkd markers."""

from __future__ import annotations

from pathlib import Path

from appliance.net.sysfiles import (
    networkd_marker,
    render_resolv,
    write_networkd_markers,
    write_resolv,
)


def test_resolver_file_lists_three_servers_and_the_search_domain() -> None:
    text = render_resolv(
        ["192.0.2.53", "2001:db8::53", "192.0.2.53", "198.51.100.53", "203.0.113.53"],
        ["psap.example", "", "psap.example"],
    )
    assert text.splitlines()[1:] == [
        "nameserver 192.0.2.53",
        "nameserver 2001:db8::53",
        "nameserver 198.51.100.53",
        "# (unused: resolv.conf takes three) nameserver 203.0.113.53",
        "search psap.example",
    ]


def test_write_resolv_only_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "run" / "resolv.conf"
    assert write_resolv(path, "nameserver 192.0.2.53\n") is True
    assert path.stat().st_mode & 0o777 == 0o644
    assert write_resolv(path, "nameserver 192.0.2.53\n") is False
    assert write_resolv(path, None) is True
    assert not path.exists()
    assert write_resolv(path, None) is False


def test_markers_follow_the_managed_interfaces(tmp_path: Path) -> None:
    directory = tmp_path / "networkd"
    assert write_networkd_markers(directory, ["eth0", "eth0.20"]) is True
    assert sorted(p.name for p in directory.iterdir()) == [
        "00-appliance-net-eth0.20.network",
        "00-appliance-net-eth0.network",
    ]
    assert (directory / "00-appliance-net-eth0.network").read_text() == networkd_marker("eth0")
    assert "[Match]\nName=eth0\n\n[Link]\nUnmanaged=yes\n" in networkd_marker("eth0")
    (directory / "10-other.network").write_text("[Match]\nName=eth9\n")
    assert write_networkd_markers(directory, ["eth0", "eth0.20"]) is False
    assert write_networkd_markers(directory, ["eth1"]) is True
    assert sorted(p.name for p in directory.iterdir()) == [
        "00-appliance-net-eth1.network",
        "10-other.network",
    ], "files it did not write stay"
