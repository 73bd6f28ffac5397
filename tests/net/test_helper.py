"""The helper in a namespace, driven through `appliance net …`: apply, try, confirm, rollback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.net.conftest import HelperProcess, Lab, Namespace, needs_netns, network_toml

pytestmark = needs_netns

STATIC: list[dict[str, Any]] = [
    {"name": "eth0", "addresses": ["192.0.2.10/24", "192.0.2.11/24", "2001:db8::10/64"]},
    {"name": "eth1", "addresses": ["198.51.100.10/24"], "mtu": 1400},
]
ROUTES: list[dict[str, Any]] = [
    {"destination": "default", "gateway": "192.0.2.1"},
    {"destination": "203.0.113.0/24", "gateway": "198.51.100.1", "metric": 20},
    {"destination": "2001:db8:100::/48", "gateway": "2001:db8::1"},
]


def write(tmp_path: Path, text: str, name: str = "appliance.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def box(
    lab: Callable[..., Lab], helper_in: Callable[..., HelperProcess]
) -> tuple[Lab, HelperProcess]:
    world = lab("eth0", "eth1", "eth2")
    return world, helper_in(world.box)


def test_static_apply_then_second_apply_changes_nothing(
    box: tuple[Lab, HelperProcess], tmp_path: Path
) -> None:
    world, helper = box
    assert helper.proc is not None
    pristine = world.box.witness(["eth0", "eth1", "eth2"])
    status = Path(f"/proc/{helper.proc.pid}/status").read_text()
    assert "\nUid:\t65534\t" in status, "the helper runs as a plain user"
    assert "\nCapEff:\t0000000000003000\n" in status, "with CAP_NET_ADMIN and CAP_NET_RAW only"
    config = write(tmp_path, network_toml(STATIC, ROUTES, dns=["192.0.2.53"]))
    diff = helper.cli("diff", config=config)
    assert diff.returncode == 0, diff.stderr
    assert "add address 192.0.2.10/24 to eth0" in diff.stdout
    applied = helper.cli("apply", config=config)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.splitlines() == diff.stdout.splitlines()

    state = world.box.witness(["eth0", "eth1", "eth2"])
    assert ("eth0", True, 1500, 0, "") in state["links"]
    assert ("eth1", True, 1400, 0, "") in state["links"]
    assert ("eth2", False, 1500, 0, "") in state["links"], "an unnamed link is not touched"
    assert [a for a in state["addresses"] if a[0] == "eth0"] == [
        ("eth0", "192.0.2.10/24", False),
        ("eth0", "192.0.2.11/24", True),
        ("eth0", "2001:db8::10/64", False),
    ]
    routes = {(r[0], r[1], r[2], r[3]) for r in state["routes"] if r[4] == "static"}
    assert routes == {
        ("default", "192.0.2.1", "eth0", 0),
        ("203.0.113.0/24", "198.51.100.1", "eth1", 20),
        ("2001:db8:100::/48", "2001:db8::1", "eth0", 1024),
    }
    assert helper.resolv.read_text().splitlines()[1:] == ["nameserver 192.0.2.53"]
    markers = sorted(p.name for p in helper.networkd.iterdir())
    assert markers == ["00-appliance-net-eth0.network", "00-appliance-net-eth1.network"]
    assert "Unmanaged=yes" in (helper.networkd / markers[0]).read_text()

    again = helper.cli("apply", config=config)
    assert again.returncode == 0, again.stderr
    assert "nothing changed" in again.stdout
    assert helper.cli("diff", config=config).stdout.strip() == "nothing to change"
    assert world.box.witness(["eth0", "eth1", "eth2"]) == state

    shown = helper.cli("show", "--json")
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["managed"] == ["eth0", "eth1"]
    assert {a["cidr"] for a in document["state"]["addresses"] if a["interface"] == "eth1"} >= {
        "198.51.100.10/24"
    }
    human = helper.cli("show")
    assert "eth0" in human.stdout and "192.0.2.11/24  (secondary)" in human.stdout

    rolled = helper.cli("rollback")
    assert rolled.returncode == 0, rolled.stderr
    assert world.box.witness(["eth0", "eth1", "eth2"]) == pristine, "rollback undoes the change"


def test_changing_addresses_and_routes(box: tuple[Lab, HelperProcess], tmp_path: Path) -> None:
    world, helper = box
    assert helper.cli("apply", config=write(tmp_path, network_toml(STATIC, ROUTES))).returncode == 0
    changed: list[dict[str, Any]] = [
        {"name": "eth0", "addresses": ["192.0.2.11/24", "2001:db8::20/64"]},
        {"name": "eth1", "enabled": False, "addresses": ["198.51.100.10/24"], "mtu": 1500},
    ]
    routes = [{"destination": "default", "gateway": "192.0.2.254", "metric": 5}]
    result = helper.cli("apply", config=write(tmp_path, network_toml(changed, routes), "b.toml"))
    assert result.returncode == 0, result.stderr
    state = world.box.witness(["eth0", "eth1"])
    assert [a for a in state["addresses"]] == [
        ("eth0", "192.0.2.11/24", False),
        ("eth0", "2001:db8::20/64", False),
        ("eth1", "198.51.100.10/24", False),
    ]
    assert ("eth1", False, 1500, 0, "") in state["links"]
    assert [r for r in state["routes"] if r[4] == "static"] == [
        ("default", "192.0.2.254", "eth0", 5, "static", "")
    ]
    assert "nothing to change" in helper.cli("diff", config=tmp_path / "b.toml").stdout


def test_try_not_confirmed_restores_state_exactly(
    box: tuple[Lab, HelperProcess], tmp_path: Path
) -> None:
    world, helper = box
    assert helper.cli("apply", config=write(tmp_path, network_toml(STATIC, ROUTES))).returncode == 0
    world.box.ip("route", "add", "192.0.2.128/25", "via", "192.0.2.1", "dev", "eth0")  # by hand
    before = world.box.witness()
    risky: list[dict[str, Any]] = [
        {"name": "eth0", "addresses": ["10.9.9.9/8"], "mtu": 1280},
        {"name": "eth1", "enabled": False},
        {"name": "eth2", "addresses": ["172.16.0.2/24"]},
    ]
    routes = [{"destination": "default", "gateway": "10.0.0.1"}]
    tried = helper.cli(
        "try", "--timeout", "2", config=write(tmp_path, network_toml(risky, routes), "t.toml")
    )
    assert tried.returncode == 0, tried.stderr
    assert "Rolls back at" in tried.stdout
    during = world.box.witness()
    assert during != before
    assert ("eth0", "10.9.9.9/8", False) in during["addresses"]
    helper.wait_log("rolling back the try", timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and world.box.witness() != before:
        time.sleep(0.1)
    assert world.box.witness() == before
    shown = json.loads(helper.cli("show", "--json").stdout)
    assert shown["last_rollback"]["exact"] is True
    assert (shown["pending"]["mode"], shown["pending"]["status"]) == ("apply", "done")
    assert "A try is pending" not in helper.cli("show").stdout
    assert "not confirmed within 2 s" in shown["last_rollback"]["reason"]


def test_try_then_confirm_keeps_the_change(box: tuple[Lab, HelperProcess], tmp_path: Path) -> None:
    world, helper = box
    tried = helper.cli(
        "try", "--timeout", "2", config=write(tmp_path, network_toml(STATIC, ROUTES))
    )
    assert tried.returncode == 0, tried.stderr
    confirmed = helper.cli("confirm")
    assert confirmed.returncode == 0, confirmed.stderr
    kept = world.box.witness()
    time.sleep(3)
    assert world.box.witness() == kept
    assert ("eth0", "192.0.2.10/24", False) in kept["addresses"]
    assert "rolling back" not in helper.log
    again = helper.cli("confirm")
    assert again.returncode == 1 and "no try is waiting" in again.stderr

    # The confirmed network is what a restart restores.
    helper.stop()
    world.box.ip("addr", "flush", "dev", "eth0")
    world.box.ip("link", "set", "eth1", "down")
    helper.start()
    assert world.box.witness() == kept


def test_kill_during_try_rolls_back_on_next_start(
    box: tuple[Lab, HelperProcess], tmp_path: Path
) -> None:
    world, helper = box
    first = [{"name": "eth0", "addresses": ["192.0.2.10/24"]}]
    pristine = world.box.witness()
    assert helper.cli("apply", config=write(tmp_path, network_toml(first))).returncode == 0
    before = world.box.witness()
    tried = helper.cli(
        "try", "--timeout", "600", config=write(tmp_path, network_toml(STATIC, ROUTES), "t.toml")
    )
    assert tried.returncode == 0, tried.stderr
    during = world.box.witness()
    assert during != before
    helper.kill9()
    assert world.box.witness() == during, "nothing is undone while the helper is dead"
    record = json.loads((helper.state / "net" / "rollback.json").read_text())
    assert record["status"] == "pending"
    helper.start()
    assert "the helper stopped during an unfinished try" in helper.log
    assert world.box.witness() == before
    record = json.loads((helper.state / "net" / "rollback.json").read_text())
    assert (record["mode"], record["status"]) == ("apply", "done"), "the apply's record is back"
    rolled = helper.cli("rollback")
    assert rolled.returncode == 0, rolled.stderr
    assert world.box.witness() == pristine
    assert not (helper.state / "net" / "rollback.json").exists()


def test_rollback_after_apply(box: tuple[Lab, HelperProcess], tmp_path: Path) -> None:
    world, helper = box
    before = world.box.witness()
    assert helper.cli("apply", config=write(tmp_path, network_toml(STATIC, ROUTES))).returncode == 0
    assert world.box.witness() != before
    rolled = helper.cli("rollback")
    assert rolled.returncode == 0, rolled.stderr
    assert "restored exactly" in rolled.stdout
    assert world.box.witness() == before
    nothing = helper.cli("rollback")
    assert nothing.returncode == 1 and "no change to roll back" in nothing.stderr


def test_try_while_another_is_pending_is_refused(
    box: tuple[Lab, HelperProcess], tmp_path: Path
) -> None:
    world, helper = box
    before = world.box.witness()
    config = write(tmp_path, network_toml(STATIC))
    assert helper.cli("try", "--timeout", "60", config=config).returncode == 0
    during = world.box.witness()
    other = write(tmp_path, network_toml([{"name": "eth2", "addresses": ["10.1.1.1/24"]}]), "o")
    again = helper.cli("apply", config=other)
    assert again.returncode == 1
    assert "a try is waiting for confirmation" in again.stderr
    assert world.box.witness() == during
    assert helper.cli("rollback").returncode == 0
    assert world.box.witness() == before


INVALID = [
    (
        [{"name": "eth0", "addresses": ["192.0.2.300/24"]}],
        [],
        2,
        "[[network.interfaces]] #1 addresses: expected element 1 to be an address with a prefix",
    ),
    (
        [{"name": "eth9", "addresses": ["192.0.2.10/24"]}],
        [],
        2,
        "[[network.interfaces]] #1 name: expected an interface of this box (eth0, eth1, eth2), "
        "found 'eth9'",
    ),
    (
        [{"name": "eth0", "addresses": ["192.0.2.10/24"]}],
        [{"destination": "default", "gateway": "198.51.100.1"}],
        2,
        "[[network.routes]] #1 gateway: expected a gateway inside a configured subnet",
    ),
    (
        [
            {"name": "eth0", "addresses": ["192.0.2.10/24"]},
            {"name": "eth1", "addresses": ["192.0.2.10/24"]},
        ],
        [],
        2,
        "[[network.interfaces]] #2 addresses: expected each address once, found 192.0.2.10 again",
    ),
    (
        [{"name": "eth0.7", "vlan_id": 7, "parent": "eth7", "addresses": ["192.0.2.10/24"]}],
        [],
        2,
        "[[network.interfaces]] #1 parent: expected an interface of this box",
    ),
    (
        [{"name": "lo", "addresses": ["127.0.0.2/8"]}],
        [],
        2,
        "[[network.interfaces]] #1 name: expected an interface other than lo",
    ),
]


@pytest.mark.parametrize(("interfaces", "routes", "status", "message"), INVALID)
def test_invalid_config_is_rejected_and_nothing_changes(
    box: tuple[Lab, HelperProcess],
    tmp_path: Path,
    interfaces: list[dict[str, object]],
    routes: list[dict[str, object]],
    status: int,
    message: str,
) -> None:
    world, helper = box
    before = world.box.witness()
    config = write(tmp_path, network_toml(interfaces, routes))
    for action in (["apply"], ["try", "--timeout", "5"], ["diff"]):
        result = helper.cli(*action, config=config)
        assert result.returncode == status, (action, result.stdout, result.stderr)
        assert message in result.stderr, result.stderr
        assert str(config) in result.stderr
    assert world.box.witness() == before
    assert not (helper.state / "net" / "rollback.json").exists()
    # The helper refuses it too when a client skips the local check.
    answer = helper.request({"op": "apply", "config": config.read_text(), "file": "x.toml"})
    assert answer["ok"] is False and answer["error"]["code"] == "invalid-config"
    assert any(message in p for p in answer["error"]["problems"])
    assert world.box.witness() == before


def test_conflicting_route_not_managed_is_named(
    box: tuple[Lab, HelperProcess], tmp_path: Path
) -> None:
    world, helper = box
    world.box.ip("link", "set", "eth2", "up")
    world.box.ip("addr", "add", "172.16.0.2/24", "dev", "eth2")
    world.box.ip("route", "add", "default", "via", "172.16.0.1", "dev", "eth2")
    before = world.box.witness()
    config = write(tmp_path, network_toml(STATIC, ROUTES))
    result = helper.cli("apply", config=config)
    assert result.returncode == 2
    assert "[[network.routes]] #1 destination: expected no other route" in result.stderr
    assert "default via 172.16.0.1 dev eth2" in result.stderr
    assert world.box.witness() == before


def test_failed_step_undoes_what_was_done(box: tuple[Lab, HelperProcess], tmp_path: Path) -> None:
    world, helper = box
    before = world.box.witness()
    world.box.sysctl("net.ipv6.conf.eth1.disable_ipv6", "1")  # the kernel will refuse IPv6 there
    interfaces: list[dict[str, Any]] = [
        {"name": "eth0", "addresses": ["192.0.2.10/24"], "mtu": 1400},
        {"name": "eth1", "addresses": ["198.51.100.10/24", "2001:db8:1::10/64"]},
    ]
    result = helper.cli("apply", config=write(tmp_path, network_toml(interfaces, ROUTES[:1])))
    assert result.returncode == 1
    assert "add address 2001:db8:1::10/64 to eth1" in result.stderr
    assert "were undone" in result.stderr
    assert "undone: remove address 192.0.2.10/24 from eth0" in result.stderr
    assert world.box.witness() == before
    assert not (helper.state / "net" / "rollback.json").exists()


def test_protocol_errors_are_answered(box: tuple[Lab, HelperProcess]) -> None:
    _, helper = box
    assert helper.request(b"not json\n")["error"]["code"] == "invalid-request"
    assert helper.request({"op": "format-disk"})["error"]["code"] == "invalid-request"
    assert helper.request({"op": "apply"})["error"]["code"] == "invalid-request"
    answer = helper.request({"op": "try", "config": "[network]\nmanage = true\n", "timeout": -1})
    assert "expected timeout from 1" in answer["error"]["message"]
    huge = helper.request(b'{"op": "show", "pad": "' + b"x" * (2 << 20) + b'"}\n')
    assert huge["error"]["code"] == "invalid-request"
    assert helper.request({"op": "show"})["ok"] is True, "the helper still serves"


def test_manage_false_is_explained(box: tuple[Lab, HelperProcess], tmp_path: Path) -> None:
    world, helper = box
    before = world.box.witness()
    config = write(tmp_path, network_toml(STATIC, manage=False))
    tried = helper.cli("try", config=config)
    assert tried.returncode == 1 and "manage is false" in tried.stderr
    diff = helper.cli("diff", config=config)
    assert diff.returncode == 0 and "nothing would change" in diff.stdout
    assert world.box.witness() == before


def test_unreachable_helper_is_reported(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "appliance", "net", "show", "--socket", str(tmp_path / "none.sock")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "cannot reach the network helper" in result.stderr


def test_socket_activation_and_peer_credentials(
    netns: Callable[[], Namespace], tmp_path: Path
) -> None:
    """systemd-socket-activate passes the socket (LISTEN_FDS); made world-writable, the
    peer-credential check still refuses an unprivileged user."""
    activate = shutil.which("systemd-socket-activate")
    assert activate is not None, "systemd-socket-activate (Debian: systemd) is needed"
    ns = netns()
    workdir = Path(tempfile.mkdtemp(prefix="netact-"))
    os.chmod(workdir, 0o755)
    path = workdir / "net.sock"
    proc = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            ns.name,
            activate,
            "-l",
            str(path),
            sys.executable,
            "-m",
            "appliance",
            "net-helper",
            "--state-dir",
            str(workdir / "state"),
            "--resolv-conf",
            str(workdir / "resolv.conf"),
            "--networkd-dir",
            str(workdir / "networkd"),
            "--group",
            "nogroup-x",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    ns.procs.append(proc)
    try:
        deadline = time.monotonic() + 10
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert path.exists()
        os.chmod(path, 0o666)  # as a careless SocketMode= would: the credentials check remains

        def ask_as_nobody() -> str:
            code = (
                "import os, socket, sys\n"
                "os.setgid(65534); os.setgroups([]); os.setuid(65534)\n"
                "s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
                's.sendall(b\'{"op": "show"}\\n\'); print(s.recv(65536).decode())\n'
            )
            result = subprocess.run(
                [sys.executable, "-c", code, str(path)],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert result.returncode == 0, result.stderr
            return result.stdout

        refused = json.loads(ask_as_nobody())
        assert refused["error"]["code"] == "forbidden"
        assert "uid 65534 may not use the network helper" in refused["error"]["message"]
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(30)
            sock.connect(str(path))
            sock.sendall(b'{"op": "show"}\n')
            reply = b""
            while not reply.endswith(b"\n"):
                reply += sock.recv(65536)
        assert json.loads(reply)["ok"] is True
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        shutil.rmtree(workdir, ignore_errors=True)
    assert proc.returncode == 0
