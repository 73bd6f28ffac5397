"""The appliance image: built by ``./build.sh image`` and booted under qemu to a ready service.

amd64: the whole image boots (its own kernel, initramfs, fstab and units) on a card larger
than the image; first boot grows the data partition, the service comes up, says READY to
systemd, serves HTTPS, and the first operator's password shown on the console logs in. The
plug is pulled and the card boots again: nothing is regenerated. arm64: the Raspberry Pi
boot partition and root file system are checked, and the same root boots on ``-M virt``.
Two builds of the same commit are compared (reproducibility).
"""

from __future__ import annotations

import http.client
import json
import re
import ssl
import subprocess
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.image.conftest import FIGURES, Built
from tests.image.vm import Boot, copy_disk, missing_for

pytestmark = pytest.mark.slow

READY = r"appliance\.service is ready \(running\)"
"""Printed by appliance-console-banner.service, ordered after appliance.service (Type=notify):
systemd starts it only once the service has sent READY=1."""
FIRSTBOOT = r"appliance-firstboot: data partition \S+: (\d+) MiB -> (\d+) MiB"
OPERATOR = r"User name: (\S+)[\s\S]{0,80}?Password: (\S+)"
GROW_MIB = 512
READY_WITHIN = {"amd64": 420.0, "arm64": 900.0}
"""Bounds for software emulation on a busy two-core machine (typically far less)."""


def _need_qemu(arch: str) -> None:
    missing = missing_for(arch)
    if missing:
        pytest.skip(f"booting the {arch} image needs {missing}")


