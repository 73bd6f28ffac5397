"""The composition root: builds the subsystems from the config, runs and stops them.

Start order is the list order; stop order is the reverse, within the configured
``shutdown_timeout`` overall. ``READY=1`` goes to systemd only once every component
reports that it serves. A second SIGTERM/SIGINT during shutdown exits at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from appliance import __version__
from appliance.auth.operators import effective_operators
from appliance.calls.manager import CallManager
from appliance.config.schema import Config
from appliance.net.monitor import NetworkMonitor
from appliance.runtime.health import Health, HealthSnapshot, Status
from appliance.runtime.loopmonitor import LoopMonitor, StallWatcher
from appliance.runtime.metrics import Metrics
from appliance.runtime.statedir import ensure_state_dir, resolve_state_dir
from appliance.runtime.subsystem import Subsystem
from appliance.runtime.watchdog import Notifier, Watchdog, watchdog_interval
from appliance.sip.service import SipService
from appliance.web.api import Api
from appliance.web.auth import Auth
from appliance.web.server import WebServer
from appliance.web.tls import TlsFiles, ensure_certificate, fingerprint

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_FORCED = 130


def process_age() -> float:
    """Seconds since this process was created (proc(5) starttime), for startup timing."""
    try:
        with open("/proc/self/stat", "rb") as handle:  # noqa: PTH123 - one tiny read
            fields = handle.read().rsplit(b")", 1)[1].split()
        start = int(fields[19]) / os.sysconf("SC_CLK_TCK")
        return time.clock_gettime(time.CLOCK_BOOTTIME) - start
    except (OSError, IndexError, ValueError):
        return time.monotonic() - _IMPORTED_AT


_IMPORTED_AT = time.monotonic()


def _rss_bytes() -> float:
    """Resident set size from /proc (statm field 2, in pages)."""
    try:
        with open("/proc/self/statm", "rb") as handle:  # noqa: PTH123 - one tiny read
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


class Service:
    """The appliance service process."""

    def __init__(self, config: Config, environ: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.environ = os.environ if environ is None else environ
        self.started_at = time.monotonic()
        self.health = Health()
        self.metrics = Metrics()
        self.monitor = LoopMonitor(
            self.health.reporter("event-loop"), config.service.loop_lag_limit
        )
        self.notifier = Notifier()
        self.watchdog = Watchdog(
            self.health, self.monitor, self.notifier, watchdog_interval(self.environ)
        )
        self.state_dir = resolve_state_dir(config.service.state_dir, self.environ)
        self.subsystems: list[Subsystem] = []
        self.web: WebServer | None = None
        self.network: NetworkMonitor | None = None
        self.sip: SipService | None = None
        self.calls: CallManager | None = None
        self._stop_requested: asyncio.Event | None = None
        self._stop_reason = ""
        self._changed: asyncio.Event | None = None
        self._register_process_metrics()

    def _register_process_metrics(self) -> None:
        m = self.metrics
        m.gauge(
            "appliance_build_info",
            "Version of the running service.",
            ["version"],
            read=lambda: {(__version__,): 1.0},
        )
        m.gauge(
            "appliance_uptime_seconds",
            "Seconds since the service started.",
            read=lambda: time.monotonic() - self.started_at,
        )
        m.gauge(
            "appliance_resident_memory_bytes", "Resident memory of the process.", read=_rss_bytes
        )
        m.counter(
            "appliance_cpu_seconds_total",
            "CPU time used by the process (user+system).",
            read=lambda: sum(os.times()[:2]),
        )
        m.gauge(
            "appliance_event_loop_lag_seconds",
            "Latest event-loop lag sample.",
            read=lambda: self.monitor.last_lag,
        )
        m.gauge(
            "appliance_event_loop_lag_max_seconds",
            "Largest event-loop lag since start.",
            read=lambda: self.monitor.max_lag,
        )
        m.gauge(
            "appliance_component_up",
            "1 when a component serves (ok or degraded).",
            ["component"],
            read=self._component_up,
        )
        m.counter(
            "appliance_watchdog_pings_total",
            "systemd watchdog pings sent.",
            read=lambda: float(self.watchdog.pings),
        )
        m.counter(
            "appliance_watchdog_withheld_total",
            "Watchdog pings withheld because the service was unhealthy.",
            read=lambda: float(self.watchdog.withheld),
        )

    def _component_up(self) -> dict[tuple[str, ...], float]:
        return {
            (c.name,): 1.0 if c.status in (Status.OK, Status.DEGRADED) else 0.0
            for c in self.health.snapshot().components
        }

    def build(self) -> list[Subsystem]:
        """Create the subsystems in start order (needs the state directory)."""
        tls = ensure_certificate(
            self.config.web.certificate,
            self.config.web.private_key,
            self.state_dir,
            self.config.service.name,
        )
        self.web = WebServer(
            self.config.web,
            tls,
            box_name=self.config.service.name,
            health=self.health,
            monitor=self.monitor,
            metrics=self.metrics,
        )
        log.info("web certificate %s (SHA-256 %s)", tls.certificate, fingerprint(tls.certificate))
        # Link events are logged; once every subsystem serves, address and carrier changes
        # also reach SIP and WebRTC (see _network_changed).
        self.network = NetworkMonitor(
            self.config.network,
            self.health,
            self.metrics,
            helper_socket=Path(self.config.network.helper_socket),
        )
        self.network.subscribe(lambda event: log.info("network: %s", event.describe()))
        sip_config = self.config.sip
        sip_tls = tls
        if sip_config.tls_certificate:
            sip_tls = TlsFiles(Path(sip_config.tls_certificate), Path(sip_config.tls_private_key))
        operators = effective_operators(self.config, self.state_dir)
        auth = Auth(
            operators, self.state_dir, self.config.web.session_lifetime,
            self.config.web.metrics_token,
        )  # fmt: skip
        auth.install(self.web.app)
        self.sip = SipService(
            sip_config,
            operators,
            box_name=self.config.service.name,
            state_dir=self.state_dir,
            tls=sip_tls if sip_config.tls_port else None,
            health=self.health,
            metrics=self.metrics,
        )
        self.calls = CallManager(
            self.sip,
            operators,
            self.config.media,
            self.config.webrtc,
            health=self.health,
            metrics=self.metrics,
            state_dir=self.state_dir,
            rtt=self.config.rtt,
        )
        api = Api(
            self.calls,
            lambda request: getattr(auth.operator_for(request), "name", None),
            self.config.web.allowed_origins,
        )
        self.web.add_websocket("/api/v1/ws", api.handle)
        return [self.network, self.web, self.sip, self.calls]

    def request_stop(self, reason: str) -> None:
        """Begin a graceful stop (idempotent)."""
        if self._stop_requested is None or self._stop_requested.is_set():
            return
        self._stop_reason = reason
        self._stop_requested.set()

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self._stop_requested is not None and self._stop_requested.is_set():
            log.warning("second %s: exiting without finishing the graceful stop", name)
            os._exit(EXIT_FORCED)
        log.info("%s received: stopping", name)
        self.request_stop(name)

    def _on_health(self, snapshot: HealthSnapshot) -> None:
        if self._changed is not None:
            self._changed.set()

    async def _wait_ready(self) -> bool:
        """Wait until every component serves; False if a stop was requested first."""
        assert self._stop_requested is not None and self._changed is not None
        while not self.health.snapshot().ready:
            if self._stop_requested.is_set():
                return False
            self._changed.clear()
            waiters = [
                asyncio.ensure_future(self._changed.wait()),
                asyncio.ensure_future(self._stop_requested.wait()),
            ]
            _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for waiter in pending:
                waiter.cancel()
        return not self._stop_requested.is_set()

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT; the exit status for the process."""
        loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        self._changed = asyncio.Event()
        self.health.subscribe(self._on_health)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum)
        monitor_task = loop.create_task(self.monitor.run(), name="event-loop monitor")
        watchdog_task = loop.create_task(self.watchdog.run(), name="systemd watchdog")
        stall_watcher = StallWatcher(self.monitor)
        stall_watcher.start()
        started: list[Subsystem] = []
        unsubscribe: Callable[[], None] | None = None
        status = EXIT_OK
        try:
            ensure_state_dir(self.state_dir)
            self.subsystems = self.build()
            for subsystem in self.subsystems:
                self.watchdog.status(f"Starting {subsystem.name}")
                try:
                    await subsystem.start()
                except Exception as exc:
                    # A busy port or a missing file needs the message, not a traceback.
                    trace = None if isinstance(exc, OSError) else exc
                    log.error("cannot start %s: %s", subsystem.name, exc, exc_info=trace)
                    subsystem.health.failed(f"cannot start: {exc}")
                    status = EXIT_FAILURE
                    break
                started.append(subsystem)
            if status == EXIT_OK and self.network is not None:
                unsubscribe = self.network.on_change(self._network_changed)
            if status == EXIT_OK and await self._wait_ready():
                self.watchdog.ready()
                log.info(
                    "ready %.2f s after process start; state in %s", process_age(), self.state_dir
                )
                if self.web is not None:
                    log.info("call-takers' page: %s", "  ".join(self.web.urls()))
                await self._stop_requested.wait()
        except Exception as exc:
            log.critical("service failed: %s", exc, exc_info=exc)
            status = EXIT_FAILURE
        finally:
            reason = self._stop_reason or "startup failed"
            self.watchdog.stopping(f"Stopping ({reason})")
            if unsubscribe is not None:
                unsubscribe()
            await self._stop_all(started)
            for task in (watchdog_task, monitor_task):
                task.cancel()
            await asyncio.gather(watchdog_task, monitor_task, return_exceptions=True)
            stall_watcher.stop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            self.notifier.close()
        log.info("stopped (exit status %d)", status)
        return status

    def _network_changed(self) -> None:
        """Addresses or carrier changed: SIP registers again upstream with a fresh Contact,
        and calls from now on offer browsers the box's current ICE host candidates."""
        if self.sip is not None:
            self.sip.network_changed()
        if self.calls is not None:
            self.calls.network_changed()

    async def _stop_all(self, started: list[Subsystem]) -> None:
        """Stop in reverse start order, all within ``shutdown_timeout``."""
        deadline = time.monotonic() + self.config.service.shutdown_timeout
        for subsystem in reversed(started):
            remaining = max(0.1, deadline - time.monotonic())
            try:
                await asyncio.wait_for(subsystem.stop(), remaining)
            except TimeoutError:
                log.error("%s did not stop within %.1f s; going on", subsystem.name, remaining)
            except Exception as exc:
                log.error("%s failed while stopping: %s", subsystem.name, exc, exc_info=exc)
            subsystem.health.stopped()
