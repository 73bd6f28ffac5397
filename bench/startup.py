"""Startup benchmark: time from process start to READY=1, and idle memory.

Starts ``python -m appliance run`` on a loopback config (fresh state directory, so the
first run includes making the certificate) with a real sd_notify socket, measures the
time from spawn to READY=1, lets it idle, reads VmRSS from /proc, and stops it with
SIGTERM, timing that too. Prints a table and, last, one line of JSON.

    .venv/bin/python bench/startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_READY_S = 1.5
GOAL_RSS_MB = 80.0


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(directory: Path) -> Path:
    path = directory / "appliance.toml"
    path.write_text(
        f"""
[service]
state_dir = "{directory / "state"}"
[web]
addresses = ["127.0.0.1"]
port = {free_port()}
[sip]
addresses = ["127.0.0.1"]
udp_port = {free_port(socket.SOCK_DGRAM)}
tcp_port = {free_port()}
tls_port = {free_port()}
[msrp]
port = {free_port()}
"""
    )
    return path


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def one_run(directory: Path, idle: float) -> dict[str, float]:
    config = write_config(directory)
    notify_path = directory / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_path))
    sock.settimeout(30)
    env = dict(os.environ, NOTIFY_SOCKET=str(notify_path))
    env.pop("WATCHDOG_USEC", None)
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "appliance", "run", "--config", str(config)],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            data = sock.recv(4096).decode()
            if "READY=1" in data.split("\n"):
                ready = time.perf_counter() - started
                break
        time.sleep(idle)
        rss = rss_mb(proc.pid)
        stop_sent = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        stopped = time.perf_counter() - stop_sent
        if code != 0:
            raise RuntimeError(f"service exited with {code}")
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
    return {"ready_s": ready, "rss_mb": rss, "stop_s": stopped}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--idle", type=float, default=3.0, help="seconds idle before RSS")
    args = parser.parse_args()
    results = []
    for index in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
            result = one_run(Path(tmp), args.idle)
        results.append(result)
        print(
            f"run {index + 1}: READY after {result['ready_s']:.3f} s, idle RSS "
            f"{result['rss_mb']:.1f} MB, stopped in {result['stop_s']:.3f} s"
        )
    ready = [r["ready_s"] for r in results]
    rss = [r["rss_mb"] for r in results]
    stop = [r["stop_s"] for r in results]
    summary = {
        "runs": args.runs,
        "startup_to_ready_s_median": round(statistics.median(ready), 3),
        "startup_to_ready_s_max": round(max(ready), 3),
        "idle_rss_mb_median": round(statistics.median(rss), 1),
        "sigterm_to_exit_s_median": round(statistics.median(stop), 3),
        "ratio_ready_to_goal": round(statistics.median(ready) / GOAL_READY_S, 2),
        "ratio_rss_to_goal": round(statistics.median(rss) / GOAL_RSS_MB, 2),
    }
    print(f"goal: READY <= {GOAL_READY_S} s, idle RSS <= {GOAL_RSS_MB} MB")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
