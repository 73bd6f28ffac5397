"""Network namespaces, veth pairs, the helper process and an independent state witness.

Every namespace is created by the test that uses it, named with the pid so parallel runs
never collide, and deleted by a finalizer (with the processes started in it). Nothing here
touches the host's own interfaces.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import tomlkit

_counter = itertools.count()

needs_netns = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("setpriv") is None,
    reason="needs root, iproute2 (ip) and util-linux (setpriv) for network namespaces",
)


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip ARGS``; raise with its stderr when it fails and ``check``."""
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def ip_json(*args: str) -> Any:
    return json.loads(ip("-j", *args).stdout or "[]")


@dataclass
class Namespace:
    """One network namespace this test made."""

    name: str
    procs: list[subprocess.Popen[Any]] = field(default_factory=list)

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return ip("-n", self.name, *args, check=check)

    def exec(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            **kwargs,
        )

    def sysctl(self, key: str, value: str) -> None:
        result = self.exec("sysctl", "-q", "-w", f"{key}={value}")
        assert result.returncode == 0, result.stderr

    def witness(self, names: list[str] | None = None) -> dict[str, Any]:
        """The namespace's state as `ip -j` reports it, independent of the appliance's reader.

        Links (admin state, MTU, VLAN id and parent), global addresses (with the secondary
        flag), and main-table routes (IPv4 and IPv6, every protocol, but not the fe80::/64
        route that follows the kernel's own link-local address).
        """
        links = ip_json("-d", "-n", self.name, "link", "show")
        by_index = {link["ifindex"]: link["ifname"] for link in links}
        out_links = []
        for link in links:
            if names is not None and link["ifname"] not in names:
                continue
            info = link.get("linkinfo", {})
            data = info.get("info_data", {})
            vlan = data.get("id", 0) if info.get("info_kind") == "vlan" else 0
            parent = link.get("link") or by_index.get(link.get("link_index", 0), "")
            parent = parent if vlan else ""
            out_links.append(
                (link["ifname"], "UP" in link["flags"], link["mtu"], vlan, parent or "")
            )
        addresses = []
        for entry in ip_json("-n", self.name, "addr", "show"):
            if names is not None and entry["ifname"] not in names:
                continue
            for a in entry.get("addr_info", []):
                if a.get("scope") != "global":
                    continue
                addresses.append(
                    (entry["ifname"], f"{a['local']}/{a['prefixlen']}", bool(a.get("secondary")))
                )
        routes = []
        for family in ("-4", "-6"):
            for r in ip_json("-n", self.name, family, "route", "show", "table", "main"):
                if names is not None and r.get("dev") not in names:
                    continue
                if r["dst"].startswith("fe80::"):
                    continue  # follows the link-local address, which the kernel manages
                routes.append(
                    (
                        r["dst"],
                        r.get("gateway", ""),
                        r.get("dev", ""),
                        r.get("metric", 0),
                        r.get("protocol", "boot"),
                        r.get("prefsrc", ""),
                    )
                )
        return {
            "links": sorted(out_links),
            "addresses": sorted(addresses),
            "routes": sorted(routes),
        }


