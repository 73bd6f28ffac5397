"""SIP benchmark: parser throughput, and REGISTER transactions per second over real UDP.

1. Parse + serialize: typical INVITE, 200 OK and REGISTER messages are parsed, their
   routing headers read (Via, From, To, Call-ID, CSeq), and written out again.
2. REGISTER load: the service runs as its own process (``python -m appliance run``) on
   loopback; sipp registers with digest authentication (REGISTER -> 401 -> REGISTER ->
   200: two transactions per registration) at a rate above what the box can take, for a
   fixed number of registrations. Reported: completed transactions per second, failures,
   and the box's CPU time per transaction (from /proc).

    .venv/bin/python bench/sip.py [--registrations 4000] [--rate 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from appliance.sip.message import parse_message

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "tests" / "sip" / "scenarios" / "register_auth.xml"

MESSAGES = [
    b"INVITE sip:alice@192.0.2.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\nTo: <sip:alice@192.0.2.1>\r\n"
    b'From: "Phone 1001" <sip:1001@192.0.2.1>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@192.0.2.10\r\nCSeq: 314159 INVITE\r\n"
    b"Contact: <sip:1001@192.0.2.10:5062>\r\nContent-Type: application/sdp\r\n"
    b"Content-Length: 142\r\n\r\n"
    b"v=0\r\no=1001 2890844526 2890844526 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\n"
    b"t=0 0\r\nm=audio 49170 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n",
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK776asdhds;rport=5062;received=192.0.2.10\r\n"
    b"To: <sip:alice@192.0.2.1>;tag=a6c85cf\r\n"
    b'From: "Phone 1001" <sip:1001@192.0.2.1>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@192.0.2.10\r\nCSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@192.0.2.1:5060>\r\nContent-Length: 0\r\n\r\n",
    b"REGISTER sip:192.0.2.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKnashds7;rport\r\n"
    b"Max-Forwards: 70\r\nTo: <sip:1001@192.0.2.1>\r\nFrom: <sip:1001@192.0.2.1>;tag=456248\r\n"
    b"Call-ID: 843817637684230@998sdasdh09\r\nCSeq: 1826 REGISTER\r\n"
    b"Contact: <sip:1001@192.0.2.10:5062>\r\nExpires: 7200\r\nContent-Length: 0\r\n\r\n",
]


def parse_throughput(seconds: float = 3.0) -> float:
    """Messages parsed, inspected and re-encoded per second."""
    count = 0
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < deadline:
        for data in MESSAGES:
            message = parse_message(data)
            _ = (
                message.top_via.branch,
                message.from_.tag,
                message.to.tag,
                message.call_id,
                message.cseq.number,
            )
            message.encode()
        count += len(MESSAGES)
    return count / (time.perf_counter() - start)


def free_port() -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def register_load(registrations: int, rate: int) -> dict[str, float]:
    if shutil.which("sipp") is None:
        raise SystemExit("bench/sip.py needs sipp (Debian: sip-tester)")
    with tempfile.TemporaryDirectory(prefix="bench-sip-") as tmp:
        port = free_port()
        config = Path(tmp) / "appliance.toml"
        config.write_text(f"""
[service]
state_dir = "{tmp}/state"
log_level = "warning"
[web]
addresses = ["127.0.0.1"]
port = {free_port()}
[sip]
addresses = ["127.0.0.1"]
udp_port = {port}
tcp_port = 0
tls_port = 0
[sip.registrar]
digest_algorithms = ["MD5", "SHA-256"]
[[sip.accounts]]
user = "1001"
password = "bench-secret"
[msrp]
port = {free_port()}
""")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(f"{tmp}/notify")
        notify.settimeout(30)
        env = dict(os.environ, NOTIFY_SOCKET=f"{tmp}/notify")
        box = subprocess.Popen(
            [sys.executable, "-m", "appliance", "run", "--config", str(config)],
            env=env,
            stderr=subprocess.DEVNULL,
        )
        try:
            while b"READY=1" not in notify.recv(4096):
                pass
            notify.close()
            cpu_before = cpu_seconds(box.pid)
            screen = Path(tmp) / "screen.log"
            started = time.perf_counter()
            sipp = subprocess.run(
                ["sipp", "-sf", str(SCENARIO), "-m", str(registrations), "-r", str(rate),
                 "-l", "400", "-i", "127.0.0.1", "-p", str(free_port()), "-t", "u1",
                 "-s", "1001", "-au", "1001", "-ap", "bench-secret", "-nostdin",
                 "-timeout", "120s", "-trace_screen", "-screen_file", str(screen),
                 f"127.0.0.1:{port}"],
                cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
            )  # fmt: skip
            elapsed = time.perf_counter() - started
            cpu = cpu_seconds(box.pid) - cpu_before
        finally:
            box.send_signal(signal.SIGTERM)
            box.wait(timeout=30)
        text = screen.read_text(errors="replace") if screen.exists() else ""
        ok = _count(text, "Successful call")
        failed = _count(text, "Failed call")
    transactions = 2 * ok
    return {
        "registrations_ok": ok,
        "registrations_failed": failed,
        "sipp_exit": sipp.returncode,
        "elapsed_s": round(elapsed, 2),
        "register_transactions_per_s": round(transactions / elapsed, 1),
        "box_cpu_ms_per_transaction": round(1000 * cpu / max(1, transactions), 3),
        "box_cpu_pct_of_one_core": round(100 * cpu / elapsed, 1),
    }


def _count(screen: str, label: str) -> int:
    matches = re.findall(rf"{label}\s*\|\s*\d+\s*\|\s*(\d+)", screen)
    return int(matches[-1]) if matches else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--registrations", type=int, default=4000)
    parser.add_argument("--rate", type=int, default=2000, help="sipp's offered rate (calls/s)")
    args = parser.parse_args()
    parsed = parse_throughput()
    print(f"parse + inspect + serialize: {parsed:,.0f} messages/s")
    load = register_load(args.registrations, args.rate)
    print(
        f"REGISTER with digest through UDP: {load['register_transactions_per_s']:,.0f} "
        f"transactions/s ({load['registrations_ok']} ok, {load['registrations_failed']} "
        f"failed, box CPU {load['box_cpu_ms_per_transaction']} ms per transaction)"
    )
    print(json.dumps({"parse_serialize_msgs_per_s": round(parsed), **load}))


if __name__ == "__main__":
    main()
