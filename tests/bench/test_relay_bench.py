"""bench/relay.py runs end to end and reports sane figures (no timing is asserted here)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="needs sipp (Debian: sip-tester)"),
]


def test_relay_benchmark_bridges_a_call_and_reports_its_figures() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "relay.py"), "--calls", "1", "--seconds", "3",
         "--warmup", "0.5"],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["calls"] == 1
    # One call carries 50 packets/s each way: a 3 s window sends about 150 of them.
    assert 100 <= figures["box_sent"] <= 200
    assert 100 <= figures["bare_sent"] <= 200
    assert 100 <= figures["uvloop_sent"] <= 200  # the forwarder on the box's event loop
    for key in ("box_loss_pct", "bare_loss_pct", "direct_loss_pct"):
        assert isinstance(figures[key], float), key
        assert 0.0 <= figures[key] <= 100.0, key
    assert figures["cpu_pct_per_call"] > 0
    assert figures["bare_cpu_pct_per_call"] > 0
    assert figures["uvloop_cpu_pct_per_call"] > 0
    assert figures["box_altered"] == 0  # payloads pass the relay untouched
    assert figures["box_calls_ended_early"] == 0
    relayed = figures["box_relayed_in_window"]
    assert relayed["browser_to_phone"] > 0 and relayed["phone_to_browser"] > 0
    for key in ("box_added_latency_ms_p50", "box_added_latency_ms_p99"):
        assert isinstance(figures[key], float), key
    assert figures["box_added_latency_ms_p99"] >= figures["box_added_latency_ms_p50"]
    assert isinstance(figures["ratio_vs_udp_forwarder"], float)
    assert isinstance(figures["ratio_vs_uvloop_forwarder"], float)
    for key in ("box_user_share", "bare_user_share", "uvloop_user_share"):
        assert figures[key] is None or 0.0 <= figures[key] <= 1.0, key
    assert figures["box_user_share"] is not None  # the box surely used a clock tick in 3 s
    assert {"goal_cpu_met", "goal_ratio_met", "goal_loss_met"} <= set(figures)
