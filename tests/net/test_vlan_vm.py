"""Runs test_vlan.py in a VM on Debian's kernel when this kernel has no 802.1Q support."""

from __future__ import annotations

import platform
import re
from pathlib import Path

import pytest

from tests.net.conftest import needs_netns
from tests.net.test_vlan import HAS_VLANS
from tests.net.vm import ROOT, VmParts, run_in_vm, vm_parts

pytestmark = [
    needs_netns,
    pytest.mark.slow,
    pytest.mark.skipif(HAS_VLANS, reason="this kernel has 802.1Q: test_vlan.py runs natively"),
    pytest.mark.skipif(platform.machine() != "x86_64", reason="the VM is amd64 (qemu-system-x86)"),
]


def test_vlan_tests_pass_in_a_vm(tmp_path: Path) -> None:
    parts = vm_parts()
    if not isinstance(parts, VmParts):
        pytest.fail(f"needs {parts}")  # CI provides them: a skip would hide the VLAN tests
    command = (
        f"cd {ROOT} && env PYTHONDONTWRITEBYTECODE=1 {ROOT}/.venv/bin/python -m pytest "
        "-p no:cacheprovider -p no:hypothesispytest --confcutdir=tests/net --color=no -q -rs "
        "tests/net/test_vlan.py"
    )
    status, console = run_in_vm(parts, command, tmp_path, timeout=900)
    assert status == 0, console[-6000:]
    summary = re.search(r"(\d+) passed", console)
    assert summary and int(summary.group(1)) == 2, console[-6000:]
    assert "skipped" not in console and "failed" not in console, console[-6000:]
