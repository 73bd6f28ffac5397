"""The service reacts to a real address change: SIP registers again upstream with the new
Contact, and the WebRTC host candidates follow (``appliance run`` in a namespace, sipp as the
upstream registrar in the peer namespace)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import free_port, write_config
from tests.net.conftest import Lab, Namespace, needs_netns

pytestmark = [
    needs_netns,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="needs sipp (Debian: sip-tester)"),
]

SCENARIO = Path(__file__).parent / "scenarios" / "registrar_sees_new_contact.xml"
TOKEN = "net-reactions-scrape-token-0123456789"
REFRESH_LATEST = 10.0
"""The registration asks for 600 s: a REGISTER sooner than this after the change is the
reaction to it, not a refresh (RFC 3261 §10.2.4)."""

FETCH = (
    "import ssl, sys, urllib.request\n"
    "request = urllib.request.Request(sys.argv[1] + '/metrics')\n"
    "request.add_header('Authorization', 'Bearer ' + sys.argv[2])\n"
    "ctx = ssl._create_unverified_context()\n"
    "sys.stdout.write(urllib.request.urlopen(request, context=ctx).read().decode())\n"
)


def metrics(box: Namespace, port: int) -> str:
    result = box.exec(sys.executable, "-c", FETCH, f"https://127.0.0.1:{port}", TOKEN)
    return result.stdout if result.returncode == 0 else ""


def wait_metrics(box: Namespace, port: int, pattern: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = metrics(box, port)
        if re.search(pattern, text, re.MULTILINE):
            return text
        assert time.monotonic() < deadline, f"no {pattern!r} in /metrics:\n{text}"
        time.sleep(0.2)


def host_candidates(text: str) -> set[str]:
    return set(re.findall(r'^appliance_webrtc_host_address\{address="([^"]+)"\} 1', text, re.M))


def test_address_change_reregisters_and_refreshes_host_candidates(
    lab: Callable[..., Lab], tmp_path: Path
) -> None:
    world = lab("eth0")
    box, peer = world.box, world.peer
    peer.ip("addr", "add", "10.77.0.1/24", "dev", "p0")
    box.sysctl("net.ipv4.conf.eth0.promote_secondaries", "1")
    box.ip("addr", "add", "10.77.0.2/24", "dev", "eth0")
    box.ip("link", "set", "eth0", "up")

    traces = Path(tempfile.mkdtemp(prefix="sipp-", dir=tmp_path))
    registrar = subprocess.Popen(
        ["ip", "netns", "exec", peer.name, "sipp", "-sf", str(SCENARIO), "-m", "1",
         "-i", "10.77.0.1", "-p", "5060", "-t", "u1", "-nostdin", "-timeout", "120s",
         "-timeout_error", "-trace_err", "-error_file", str(traces / "errors.log"),
         "-trace_msg", "-message_file", str(traces / "messages.log")],
        cwd=traces, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    peer.procs.append(registrar)
    deadline = time.monotonic() + 10
    while ":5060" not in peer.exec("ss", "-Hunl").stdout:
        assert registrar.poll() is None, registrar.communicate()[1]
        assert time.monotonic() < deadline, "sipp does not listen on 10.77.0.1:5060"
        time.sleep(0.05)

    port = free_port()
    config = write_config(
        tmp_path / "appliance.toml",
        tmp_path / "state",
        web={"addresses": ["127.0.0.1"], "port": port, "metrics_token": TOKEN},
        sip={
            "addresses": [],
            "udp_port": 5060,
            "tcp_port": 0,
            "tls_port": 0,
            "upstream": {
                "enabled": True,
                "registrar": "sip:10.77.0.1:5060",
                "expires": 600,
                "keepalive_interval": 0,
            },
        },
        network={"helper_socket": str(tmp_path / "no-helper.sock")},
    )
    service = subprocess.Popen(
        ["ip", "netns", "exec", box.name, sys.executable, "-m", "appliance", "run",
         "--config", str(config)],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    box.procs.append(service)
    try:
        before = wait_metrics(
            box, port, r'^appliance_sip_upstream_registered\{aor="[^"]+"\} 1$', timeout=60
        )
        assert host_candidates(before) == {"10.77.0.2"}

        box.ip("addr", "add", "10.77.0.3/24", "dev", "eth0")
        box.ip("addr", "del", "10.77.0.2/24", "dev", "eth0")
        changed = time.monotonic()
        _, errors = registrar.communicate(timeout=REFRESH_LATEST + 5)
        reacted = time.monotonic() - changed
        trace = "\n".join(p.read_text(errors="replace") for p in sorted(traces.glob("*.log")))
        assert registrar.returncode == 0, errors + trace
        assert reacted < REFRESH_LATEST, f"registered again only after {reacted:.1f} s"

        after = wait_metrics(
            box, port, r'^appliance_webrtc_host_address\{address="10\.77\.0\.3"\} 1$', timeout=5
        )
        assert host_candidates(after) == {"10.77.0.3"}
    finally:
        service.terminate()
        _, log = service.communicate(timeout=30)
    assert service.returncode == 0, log
    assert "network: 10.77.0.3/24 added to eth0" in log
    assert "ICE host candidates: 10.77.0.3" in log


OFFER = """
import asyncio, sys
from aiortc import RTCPeerConnection
from appliance.config.schema import WebRtcConfig
from appliance.runtime.metrics import Metrics
from appliance.webrtc.hooks import set_host_addresses
from appliance.webrtc.host_addresses import HostAddresses

async def offer():
    pc = RTCPeerConnection()
    pc.addTransceiver("audio")
    await pc.setLocalDescription(await pc.createOffer())
    lines = pc.localDescription.sdp.splitlines()
    await pc.close()
    return sorted({l.split()[4] for l in lines if l.startswith("a=candidate:") and "typ host" in l})

async def main():
    hosts = HostAddresses(WebRtcConfig(), Metrics())
    hosts.attach(set_host_addresses)  # as the call manager does once the stack is loaded
    for _ in sys.stdin:
        changed = hosts.refresh()
        print(changed, *await offer(), flush=True)

asyncio.run(main())
"""


def test_browsers_are_offered_the_current_addresses(lab: Callable[..., Lab]) -> None:
    """aiortc's offers carry the host candidates HostAddresses read at its last refresh."""
    world = lab("eth0")
    box = world.box
    box.sysctl("net.ipv4.conf.eth0.promote_secondaries", "1")
    box.ip("addr", "add", "10.77.0.2/24", "dev", "eth0")
    box.ip("link", "set", "eth0", "up")
    proc = subprocess.Popen(
        ["ip", "netns", "exec", box.name, sys.executable, "-c", OFFER],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    box.procs.append(proc)
    assert proc.stdin is not None and proc.stdout is not None

    def refresh() -> str:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("refresh\n")
        proc.stdin.flush()
        return proc.stdout.readline().strip()

    assert refresh() == "True 10.77.0.2"
    box.ip("addr", "add", "10.77.0.3/24", "dev", "eth0")
    box.ip("addr", "del", "10.77.0.2/24", "dev", "eth0")
    assert refresh() == "True 10.77.0.3"
    assert refresh() == "False 10.77.0.3", "nothing changed, nothing to report"
    box.ip("addr", "del", "10.77.0.3/24", "dev", "eth0")
    assert refresh() == "True", "no address: no host candidate"
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0, proc.communicate()[1]
