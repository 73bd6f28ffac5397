"""sd_notify and the watchdog, against a real AF_UNIX datagram socket.

READY arrives once the service serves; WATCHDOG=1 comes at half of WATCHDOG_USEC while
healthy; a blocked or lagging event loop, or a crashed subsystem, stops the pings and
says why; shutdown sends STOPPING=1.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from appliance.config import load_config
from appliance.runtime.health import Health
from appliance.runtime.loopmonitor import LoopMonitor
from appliance.runtime.subsystem import Subsystem
from appliance.runtime.watchdog import Notifier, Watchdog, watchdog_interval
from appliance.service import Service
from tests.conftest import NotifyListener

INTERVAL = 0.1  # WATCHDOG_USEC=200000 -> a ping every 0.1 s


def test_interval_from_environment() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "20000000"}) == 10.0
    assert watchdog_interval({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "42"}, pid=42) == 0.1
    assert watchdog_interval({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "41"}, pid=42) is None
    assert watchdog_interval({"WATCHDOG_USEC": "x"}) is None
    assert watchdog_interval({}) is None


def test_monitor_decisions_with_an_injected_clock() -> None:
    health = Health()
    monitor = LoopMonitor(health.reporter("event-loop"), limit=0.5, clock=lambda: 0.0)
    monitor.sample(0.01, now=10.0)
    assert health.snapshot().alive
    monitor.sample(0.7, now=11.0)
    assert health.snapshot().problems() == [
        "event-loop failed: event loop lagged 0.70 s (limit 0.5 s)"
    ]
    monitor.sample(0.01, now=11.5)  # under the limit, but not for the recovery period yet
    assert not health.snapshot().alive
    monitor.sample(0.01, now=12.0)
    assert health.snapshot().alive
    assert monitor.max_lag == 0.7
    assert monitor.stale_for(12.5) is None
    assert monitor.stale_for(12.7) == pytest.approx(0.7)


def test_tick_pings_only_while_healthy(
    notify_socket: NotifyListener, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", notify_socket.path)
    health = Health()
    monitor = LoopMonitor(health.reporter("event-loop"), limit=0.5, clock=lambda: 0.0)
    monitor.sample(0.0, now=0.0)
    other = health.reporter("sip")
    other.ok()
    watchdog = Watchdog(health, monitor, Notifier(), interval=1.0)
    assert watchdog.tick(now=0.1)
    other.failed("transport crashed")
    assert not watchdog.tick(now=0.2)
    assert not watchdog.tick(now=0.3)
    other.ok()
    assert watchdog.tick(now=0.4)
    assert not watchdog.tick(now=5.0)  # monitor silent: the loop is not running it
    time.sleep(0.3)
    assert len(notify_socket.pings()) == 2
    assert (watchdog.pings, watchdog.withheld) == (2, 3)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        "withholding systemd watchdog pings: sip failed: transport crashed",
        "withholding systemd watchdog pings: event loop monitor silent for 5.0 s",
    ]


class CrashingSubsystem(Subsystem):
    """A subsystem whose worker task dies after a while."""

    def __init__(self, health: Health, after: float) -> None:
        super().__init__("crasher", health)
        self.after = after

    async def start(self) -> None:
        self.spawn(self._work(), "worker")
        self.health.ok()

    async def _work(self) -> None:
        await asyncio.sleep(self.after)
        raise RuntimeError("worker fell over")


class ServiceUnderTest:
    def __init__(self, service: Service, task: asyncio.Task[int], url: str, cafile: Path) -> None:
        self.service = service
        self.task = task
        self.url = url
        self.ssl = ssl.create_default_context(cafile=str(cafile))

    async def healthz(self) -> tuple[int, dict[str, object]]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.url + "healthz", ssl=self.ssl) as response,
        ):
            return response.status, json.loads(await response.text())

    async def stop(self) -> int:
        self.service.request_stop("test")
        return await asyncio.wait_for(self.task, 15)


@pytest.fixture
async def start_in_process(
    make_config: Callable[..., Path],
    notify_socket: NotifyListener,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Callable[..., object]]:
    monkeypatch.setenv("NOTIFY_SOCKET", notify_socket.path)
    monkeypatch.setenv("WATCHDOG_USEC", str(int(INTERVAL * 2 * 1_000_000)))
    running: list[ServiceUnderTest] = []

    async def start(extra: Callable[[Service], list[Subsystem]] | None = None) -> ServiceUnderTest:
        config = load_config(make_config(service={"loop_lag_limit": 0.5}))
        service = Service(config)
        if extra is not None:
            build = service.build
            service.build = lambda: build() + extra(service)  # type: ignore[method-assign]
        task = asyncio.get_running_loop().create_task(service.run())
        await asyncio.to_thread(notify_socket.wait_for, "READY", "1")
        assert service.web is not None
        url = f"https://localhost:{config.web.port}/"
        under_test = ServiceUnderTest(service, task, url, service.web.tls.certificate)
        running.append(under_test)
        return under_test

    yield start
    for under_test in running:
        if not under_test.task.done():
            await under_test.stop()


async def test_ready_status_and_ping_rate(
    start_in_process: Callable[..., object], notify_socket: NotifyListener
) -> None:
    sut: ServiceUnderTest = await start_in_process()  # type: ignore[misc]
    ready = notify_socket.wait_for("READY", "1")
    assert ready.fields["STATUS"] == "Serving: 5 components ok"
    start = time.monotonic()
    await asyncio.sleep(2.0)
    pings = notify_socket.pings(since=start)
    assert 14 <= len(pings) <= 21, pings
    gaps = sorted(b - a for a, b in itertools.pairwise(pings))
    assert 0.07 <= gaps[len(gaps) // 2] <= 0.15
    assert await sut.stop() == 0
    stopping = notify_socket.wait_for("STOPPING", "1")
    assert stopping.fields["STATUS"] == "Stopping (test)"
    assert all(m.at <= stopping.at for m in notify_socket.snapshot() if "WATCHDOG" in m.fields)


async def test_blocked_loop_stops_pings_and_is_reported(
    start_in_process: Callable[..., object],
    notify_socket: NotifyListener,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sut: ServiceUnderTest = await start_in_process()  # type: ignore[misc]
    await asyncio.sleep(0.5)
    time.sleep(1.5)  # noqa: ASYNC251 - the point: block the event loop
    unblocked = time.monotonic()
    status, body = await sut.healthz()
    assert status == 503
    assert body["status"] == "failed"
    assert any("event loop lagged" in str(p) for p in body["problems"])  # type: ignore[attr-defined]
    await asyncio.sleep(2.0)
    pings = notify_socket.pings()
    gaps = [(a, b) for a, b in itertools.pairwise(pings) if b - a > 0.5]
    assert len(gaps) == 1, gaps
    first, resumed = gaps[0]
    # No ping while blocked, nor during the recovery period after (limit 0.5 s -> 1 s).
    assert resumed - first >= 1.5 + 0.9
    assert resumed >= unblocked + 0.9
    assert "event loop blocked for" in caplog.text
    assert "test_blocked_loop_stops_pings_and_is_reported" in caplog.text  # where it was stuck
    assert "withholding systemd watchdog pings" in caplog.text
    status, _ = await sut.healthz()
    assert status == 200
    assert await sut.stop() == 0


async def test_sustained_lag_stops_pings(
    start_in_process: Callable[..., object], notify_socket: NotifyListener
) -> None:
    sut: ServiceUnderTest = await start_in_process()  # type: ignore[misc]
    await asyncio.sleep(0.3)
    start = time.monotonic()
    # A loop that keeps running, but in 0.6 s slices: every sample lags over the limit.
    while time.monotonic() - start < 3.0:
        time.sleep(0.6)  # noqa: ASYNC251
        await asyncio.sleep(0)
    late = [p for p in notify_socket.pings(since=start + 0.7) if p <= start + 3.0]
    assert late == []
    await asyncio.sleep(1.5)
    assert notify_socket.pings(since=start + 3.5), "pings resume once the loop is healthy"
    assert await sut.stop() == 0


async def test_crashed_subsystem_stops_pings(
    start_in_process: Callable[..., object],
    notify_socket: NotifyListener,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sut: ServiceUnderTest = await start_in_process(  # type: ignore[misc]
        lambda service: [CrashingSubsystem(service.health, after=0.5)]
    )
    await asyncio.sleep(1.0)
    crashed_by = time.monotonic()
    await asyncio.sleep(1.0)
    assert notify_socket.pings(since=crashed_by) == []
    status, body = await sut.healthz()
    assert status == 503
    assert body["problems"] == ["crasher failed: worker crashed: RuntimeError: worker fell over"]
    statuses = [m.fields.get("STATUS", "") for m in notify_socket.snapshot()]
    assert "Failed: crasher failed: worker crashed: RuntimeError: worker fell over" in statuses
    assert "crasher: worker crashed" in caplog.text
    assert "RuntimeError: worker fell over" in caplog.text  # with its traceback
    assert await sut.stop() == 0
