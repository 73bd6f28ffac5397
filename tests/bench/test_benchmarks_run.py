"""The benchmarks still run and end with their JSON figures (no timing is asserted here)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"

pytestmark = pytest.mark.slow


def test_startup_benchmark_reports_its_figures() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "startup.py"), "--runs", "1", "--idle", "0.5"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["runs"] == 1
    assert figures["startup_to_ready_s_median"] > 0
    assert figures["idle_rss_mb_median"] > 0
    assert set(figures) >= {"ratio_ready_to_goal", "ratio_rss_to_goal", "sigterm_to_exit_s_median"}


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="bench/net.py needs root and util-linux (setpriv) for network namespaces",
)
def test_net_benchmark_reports_its_figures() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "net.py"), "--runs", "1", "--cli-runs", "1", "--no-vm"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["runs"] == 1
    prefix = "" if figures["vlans_measured_on"] == "native" else "native_plain_"
    assert figures[prefix + "steps"] >= 17
    assert figures[prefix + "apply_ms_median"] > 0
    assert figures[prefix + "rollback_ms_median"] > 0
    assert figures[prefix + "cli_apply_s_median"] > 0
