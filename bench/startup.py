"""Startup benchmark: time from process start to READY=1, and idle memory.

Starts ``python -m appliance run`` on a loopback config (fresh state directory, so the
first run includes making the certificate) with a real sd_notify socket, measures the
time from spawn to READY=1, lets it idle, and reads VmRSS from /proc: the idle box, with
no call-taker's page connected. Then a page logs in over HTTPS and opens the WebSocket
API, which makes the box load its WebRTC stack (aiortc, PyAV) for that page's calls; the
time that takes and VmRSS after it are reported too. Last the service is stopped with
SIGTERM, timed. Prints a table and, last, one line of JSON.

    .venv/bin/python bench/startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import re
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from appliance.auth.passwords import hash_password

GOAL_READY_S = 1.5
GOAL_RSS_MB = 80.0
PASSWORD = "startup-bench-password"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(directory: Path) -> tuple[Path, int]:
    """A loopback config and its web port."""
    path = directory / "appliance.toml"
    web_port = free_port()
    path.write_text(
        f"""
[service]
state_dir = "{directory / "state"}"
[web]
addresses = ["127.0.0.1"]
port = {web_port}
[sip]
addresses = ["127.0.0.1"]
udp_port = {free_port(socket.SOCK_DGRAM)}
tcp_port = {free_port()}
tls_port = {free_port()}
[msrp]
port = {free_port()}

[[operators]]
name = "desk"
password_hash = "{hash_password(PASSWORD)}"
"""
    )
    return path, web_port


async def connect_page(port: int, cafile: Path, log: Path) -> float:
    """Log in and open the WebSocket API as a page; seconds the box took to load its
    WebRTC stack (from its log line)."""
    base = f"https://localhost:{port}"
    context = ssl.create_default_context(cafile=str(cafile))
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        reply = await client.post(
            base + "/login", data={"name": "desk", "password": PASSWORD},
            headers={"Origin": base}, ssl=context, allow_redirects=False,
        )  # fmt: skip
        if reply.status != 303:
            raise RuntimeError(f"login answered {reply.status}")
        async with client.ws_connect(
            base + "/api/v1/ws", ssl=context, headers={"Origin": base}
        ) as ws:
            await ws.receive_json(timeout=10)  # welcome
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                text = await asyncio.to_thread(log.read_text)
                found = re.search(r"WebRTC stack loaded in ([0-9.]+) s", text)
                if found:
                    return float(found.group(1))
                await asyncio.sleep(0.05)
    raise RuntimeError("the WebRTC stack did not load within 60 s")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def one_run(directory: Path, idle: float) -> dict[str, float]:
    config, web_port = write_config(directory)
    notify_path = directory / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_path))
    sock.settimeout(30)
    env = dict(os.environ, NOTIFY_SOCKET=str(notify_path))
    env.pop("WATCHDOG_USEC", None)
    log = directory / "service.log"
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "appliance", "run", "--config", str(config)],
        env=env,
        stderr=log.open("w"),
    )
    try:
        while True:
            data = sock.recv(4096).decode()
            if "READY=1" in data.split("\n"):
                ready = time.perf_counter() - started
                break
        time.sleep(idle)
        rss = rss_mb(proc.pid)
        load = asyncio.run(connect_page(web_port, directory / "state" / "tls" / "web.crt", log))
        time.sleep(idle)
        rss_page = rss_mb(proc.pid)
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
    return {
        "ready_s": ready, "rss_mb": rss, "stop_s": stopped, "load_s": load, "rss_page_mb": rss_page,
    }  # fmt: skip


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
            f"{result['rss_mb']:.1f} MB; a page connected: WebRTC stack loaded in "
            f"{result['load_s']:.2f} s, RSS {result['rss_page_mb']:.1f} MB; "
            f"stopped in {result['stop_s']:.3f} s"
        )
    ready = [r["ready_s"] for r in results]
    rss = [r["rss_mb"] for r in results]
    stop = [r["stop_s"] for r in results]
    service_py = Path(__file__).resolve().parents[1] / "appliance" / "service.py"
    cached = Path(importlib.util.cache_from_source(str(service_py))).exists()
    summary = {
        "runs": args.runs,
        "bytecode_cached": cached,  # as on the box, where the image compiles it
        "startup_to_ready_s_median": round(statistics.median(ready), 3),
        "startup_to_ready_s_max": round(max(ready), 3),
        "idle_rss_mb_median": round(statistics.median(rss), 1),
        "webrtc_stack_load_s_median": round(statistics.median(r["load_s"] for r in results), 2),
        "rss_with_page_mb_median": round(statistics.median(r["rss_page_mb"] for r in results), 1),
        "sigterm_to_exit_s_median": round(statistics.median(stop), 3),
        "ratio_ready_to_goal": round(statistics.median(ready) / GOAL_READY_S, 2),
        "ratio_rss_to_goal": round(statistics.median(rss) / GOAL_RSS_MB, 2),
    }
    if not cached:
        print(
            "note: appliance/ has no cached bytecode (PYTHONDONTWRITEBYTECODE?), compiled at start"
        )
    print(f"goal: READY <= {GOAL_READY_S} s, idle RSS (no page connected) <= {GOAL_RSS_MB} MB")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