def _https(port: int, method: str, path: str, body: str = "", headers: dict[str, str] | None = None
           ) -> tuple[int, dict[str, str], str]:  # fmt: skip
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the box's first-start certificate is self-signed
    connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=60, context=context)
    try:
        connection.request(method, path, body=body or None, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        connection.close()


def _certificate(port: int) -> str:
    return ssl.get_server_certificate(("127.0.0.1", port), timeout=60)


def _wait_https(boot: Boot, timeout: float = 120.0) -> tuple[int, str]:
    """/healthz once the forwarded port answers (DHCP and the listener may lag READY)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, _, body = _https(boot.https_port, "GET", "/healthz")
            return status, body
        except (OSError, http.client.HTTPException):
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def _no_failed_units(console: str) -> None:
    failed = [
        line for line in console.splitlines() if "FAILED" in line or "Failed to start" in line
    ]
    assert not failed, "\n".join(failed)


def test_amd64_image_boots_to_a_ready_service_and_survives_a_power_cut(
    build_image: Callable[[str, str], Built], tmp_path: Path
) -> None:
    _need_qemu("amd64")
    built = build_image("amd64", "a")
    card = copy_disk(built.image, tmp_path / "card.img", grow_mib=GROW_MIB)

    first = Boot("amd64", card, tmp_path / "boot1")
    first.workdir.mkdir()
    first.start()
    try:
        grown, _ = first.wait_for(FIRSTBOOT, READY_WITHIN["amd64"])
        before, after = int(grown.group(1)), int(grown.group(2))
        assert after >= before + GROW_MIB - 8, grown.group(0)
        _, ready_at = first.wait_for(READY, READY_WITHIN["amd64"])
        operator, _ = first.wait_for(OPERATOR, 120)
        name, password = operator.group(1), operator.group(2)
        assert name == "operator" and len(password) >= 20

        status, body = _wait_https(first)
        assert status == 200, body
        health = json.loads(body)
        assert health["status"] == "ok", body

        status, _, page = _https(first.https_port, "GET", "/login")
        assert status == 200 and 'name="password"' in page
        form = urllib.parse.urlencode({"name": name, "password": password, "next": "/"})
        status, headers, _ = _https(
            first.https_port, "POST", "/login", form,
            {"Content-Type": "application/x-www-form-urlencoded"},
        )  # fmt: skip
        assert status == 303, headers
        assert "HttpOnly" in headers.get("Set-Cookie", ""), headers
        certificate = _certificate(first.https_port)
        _no_failed_units(first.console())
    finally:
        first.power_off()

    second = Boot("amd64", card, tmp_path / "boot2")
    second.workdir.mkdir()
    second.start()
    try:
        second.wait_for(READY, READY_WITHIN["amd64"])
        again, _ = second.wait_for(OPERATOR, 120)
        assert again.group(2) == password, "the first operator's password was made again"
        assert re.search(FIRSTBOOT, second.console()) is None, "first boot ran twice"
        _wait_https(second)
        assert _certificate(second.https_port) == certificate, "the TLS certificate was made again"
        _no_failed_units(second.console())
    finally:
        second.power_off()
    FIGURES.append(f"amd64 first boot: READY {ready_at:.1f} s after qemu started (TCG)")


def _partitions(image: Path) -> dict[str, object]:
    result = subprocess.run(
        ["sfdisk", "--json", str(image)], capture_output=True, text=True, check=True, timeout=60
    )
    table: dict[str, object] = json.loads(result.stdout)["partitiontable"]
    return table


def _mtype(image: Path, offset: int, name: str) -> str:
    result = subprocess.run(
        ["mtype", "-i", f"{image}@@{offset}", f"::/{name}"],
        capture_output=True, text=True, check=True, timeout=60,
        env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    return result.stdout


def _debugfs(partition: Path, request: str) -> str:
    result = subprocess.run(
        ["debugfs", "-R", request, str(partition)], capture_output=True, text=True, check=True,
        timeout=60,
    )  # fmt: skip
    return result.stdout


def test_arm64_image_is_a_raspberry_pi_card_and_its_root_boots(
    build_image: Callable[[str, str], Built], tmp_path: Path
) -> None:
    built = build_image("arm64", "a")
    table = _partitions(built.image)
    assert table["label"] == "dos" and table["id"] == "0x5afe7e57"
    parts = table["partitions"]
    assert isinstance(parts, list)
    assert [p["type"] for p in parts] == ["c", "83", "83"]
    boot = parts[0]["start"] * 512

    listing = subprocess.run(
        ["mdir", "-b", "-i", f"{built.image}@@{boot}", "::/"],
        capture_output=True, text=True, check=True, timeout=60,
        env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"},
    ).stdout  # fmt: skip
    for name in ("config.txt", "cmdline.txt", "start4.elf", "bootcode.bin", "vmlinuz",
                 "initrd.img", "bcm2837-rpi-3-b.dtb", "bcm2711-rpi-4-b.dtb"):  # fmt: skip
        assert f"::/{name}" in listing, f"{name} missing from the boot partition:\n{listing}"
    config = _mtype(built.image, boot, "config.txt")
    assert "dtparam=watchdog=on" in config.splitlines()
    assert "enable_uart=1" in config.splitlines()
    cmdline = _mtype(built.image, boot, "cmdline.txt").split()
    assert "root=PARTUUID=5afe7e57-02" in cmdline
    assert "console=ttyS1,115200" in cmdline
    assert cmdline[-1] == "ro" and not any(w.startswith("cma=") for w in cmdline)

    root = tmp_path / "root.ext4"
    subprocess.run(
        ["dd", f"if={built.image}", f"of={root}", "bs=512", f"skip={parts[1]['start']}",
         f"count={parts[1]['size']}", "conv=sparse", "status=none"],
        check=True, timeout=300,
    )  # fmt: skip
    assert "appliance" in _debugfs(root, "ls -l /opt/appliance/venv/bin")
    wants = _debugfs(root, "ls /etc/systemd/system/multi-user.target.wants")
    for unit in ("appliance.service", "appliance-net.service", "appliance-console-banner.service"):
        assert unit in wants, wants
    wheel = _debugfs(
        root,
        "cat /opt/appliance/venv/lib/python3.11/site-packages/cryptography-50.0.2.dist-info/WHEEL",
    )
    assert "aarch64" in wheel, wheel
    watchdog = _debugfs(root, "cat /etc/systemd/system.conf.d/50-appliance-watchdog.conf")
    assert "RuntimeWatchdogSec=15s" in watchdog

    _need_qemu("arm64")
    card = copy_disk(built.image, tmp_path / "card.img", grow_mib=GROW_MIB)
    vm = Boot("arm64", card, tmp_path / "boot")
    vm.workdir.mkdir()
    vm.start()
    try:
        vm.wait_for(FIRSTBOOT, READY_WITHIN["arm64"])
        _, ready_at = vm.wait_for(READY, READY_WITHIN["arm64"])
        status, body = _wait_https(vm, 300)
        assert status == 200 and json.loads(body)["status"] == "ok", body
        _no_failed_units(vm.console())
    finally:
        vm.power_off()
    FIGURES.append(f"arm64 first boot (-M virt): READY {ready_at:.1f} s after qemu started (TCG)")


def test_two_builds_of_one_commit_have_the_same_packages_and_files(
    build_image: Callable[[str, str], Built],
) -> None:
    first = build_image("amd64", "a")
    second = build_image("amd64", "b")
    assert first.packages.read_text() == second.packages.read_text()
    assert first.files.read_text() == second.files.read_text()
    differing = _differing_bytes(first.image, second.image)
    FIGURES.append(
        "two amd64 builds: same packages and files; images "
        + ("bit-identical" if differing == 0 else f"differ in {differing} bytes")
    )


def _differing_bytes(a: Path, b: Path) -> int:
    """How many bytes differ between two files of one size (cmp -l)."""
    result = subprocess.run(
        ["cmp", "-l", str(a), str(b)], capture_output=True, text=True, check=False, timeout=600
    )
    return len(result.stdout.splitlines())
