"""The network helper's units: verify is silent, exposure stays low, the privilege split holds."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from appliance.config.schema import NetworkConfig
from appliance.net.defaults import DEFAULT_NETWORKD, DEFAULT_SOCKET
from tests.systemd.test_unit import EXPOSURE_LIMIT, _system_units_dir

SYSTEMD = Path(__file__).resolve().parents[2] / "systemd"
UNITS = [
    "appliance-net.socket",
    "appliance-net.service",
    "appliance-net-networkd.path",
    "appliance-net-networkd.service",
]

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="needs systemd-analyze (Debian: systemd)"
)


def directives(name: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for raw in (SYSTEMD / name).read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value)
    return out


def test_verify_prints_nothing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(_system_units_dir(), root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    for name in [*UNITS, "appliance.service"]:
        shutil.copy(SYSTEMD / name, root / "etc/systemd/system" / name)
    for name in ("appliance-net.service", "appliance-net-networkd.service"):
        binary = root / directives(name)["ExecStart"][0].split()[0].lstrip("/")
        binary.parent.mkdir(parents=True, exist_ok=True)
        binary.write_text("#!/bin/sh\n")
        binary.chmod(0o755)
    result = subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", *UNITS],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and result.stdout == ""


@pytest.mark.parametrize("name", ["appliance-net.service", "appliance-net-networkd.service"])
def test_exposure_score(name: str) -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(SYSTEMD / name)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= EXPOSURE_LIMIT, result.stdout


def test_privilege_split() -> None:
    helper = directives("appliance-net.service")
    assert helper["User"] == ["appliance-net"]
    assert helper["CapabilityBoundingSet"] == ["CAP_NET_ADMIN CAP_NET_RAW"]
    assert helper["AmbientCapabilities"] == ["CAP_NET_ADMIN CAP_NET_RAW"]
    assert helper["RestrictAddressFamilies"] == ["AF_UNIX AF_NETLINK AF_PACKET"]
    assert helper["IPAddressDeny"] == ["any"]
    assert helper["Type"] == ["notify"]
    assert "appliance net-helper" in helper["ExecStart"][0]
    socket = directives("appliance-net.socket")
    assert socket["ListenStream"] == ["/run/appliance-net/net.sock"]
    assert socket["SocketMode"] == ["0660"]
    assert socket["SocketGroup"] == ["appliance"]
    main = directives("appliance.service")
    assert main["CapabilityBoundingSet"] == [""], "the call-bridging service holds no capability"
    assert "AF_NETLINK" in main["RestrictAddressFamilies"][0], "read-only link monitoring"
    sysusers = (SYSTEMD / "appliance-net.sysusers").read_text()
    assert "u appliance-net " in sysusers


def test_default_socket_path_matches_the_unit() -> None:
    assert NetworkConfig().helper_socket == str(DEFAULT_SOCKET)
    assert directives("appliance-net.socket")["ListenStream"] == [str(DEFAULT_SOCKET)]
    assert directives("appliance-net-networkd.path")["PathChanged"] == [str(DEFAULT_NETWORKD)]
