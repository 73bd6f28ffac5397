"""Network benchmark: apply a 4-interface config with VLANs and routes, and roll it back.

A box namespace gets veth links to a peer namespace (eth0, eth1) and the config names four
interfaces: eth0 and eth1 with IPv4 and IPv6 addresses, the 802.1Q VLANs eth0.20 and eth0.30
on eth0, and four routes (default, two IPv4, one IPv6). ``appliance net-helper`` runs in
the box namespace as appliance-net.service runs it (a plain user with CAP_NET_ADMIN and
CAP_NET_RAW); each run sends, through its socket, ``apply`` (timed to the answer), the same
``apply`` again (nothing to do), and ``rollback`` (timed; the state before must come back
exactly). Last, ``appliance net apply`` and ``appliance net rollback`` are timed end to end,
CLI process start included, as a field technician runs them.

On a kernel without 802.1Q the VLAN config runs in the test VM (``tests/net/vm.py``:
Debian's kernel under qemu without KVM, so many times slower than real hardware), and on
this kernel a "plain" variant with two more veths in place of the VLANs gives the native
figures; the VM also runs the plain variant, which measures its slowdown.

    .venv/bin/python bench/net.py [--runs 7] [--no-vm]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import tomlkit

ROOT = Path(__file__).resolve().parents[1]
NOBODY = 65534
UNPRIVILEGED = [
    "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
    "--inh-caps=-all,+net_admin,+net_raw", "--ambient-caps=-all,+net_admin,+net_raw",
    "--bounding-set=-all,+net_admin,+net_raw",
]  # fmt: skip

ROUTES: list[dict[str, Any]] = [
    {"destination": "default", "gateway": "192.0.2.1"},
    {"destination": "10.99.0.0/16", "gateway": "10.20.0.254"},
    {"destination": "203.0.113.0/24", "gateway": "198.51.100.1", "metric": 20},
    {"destination": "2001:db8:100::/48", "gateway": "2001:db8::1"},
]


def interfaces(variant: str) -> list[dict[str, Any]]:
    """The four interfaces: two VLANs on eth0 ("vlan") or two more veths ("plain")."""
    third: dict[str, Any] = {"addresses": ["10.20.0.1/24"], "mtu": 1400}
    fourth: dict[str, Any] = {"addresses": ["10.30.0.1/24", "2001:db8:30::1/64"]}
    if variant == "vlan":
        third |= {"name": "eth0.20", "parent": "eth0", "vlan_id": 20}
        fourth |= {"name": "eth0.30", "parent": "eth0", "vlan_id": 30}
    else:
        third |= {"name": "eth2"}
        fourth |= {"name": "eth3"}
    return [
        {"name": "eth0", "addresses": ["192.0.2.10/24", "2001:db8::10/64"]},
        {"name": "eth1", "addresses": ["198.51.100.10/24", "198.51.100.11/24"], "mtu": 1400},
        third,
        fourth,
    ]


def config_text(variant: str) -> str:
    doc = tomlkit.document()
    network = tomlkit.table()
    network["manage"] = True
    network["dns_servers"] = ["192.0.2.53"]
    array = tomlkit.aot()
    for iface in interfaces(variant):
        table = tomlkit.table()
        table.update(iface)
        array.append(table)
    network["interfaces"] = array
    routes = tomlkit.aot()
    for route in ROUTES:
        table = tomlkit.table()
        table.update(route)
        routes.append(table)
    network["routes"] = routes
    doc["network"] = network
    return tomlkit.dumps(doc)


def ip(*args: str) -> str:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def kernel_has_vlans() -> bool:
    name = f"aplbench-probe{os.getpid()}"
    ip("netns", "add", name)
    try:
        ip("-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
        made = subprocess.run(
            ["ip", "-n", name, "link", "add", "link", "v0", "name", "v0.2", "type", "vlan",
             "id", "2"],
            capture_output=True, check=False,
        )  # fmt: skip
        return made.returncode == 0
    finally:
        ip("netns", "del", name)


def witness(ns: str) -> str:
    """Links, addresses and routes as ``ip`` prints them (independent of the appliance)."""
    return "\n".join(
        ip("-n", ns, *args) for args in (["-d", "-br", "link"], ["-br", "addr"], ["route"])
    )


class Helper:
    """``appliance net-helper`` in the box namespace, unprivileged."""

    def __init__(self, ns: str, workdir: Path) -> None:
        self.socket = workdir / "net.sock"
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *UNPRIVILEGED, sys.executable, "-m", "appliance",
             "net-helper", "--socket", str(self.socket), "--state-dir", str(workdir / "state"),
             "--resolv-conf", str(workdir / "resolv.conf"),
             "--networkd-dir", str(workdir / "networkd")],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + 120
        while not any("network helper ready" in line for line in self.lines):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the helper did not start:\n" + "\n".join(self.lines))
            time.sleep(0.02)

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(120)
            sock.connect(str(self.socket))
            sock.sendall(json.dumps(message).encode() + b"\n")
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
        answer: dict[str, Any] = json.loads(reply)
        if not answer.get("ok"):
            raise RuntimeError(f"{message['op']} failed: {answer.get('error')}")
        result: dict[str, Any] = answer["result"]
        return result

    def cli(self, *args: str) -> float:
        """Seconds ``appliance net ARGS`` takes, process start to exit."""
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "appliance", "net", *args, "--socket", str(self.socket)],
            capture_output=True, check=True, timeout=120,
        )  # fmt: skip
        return time.perf_counter() - started

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def measure(variant: str, runs: int, cli_runs: int) -> dict[str, float]:
    """Apply and roll back ``runs`` times in fresh namespaces; medians in milliseconds."""
    box, peer = f"aplbench{os.getpid()}-box", f"aplbench{os.getpid()}-peer"
    links = ["eth0", "eth1"] + (["eth2", "eth3"] if variant == "plain" else [])
    workdir = Path(tempfile.mkdtemp(prefix="bench-net-"))
    os.chown(workdir, NOBODY, NOBODY)
    helper: Helper | None = None
    try:
        for ns in (box, peer):
            ip("netns", "add", ns)
            ip("-n", ns, "link", "set", "lo", "up")
        for index, name in enumerate(links):
            ip("link", "add", name, "netns", box, "type", "veth", "peer", "name", f"p{index}",
               "netns", peer)  # fmt: skip
            ip("-n", peer, "link", "set", f"p{index}", "up")
        helper = Helper(box, workdir)
        config = config_text(variant)
        (workdir / "net.toml").write_text(config)
        before = witness(box)
        applied, again, rolled, steps = [], [], [], 0
        for _ in range(runs):
            started = time.perf_counter()
            answer = helper.request({"op": "apply", "config": config, "file": "net.toml"})
            applied.append(time.perf_counter() - started)
            steps = len(answer["steps"])
            started = time.perf_counter()
            if helper.request({"op": "apply", "config": config, "file": "net.toml"})["steps"]:
                raise RuntimeError("a second apply changed something")
            again.append(time.perf_counter() - started)
            started = time.perf_counter()
            result = helper.request({"op": "rollback"})
            rolled.append(time.perf_counter() - started)
            if not result["exact"] or witness(box) != before:
                raise RuntimeError("rollback did not restore the state before exactly")
        cli_apply, cli_rollback = [], []
        for _ in range(cli_runs):
            cli_apply.append(helper.cli("apply", "--config", str(workdir / "net.toml")))
            cli_rollback.append(helper.cli("rollback"))
        return {
            "steps": steps,
            "apply_ms_median": round(statistics.median(applied) * 1000, 1),
            "apply_ms_max": round(max(applied) * 1000, 1),
            "noop_apply_ms_median": round(statistics.median(again) * 1000, 1),
            "rollback_ms_median": round(statistics.median(rolled) * 1000, 1),
            "rollback_ms_max": round(max(rolled) * 1000, 1),
            "cli_apply_s_median": round(statistics.median(cli_apply), 3) if cli_apply else 0.0,
            "cli_rollback_s_median": (
                round(statistics.median(cli_rollback), 3) if cli_rollback else 0.0
            ),
        }
    finally:
        if helper is not None:
            helper.stop()
        for ns in (box, peer):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        shutil.rmtree(workdir, ignore_errors=True)


def in_vm(runs: int, cli_runs: int) -> dict[str, dict[str, float]]:
    """Both variants measured in the test VM (Debian's kernel, qemu TCG)."""
    sys.path.insert(0, str(ROOT))
    from tests.net.vm import run_in_vm, vm_parts  # noqa: PLC0415 - only when needed

    parts = vm_parts()
    if isinstance(parts, str):
        raise RuntimeError(f"the VLAN variant needs {parts}")  # noqa: TRY004 - a missing part
    command = (
        f"cd {ROOT} && env PYTHONDONTWRITEBYTECODE=1 {ROOT}/.venv/bin/python bench/net.py "
        f"--here vlan,plain --runs {runs} --cli-runs {cli_runs}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-net-vm-") as tmp:
        status, console = run_in_vm(parts, command, Path(tmp), timeout=1800)
    last = [line for line in console.splitlines() if line.startswith("{")]
    if status != 0 or not last:
        raise RuntimeError(f"the VM run failed ({status}):\n{console[-4000:]}")
    figures: dict[str, dict[str, float]] = json.loads(last[-1])
    return figures


def show(where: str, variant: str, figures: dict[str, float]) -> None:
    print(
        f"{where:>9} {variant:>5}: {figures['steps']:.0f} steps; apply "
        f"{figures['apply_ms_median']} ms (max {figures['apply_ms_max']}), second apply "
        f"{figures['noop_apply_ms_median']} ms, rollback {figures['rollback_ms_median']} ms "
        f"(max {figures['rollback_ms_max']}); CLI apply {figures['cli_apply_s_median']} s, "
        f"CLI rollback {figures['cli_rollback_s_median']} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--cli-runs", type=int, default=3)
    parser.add_argument("--no-vm", action="store_true", help="never start the VM")
    parser.add_argument("--here", help=argparse.SUPPRESS)  # variants to measure on this kernel
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/net.py needs root (network namespaces)")
    if args.here:
        here = {v: measure(v, args.runs, args.cli_runs) for v in args.here.split(",")}
        print(json.dumps(here))
        return
    summary: dict[str, Any] = {"runs": args.runs}
    if kernel_has_vlans():
        vlan = measure("vlan", args.runs, args.cli_runs)
        show("native", "vlan", vlan)
        summary |= {"vlans_measured_on": "native", **vlan}
    else:
        plain = measure("plain", args.runs, args.cli_runs)
        show("native", "plain", plain)
        summary |= {
            "vlans_measured_on": "none (no 802.1Q here, --no-vm)",
            **{f"native_plain_{k}": v for k, v in plain.items()},
        }
        if not args.no_vm:
            vm = in_vm(args.runs, args.cli_runs)
            show("qemu-tcg", "vlan", vm["vlan"])
            show("qemu-tcg", "plain", vm["plain"])
            slowdown = vm["plain"]["apply_ms_median"] / plain["apply_ms_median"]
            summary |= {
                "vlans_measured_on": "qemu-tcg (Debian kernel, no KVM)",
                **vm["vlan"],
                "vm_plain_apply_ms_median": vm["plain"]["apply_ms_median"],
                "vm_plain_rollback_ms_median": vm["plain"]["rollback_ms_median"],
                "vm_slowdown_apply": round(slowdown, 1),
                "vm_vlan_over_plain_apply": round(
                    vm["vlan"]["apply_ms_median"] / vm["plain"]["apply_ms_median"], 2
                ),
            }
            print(
                f"the VM is {slowdown:.1f}x slower than this kernel on the plain variant; "
                "VLAN figures above are emulated"
            )
    print(json.dumps(summary))


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        main()
