"""Link monitoring: the pure tracker, and the subsystem on a veth pair whose peer flaps."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.config.schema import InterfaceConfig, NetworkConfig
from appliance.net.events import (
    AddressAdded,
    AddressRemoved,
    AdminStateChanged,
    CarrierChanged,
    DhcpChanged,
    LinkAdded,
    LinkRemoved,
    NetEvent,
    NetworkChanged,
    changes_reachability,
)
from appliance.net.monitor import LinkTracker, NetworkMonitor
from appliance.runtime.health import Health, Status
from appliance.runtime.metrics import Metrics
from tests.conftest import free_port, write_config
from tests.net.conftest import HelperProcess, Lab, needs_netns, network_toml
from tests.net.test_dhcp import Dnsmasq

METRICS_TOKEN = "net-monitor-scrape-token-0123456789"


def test_which_events_change_reachability() -> None:
    assert changes_reachability(AddressAdded("eth0", "192.0.2.10/24"))
    assert changes_reachability(AddressRemoved("eth0", "2001:db8::10/64"))
    assert changes_reachability(CarrierChanged("eth0", True))
    assert not changes_reachability(CarrierChanged("eth0", False))
    assert not changes_reachability(AddressAdded("eth0", "fe80::1/64")), "follows the link"
    assert not changes_reachability(AddressAdded("eth0", "169.254.7.7/16"))
    assert not changes_reachability(AddressAdded("lo", "127.0.0.1/8"))
    assert not changes_reachability(AddressAdded("eth0", "not an address"))
    assert not changes_reachability(DhcpChanged("eth0", "renewed", "192.0.2.10"))
    assert not changes_reachability(NetworkChanged("applied"))


async def test_on_change_gathers_a_burst_into_one_call() -> None:
    monitor = NetworkMonitor(NetworkConfig(), Health(), Metrics())
    calls: list[float] = []
    unsubscribe = monitor.on_change(lambda: calls.append(time.monotonic()), settle=0.2)
    start = time.monotonic()
    monitor.publish([AddressAdded("eth0", "fe80::1/64"), CarrierChanged("eth0", False)])
    await asyncio.sleep(0.3)
    assert calls == [], "nothing that changes reachability"
    start = time.monotonic()
    monitor.publish([AddressAdded("eth0", "192.0.2.11/24")])
    await asyncio.sleep(0.1)
    monitor.publish([AddressRemoved("eth0", "192.0.2.10/24")])
    await asyncio.sleep(0.3)
    assert len(calls) == 1 and 0.15 < calls[0] - start < 0.3, (calls, start)
    monitor.publish([CarrierChanged("eth0", True)])
    await asyncio.sleep(0.3)
    assert len(calls) == 2
    monitor.publish([CarrierChanged("eth0", True)])
    unsubscribe()
    await asyncio.sleep(0.3)
    assert len(calls) == 2, "an unsubscribed callback is not called, even when armed"


def test_tracker_turns_changes_into_events() -> None:
    tracker = LinkTracker()
    assert tracker.link(2, "eth0", up=False, carrier=False) == [LinkAdded("eth0")]
    assert tracker.link(2, "eth0", up=True, carrier=False) == [AdminStateChanged("eth0", True)]
    assert tracker.link(2, "eth0", up=True, carrier=False) == [], "no change, no event"
    assert tracker.link(2, "eth0", up=True, carrier=True) == [CarrierChanged("eth0", True)]
    assert tracker.address(2, "192.0.2.10/24", present=True) == [
        AddressAdded("eth0", "192.0.2.10/24")
    ]
    assert tracker.address(2, "192.0.2.10/24", present=True) == []
    assert tracker.link(2, "eth0", up=False, carrier=False) == [
        AdminStateChanged("eth0", False),
        CarrierChanged("eth0", False),
    ]
    assert tracker.address(2, "192.0.2.10/24", present=False) == [
        AddressRemoved("eth0", "192.0.2.10/24")
    ]
    assert tracker.link(2, "lan0", up=False, carrier=False) == [
        LinkRemoved("eth0"),
        LinkAdded("lan0"),
    ], "a rename"
    assert tracker.link_removed(2) == [LinkRemoved("lan0")]
    assert tracker.link_removed(2) == []


def test_subscribers_are_isolated() -> None:
    metrics = Metrics()
    monitor = NetworkMonitor(NetworkConfig(), Health(), metrics)
    seen: list[NetEvent] = []

    def broken(event: NetEvent) -> None:
        raise RuntimeError("subscriber bug")

    monitor.subscribe(broken)
    unsubscribe = monitor.subscribe(seen.append)
    monitor.publish([LinkAdded("eth0")])
    assert seen == [LinkAdded("eth0")]
    unsubscribe()
    monitor.publish([LinkRemoved("eth0")])
    assert seen == [LinkAdded("eth0")]
    assert samples(metrics)['appliance_net_events_total{kind="LinkRemoved"}'] == 1


def samples(metrics: Metrics) -> dict[str, float]:
    return {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in metrics.render().splitlines()
        if line and not line.startswith("#")
    }


@needs_netns
async def test_peer_flap_raises_events_within_a_second(lab: Callable[..., Lab]) -> None:
    world = lab("eth0", "eth1")
    world.box.ip("link", "set", "eth0", "up")
    world.box.ip("link", "set", "eth1", "up")
    config = NetworkConfig(
        manage=True,
        interfaces=[InterfaceConfig(name="eth0"), InterfaceConfig(name="eth1")],
    )
    health, metrics = Health(), Metrics()
    monitor = NetworkMonitor(config, health, metrics, netns=world.box.name)
    events: list[NetEvent] = []
    arrived = asyncio.Event()
    threads: set[int] = set()

    def collect(event: NetEvent) -> None:
        threads.add(threading.get_ident())
        events.append(event)
        arrived.set()

    monitor.subscribe(collect)
    await monitor.start()
    try:
        assert any(t.name == "netlink" for t in threading.enumerate())
        assert health.snapshot().components[0].status is Status.OK
        assert samples(metrics)['appliance_net_link_carrier{interface="eth0"}'] == 1

        async def flap(state: str) -> tuple[float, CarrierChanged]:
            events.clear()
            arrived.clear()
            sent = time.monotonic()
            proc = await asyncio.create_subprocess_exec(
                "ip", "-n", world.peer.name, "link", "set", "p0", state
            )
            assert await proc.wait() == 0
            wanted = CarrierChanged("eth0", state == "up")
            async with asyncio.timeout(5):
                while wanted not in events:
                    await arrived.wait()
                    arrived.clear()
            event = events[events.index(wanted)]
            assert isinstance(event, CarrierChanged)
            return event.at - sent, event

        latency, _ = await flap("down")
        assert latency < 1.0
        component = health.snapshot().components[0]
        assert component.status is Status.DEGRADED
        assert component.detail == "eth0 has no carrier"
        assert samples(metrics)['appliance_net_link_carrier{interface="eth0"}'] == 0
        assert samples(metrics)['appliance_net_link_up{interface="eth0"}'] == 1

        latency, _ = await flap("up")
        assert latency < 1.0
        assert health.snapshot().components[0].status is Status.OK

        events.clear()
        world.box.ip("addr", "add", "192.0.2.10/24", "dev", "eth1")
        async with asyncio.timeout(5):
            while AddressAdded("eth1", "192.0.2.10/24") not in events:
                await arrived.wait()
                arrived.clear()
        assert samples(metrics)['appliance_net_addresses{interface="eth1"}'] >= 1
        assert samples(metrics)['appliance_net_events_total{kind="CarrierChanged"}'] >= 2
        # Netlink is read in its own thread; subscribers are called on the service's loop.
        assert threads == {threading.get_ident()}
    finally:
        await monitor.stop()
    assert not any(t.name == "netlink" for t in threading.enumerate())


@needs_netns
@pytest.mark.skipif(shutil.which("dnsmasq") is None, reason="needs dnsmasq (Debian: dnsmasq-base)")
async def test_dhcp_events_from_the_helper(
    lab: Callable[..., Lab], helper_in: Callable[..., HelperProcess], tmp_path: Path
) -> None:
    world = lab("eth0")
    Dnsmasq(world.peer, "p0", tmp_path)
    helper = helper_in(world.box)
    config = NetworkConfig(manage=True, interfaces=[InterfaceConfig(name="eth0", dhcp=True)])
    health, metrics = Health(), Metrics()
    monitor = NetworkMonitor(
        config, health, metrics, netns=world.box.name, helper_socket=helper.socket
    )
    seen: list[NetEvent] = []
    renewed = asyncio.Event()

    def collect(event: NetEvent) -> None:
        seen.append(event)
        if isinstance(event, DhcpChanged) and event.state == "renewed":
            renewed.set()

    monitor.subscribe(collect)
    await monitor.start()
    try:
        config_file = tmp_path / "appliance.toml"
        config_file.write_text(network_toml([{"name": "eth0", "dhcp": True}]))
        result = await asyncio.to_thread(helper.cli, "apply", config=config_file)
        assert result.returncode == 0, result.stderr
        async with asyncio.timeout(20):
            await renewed.wait()
        bound = next(e for e in seen if isinstance(e, DhcpChanged) and e.state == "bound")
        assert bound.interface == "eth0" and bound.address.startswith("192.0.2.")
        assert any(isinstance(e, AddressAdded) and e.address == bound.address for e in seen)
        left = samples(metrics)['appliance_net_dhcp_lease_seconds{interface="eth0"}']
        assert 100 < left <= 120
    finally:
        await monitor.stop()


@needs_netns
def test_service_reports_the_network_on_healthz_and_metrics(
    lab: Callable[..., Lab], tmp_path: Path
) -> None:
    """The real service in the box namespace: a managed link without carrier degrades it."""
    world = lab("eth0")
    world.box.ip("link", "set", "eth0", "up")
    world.peer.ip("link", "set", "p0", "down")
    port = free_port()
    config = write_config(
        tmp_path / "appliance.toml",
        tmp_path / "state",
        web={"addresses": ["127.0.0.1"], "port": port, "metrics_token": METRICS_TOKEN},
        network={"manage": True, "helper_socket": str(tmp_path / "none.sock")},
    )
    with config.open("a") as handle:
        handle.write('\n[[network.interfaces]]\nname = "eth0"\n')
    proc = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            world.box.name,
            sys.executable,
            "-m",
            "appliance",
            "run",
            "--config",
            str(config),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    world.box.procs.append(proc)
    fetch = (
        "import ssl, sys, urllib.request\n"
        "ctx = ssl._create_unverified_context()\n"
        "for path in ('/healthz', '/metrics'):\n"
        "    request = urllib.request.Request(sys.argv[1] + path)\n"
        "    request.add_header('Authorization', 'Bearer ' + sys.argv[2])\n"
        "    try:\n"
        "        body = urllib.request.urlopen(request, context=ctx).read()\n"
        "    except urllib.error.HTTPError as exc:\n"
        "        body = exc.read()\n"
        "    sys.stdout.write(body.decode() + '\\n=====\\n')\n"
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            result = world.box.exec(
                sys.executable, "-c", fetch, f"https://127.0.0.1:{port}", METRICS_TOKEN
            )
            if result.returncode == 0:
                break
            assert time.monotonic() < deadline, result.stderr
            time.sleep(0.2)
        healthz, metrics = result.stdout.split("\n=====\n")[:2]
        doc = json.loads(healthz)
        assert doc["components"]["network"] == {
            "status": "degraded",
            "detail": "eth0 has no carrier",
            "for_seconds": doc["components"]["network"]["for_seconds"],
        }
        assert "network degraded: eth0 has no carrier" in doc["problems"]
        assert 'appliance_net_link_carrier{interface="eth0"} 0' in metrics
        assert 'appliance_net_link_up{interface="eth0"} 1' in metrics

        world.peer.ip("link", "set", "p0", "up")
        deadline = time.monotonic() + 5
        while True:
            result = world.box.exec(
                sys.executable, "-c", fetch, f"https://127.0.0.1:{port}", METRICS_TOKEN
            )
            doc = json.loads(result.stdout.split("\n=====\n")[0])
            if doc["components"]["network"]["status"] == "ok":
                break
            assert time.monotonic() < deadline, doc
            time.sleep(0.1)
        assert doc["status"] == "ok"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "network: eth0 has carrier" in err


@needs_netns
async def test_start_cancelled_midway_leaves_no_thread(lab: Callable[..., Lab]) -> None:
    world = lab("eth0")
    monitor = NetworkMonitor(NetworkConfig(), Health(), Metrics(), netns=world.box.name)
    for delay in (0.0, 0.001, 0.01, 0.05):
        start = asyncio.create_task(monitor.start())
        await asyncio.sleep(delay)
        start.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await start
        await monitor.stop()
        assert not any(t.name == "netlink" for t in threading.enumerate()), delay
