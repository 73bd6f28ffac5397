"""DHCP through the helper against a real dnsmasq in a peer namespace (RFC 2131)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.net.conftest import HelperProcess, Lab, Namespace, needs_netns, network_toml

pytestmark = [
    needs_netns,
    pytest.mark.skipif(
        shutil.which("dnsmasq") is None, reason="needs dnsmasq (Debian: dnsmasq-base)"
    ),
]

RENEW_AFTER = 2  # dnsmasq option 58 (T1): the client renews every 2 s
REBIND_AFTER = 4  # option 59 (T2)
LEASE = 120  # dnsmasq's shortest lease (dnsmasq(8): "The minimum lease time is two minutes")


class Dnsmasq:
    """dnsmasq serving DHCP on one interface of the peer namespace."""

    def __init__(self, ns: Namespace, interface: str, workdir: Path) -> None:
        self.ns = ns
        self.lines: list[str] = []
        ns.ip("addr", "add", "192.0.2.1/24", "dev", interface)
        self.proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                ns.name,
                "dnsmasq",
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--port=0",
                f"--interface={interface}",
                "--bind-interfaces",
                "--except-interface=lo",
                f"--dhcp-range=192.0.2.100,192.0.2.150,255.255.255.0,{LEASE}s",
                "--dhcp-option=option:router,192.0.2.1",
                "--dhcp-option=option:dns-server,192.0.2.53",
                "--dhcp-option=option:domain-name,psap.example",
                f"--dhcp-option=58,{RENEW_AFTER}",
                f"--dhcp-option=59,{REBIND_AFTER}",
                f"--dhcp-leasefile={workdir / 'leases'}",
                f"--pid-file={workdir / 'pid'}",
                "--log-dhcp",
                "--log-facility=-",
                "--no-ping",
                "--dhcp-authoritative",
            ],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        ns.procs.append(self.proc)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


class Events:
    """The helper's event stream, read by a thread."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self.sock.sendall(b'{"op": "events"}\n')
        self.file = self.sock.makefile("rb")
        first = json.loads(self.file.readline())
        assert first["ok"] is True
        self.events: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for line in self.file:
                self.events.append(json.loads(line))
        except (OSError, ValueError):
            return

    def wait(self, predicate: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in list(self.events):
                if predicate(event):
                    return event
            time.sleep(0.05)
        raise AssertionError(f"no such event within {timeout} s: {self.events}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def dhcp_lab(
    lab: Callable[..., Lab], helper_in: Callable[..., HelperProcess]
) -> Iterator[tuple[Lab, HelperProcess, Dnsmasq, Path]]:
    world = lab("eth0")
    workdir = Path(tempfile.mkdtemp(prefix="dnsmasq-"))
    server = Dnsmasq(world.peer, "p0", workdir)
    helper = helper_in(world.box)
    config = workdir / "appliance.toml"
    config.write_text(network_toml([{"name": "eth0", "dhcp": True}], dns=["192.0.2.200"]))
    yield world, helper, server, config
    shutil.rmtree(workdir, ignore_errors=True)


def lease_of(helper: HelperProcess) -> dict[str, Any]:
    shown = helper.cli("show", "--json")
    assert shown.returncode == 0, shown.stderr
    lease: dict[str, Any] = json.loads(shown.stdout)["leases"].get("eth0", {})
    return lease


def wait_bound(helper: HelperProcess, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lease = lease_of(helper)
        if lease.get("address"):
            return lease
        time.sleep(0.2)
    raise AssertionError(f"no lease within {timeout} s:\n{helper.log}")


def dhcp_addresses(ns: Namespace) -> list[dict[str, Any]]:
    entries = json.loads(ns.ip("-j", "addr", "show", "dev", "eth0").stdout)
    return [a for a in entries[0]["addr_info"] if a["family"] == "inet"]


def test_lease_dns_route_and_renewal(dhcp_lab: tuple[Lab, HelperProcess, Dnsmasq, Path]) -> None:
    world, helper, server, config = dhcp_lab
    events = Events(helper.socket)
    try:
        applied = helper.cli("apply", config=config)
        assert applied.returncode == 0, applied.stderr
        bound = events.wait(lambda e: e.get("event") == "dhcp" and e["state"] == "bound", 20)
        assert bound["address"].startswith("192.0.2.1") and bound["address"].endswith("/24")
        assert bound["gateway"] == "192.0.2.1"
        assert bound["dns"] == ["192.0.2.53"]
        assert 100 < bound["seconds_left"] <= LEASE

        (address,) = dhcp_addresses(world.box)
        assert f"{address['local']}/{address['prefixlen']}" == bound["address"]
        assert address["valid_life_time"] <= LEASE, "the kernel drops it unless renewed"
        routes = json.loads(world.box.ip("-j", "route", "show", "default").stdout)
        assert routes == [
            {
                "dst": "default",
                "gateway": "192.0.2.1",
                "dev": "eth0",
                "protocol": "dhcp",
                "metric": 1024,
                "flags": [],
            }
        ]
        resolv = helper.resolv.read_text()
        assert "nameserver 192.0.2.200\nnameserver 192.0.2.53\nsearch psap.example\n" in resolv

        renewed = events.wait(lambda e: e.get("state") == "renewed", 4 * RENEW_AFTER + 5)
        assert renewed["address"] == bound["address"]
        assert renewed["renewals"] >= 1
        assert "DHCPREQUEST(p0) " + bound["address"].split("/")[0] in server.log
        # The planner leaves the leased address alone: nothing to change.
        assert helper.cli("diff", config=config).stdout.strip() == "nothing to change"
    finally:
        events.close()


def test_restart_keeps_the_lease_and_dhcp_off_releases_it(
    dhcp_lab: tuple[Lab, HelperProcess, Dnsmasq, Path],
) -> None:
    world, helper, server, config = dhcp_lab
    assert helper.cli("apply", config=config).returncode == 0
    first = wait_bound(helper)
    assert helper.stop() == 0
    assert (helper.state / "net" / "leases" / "eth0.lease.json").exists()
    assert dhcp_addresses(world.box), "a restart does not release the lease"
    discovers = server.log.count("DHCPDISCOVER")
    helper.start()
    again = wait_bound(helper)
    assert again["address"] == first["address"]
    assert server.log.count("DHCPDISCOVER") == discovers, "INIT-REBOOT asks for the same lease"

    static = helper.dir / "static.toml"
    static.write_text(network_toml([{"name": "eth0", "addresses": ["192.0.2.9/24"]}]))
    assert helper.cli("apply", config=static).returncode == 0
    deadline = time.monotonic() + 10
    while "DHCPRELEASE" not in server.log and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "DHCPRELEASE(p0) " + first["address"].split("/")[0] in server.log
    assert [f"{a['local']}/{a['prefixlen']}" for a in dhcp_addresses(world.box)] == ["192.0.2.9/24"]
    assert json.loads(world.box.ip("-j", "route", "show", "default").stdout) == []


def test_malformed_packet_does_not_silence_the_client(
    dhcp_lab: tuple[Lab, HelperProcess, Dnsmasq, Path],
) -> None:
    """A BOOTP reply without a DHCP message type kills pyroute2's receive loop; the
    helper notices and restarts the client, which goes on renewing."""
    world, helper, _, config = dhcp_lab
    assert helper.cli("apply", config=config).returncode == 0
    wait_bound(helper)
    bootp = bytearray(240)
    bootp[0] = 2  # BOOTREPLY
    bootp[1], bootp[2] = 1, 6
    bootp[236:240] = b"\x63\x82\x53\x63"  # the magic cookie, then no options at all
    sender = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)\n"
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b'p0')\n"
        "s.bind(('192.0.2.1', 0))\n"
        "s.sendto(bytes.fromhex(sys.argv[1]), ('255.255.255.255', 68))\n"
    )
    sent = world.peer.exec(sys.executable, "-c", sender, bootp.hex())
    assert sent.returncode == 0, sent.stderr
    before = lease_of(helper)["renewals"]
    deadline = time.monotonic() + 6 * RENEW_AFTER + 10
    while time.monotonic() < deadline:
        lease = lease_of(helper)
        if lease.get("address") and lease["renewals"] > before + 1:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"the client stopped renewing:\n{helper.log}")
    assert "DHCP client on eth0 stopped" in helper.log, helper.log


@pytest.mark.slow
def test_server_gone_lease_expires_and_is_reported(
    dhcp_lab: tuple[Lab, HelperProcess, Dnsmasq, Path],
) -> None:
    world, helper, server, config = dhcp_lab
    events = Events(helper.socket)
    try:
        assert helper.cli("apply", config=config).returncode == 0
        bound = events.wait(lambda e: e.get("state") == "bound", 20)
        expires_at = time.time() + bound["seconds_left"]
        server.stop()
        time.sleep(REBIND_AFTER + 3)
        assert dhcp_addresses(world.box), "the address stays while the lease is valid"
        expired = events.wait(lambda e: e.get("state") == "expired", LEASE + 15)
        assert abs(time.time() - expires_at) < 10
        assert expired["interface"] == "eth0"
        assert dhcp_addresses(world.box) == []
        assert json.loads(world.box.ip("-j", "route", "show", "default").stdout) == []
        assert "192.0.2.53" not in helper.resolv.read_text()
        assert lease_of(helper)["state"] == "expired"
        assert "DHCP lease " + bound["address"] + " on eth0 expired" in helper.log
    finally:
        events.close()