@pytest.fixture
def netns() -> Iterator[Callable[[], Namespace]]:
    """Make namespaces on demand; all are deleted (their processes killed) afterwards."""
    made: list[Namespace] = []

    def make() -> Namespace:
        ns = Namespace(f"apl{os.getpid()}-{next(_counter)}")
        ip("netns", "add", ns.name)
        made.append(ns)
        ns.ip("link", "set", "lo", "up")
        return ns

    yield make
    for ns in reversed(made):
        for proc in ns.procs:
            if proc.poll() is None:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
        pids = ip("netns", "pids", ns.name, check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        ip("netns", "del", ns.name, check=False)


def veth(a: Namespace, name_a: str, b: Namespace, name_b: str, *, up: bool = True) -> None:
    """A veth pair with one end in each namespace; the peer end ``name_b`` is brought up."""
    ip(
        "link",
        "add",
        name_a,
        "netns",
        a.name,
        "type",
        "veth",
        "peer",
        "name",
        name_b,
        "netns",
        b.name,
    )
    if up:
        b.ip("link", "set", name_b, "up")


@dataclass
class Lab:
    """A box namespace with veth links to a peer namespace."""

    box: Namespace
    peer: Namespace
    links: list[str]


@pytest.fixture
def lab(netns: Callable[[], Namespace]) -> Callable[..., Lab]:
    """``lab("eth0", "eth1")``: a box with those links (down, as a fresh box has them)."""

    def make(*names: str) -> Lab:
        box, peer = netns(), netns()
        for index, name in enumerate(names):
            veth(box, name, peer, f"p{index}")
        return Lab(box, peer, list(names))

    return make


NOBODY = 65534
UNPRIVILEGED = [
    "setpriv",
    f"--reuid={NOBODY}",
    f"--regid={NOBODY}",
    "--clear-groups",
    "--inh-caps=-all,+net_admin,+net_raw",
    "--ambient-caps=-all,+net_admin,+net_raw",
    "--bounding-set=-all,+net_admin,+net_raw",
]
"""Run the helper as appliance-net.service does: a plain user with two capabilities."""


class HelperProcess:
    """``appliance net-helper`` inside a namespace, unprivileged, with its own files."""

    def __init__(self, ns: Namespace, workdir: Path, *extra: str) -> None:
        self.ns = ns
        self.dir = workdir
        self.socket = workdir / "net.sock"
        self.state = workdir / "state"
        self.resolv = workdir / "resolv.conf"
        self.networkd = workdir / "networkd"
        self.extra = list(extra)
        self.lines: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self.start()

    def start(self, timeout: float = 60.0) -> None:
        self.socket.unlink(missing_ok=True)
        self.lines.clear()
        args = [
            "ip",
            "netns",
            "exec",
            self.ns.name,
            *UNPRIVILEGED,
            sys.executable,
            "-m",
            "appliance",
            "net-helper",
            "--socket",
            str(self.socket),
            "--state-dir",
            str(self.state),
            "--resolv-conf",
            str(self.resolv),
            "--networkd-dir",
            str(self.networkd),
            "--log-level",
            "debug",
            *self.extra,
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LISTEN_", "NOTIFY_"))}
        self.proc = subprocess.Popen(
            args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env
        )
        self.ns.procs.append(self.proc)
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"helper exited ({self.proc.returncode}):\n{self.log}")
            if "network helper ready" in self.log:
                return
            time.sleep(0.02)
        raise AssertionError(f"helper not ready within {timeout} s:\n{self.log}")

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=20)

    def wait_log(self, text: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log:
                return
            time.sleep(0.02)
        raise AssertionError(f"{text!r} not logged within {timeout} s:\n{self.log}")

    def cli(self, *args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
        """``appliance net ARGS`` from the host namespace, through the socket."""
        command = [sys.executable, "-m", "appliance", "net", *args, "--socket", str(self.socket)]
        if config is not None:
            command += ["--config", str(config)]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    def request(self, message: dict[str, Any] | bytes) -> dict[str, Any]:
        """One raw protocol exchange."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(60)
            sock.connect(str(self.socket))
            data = message if isinstance(message, bytes) else json.dumps(message).encode() + b"\n"
            with contextlib.suppress(BrokenPipeError):  # the helper may answer and hang up early
                sock.sendall(data)
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
        answer: dict[str, Any] = json.loads(reply)
        return answer


@pytest.fixture
def helper_in() -> Iterator[Callable[..., HelperProcess]]:
    """Start the helper in a namespace; stopped afterwards, its directory removed."""
    started: list[HelperProcess] = []
    dirs: list[str] = []

    def start(ns: Namespace, *extra: str) -> HelperProcess:
        workdir = tempfile.mkdtemp(prefix="nethelper-")  # short: sun_path is 108 bytes
        os.chown(workdir, NOBODY, NOBODY)
        dirs.append(workdir)
        helper = HelperProcess(ns, Path(workdir), *extra)
        started.append(helper)
        return helper

    yield start
    for helper in started:
        if helper.proc is not None and helper.proc.poll() is None:
            helper.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                helper.proc.wait(timeout=10)
    for workdir in dirs:
        shutil.rmtree(workdir, ignore_errors=True)


def network_toml(
    interfaces: Sequence[Mapping[str, Any]],
    routes: Sequence[Mapping[str, Any]] = (),
    *,
    manage: bool = True,
    dns: Sequence[str] = (),
) -> str:
    """A config file's text with just a [network] section."""
    doc = tomlkit.document()
    network = tomlkit.table()
    network["manage"] = manage
    network["dns_servers"] = list(dns)
    array = tomlkit.aot()
    for iface in interfaces:
        table = tomlkit.table()
        for key, value in iface.items():
            table[key] = value
        array.append(table)
    network["interfaces"] = array
    routes_aot = tomlkit.aot()
    for route in routes:
        table = tomlkit.table()
        for key, value in route.items():
            table[key] = value
        routes_aot.append(table)
    network["routes"] = routes_aot
    doc["network"] = network
    return tomlkit.dumps(doc)
