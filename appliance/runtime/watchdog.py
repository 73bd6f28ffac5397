"""systemd integration over sd_notify: READY, STATUS, WATCHDOG and STOPPING.

The watchdog pings (``WATCHDOG=1``) come from the event loop itself, never from a
thread, and only while every component is alive and the loop monitor has beaten
recently: a stuck loop or a failed component stops them, and systemd restarts the
service after ``WatchdogSec``. Pings are sent at half of ``WATCHDOG_USEC`` as
sd_watchdog_enabled(3) recommends.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping

import sdnotify

from appliance.runtime.health import Health, HealthSnapshot, Status
from appliance.runtime.loopmonitor import LoopMonitor

log = logging.getLogger(__name__)


def _one_line(text: str) -> str:
    """sd_notify fields are newline-separated UTF-8: keep STATUS to one ASCII line."""
    return " ".join(text.split()).encode("ascii", "replace").decode("ascii")


class Notifier:
    """Sends sd_notify datagrams when ``NOTIFY_SOCKET`` is set; a no-op otherwise.

    sdnotify reads ``NOTIFY_SOCKET`` from the process environment, so this does too.
    """

    def __init__(self) -> None:
        self.address = os.environ.get("NOTIFY_SOCKET", "")
        self._notifier: sdnotify.SystemdNotifier | None = None
        if self.address:
            try:
                self._notifier = sdnotify.SystemdNotifier(debug=True)
            except OSError as exc:
                log.warning("cannot reach systemd's notify socket %s: %s", self.address, exc)
                return
            # A full socket must not block the event loop: a lost ping beats a stuck loop.
            sock: socket.socket = self._notifier.socket
            sock.setblocking(False)

    @property
    def enabled(self) -> bool:
        """Whether messages go anywhere."""
        return self._notifier is not None

    def send(self, *fields: str) -> bool:
        """Send ``KEY=value`` fields in one datagram; False if it could not be sent."""
        if self._notifier is None:
            return False
        try:
            self._notifier.notify("\n".join(fields))
        except OSError as exc:
            log.warning("sd_notify failed: %s", exc)
            return False
        return True

    def close(self) -> None:
        """Close the socket."""
        if self._notifier is not None:
            self._notifier.socket.close()
            self._notifier = None


def watchdog_interval(
    environ: Mapping[str, str] | None = None, pid: int | None = None
) -> float | None:
    """Ping interval in seconds (half of ``WATCHDOG_USEC``), or None if not asked for us."""
    env = os.environ if environ is None else environ
    try:
        usec = int(env.get("WATCHDOG_USEC", "0"))
    except ValueError:
        return None
    if usec <= 0:
        return None
    watchdog_pid = env.get("WATCHDOG_PID")
    if watchdog_pid and watchdog_pid != str(pid if pid is not None else os.getpid()):
        return None
    return usec / 2 / 1_000_000


class Watchdog:
    """Tells systemd about readiness, status and liveness."""

    def __init__(
        self,
        health: Health,
        monitor: LoopMonitor,
        notifier: Notifier,
        interval: float | None,
    ) -> None:
        self.health = health
        self.monitor = monitor
        self.notifier = notifier
        self.interval = interval
        self.pings = 0
        self.withheld = 0
        self._withholding: str | None = None
        self._ready = False
        health.subscribe(self._on_change)

    def _on_change(self, snapshot: HealthSnapshot) -> None:
        if self._ready:
            self.notifier.send("STATUS=" + _one_line(snapshot.summary()))

    def ready(self) -> None:
        """Send ``READY=1`` with the current status line."""
        self._ready = True
        self.notifier.send("READY=1", "STATUS=" + _one_line(self.health.snapshot().summary()))

    def status(self, text: str) -> None:
        """Send a ``STATUS=`` line."""
        self.notifier.send("STATUS=" + _one_line(text))

    def stopping(self, text: str = "Stopping") -> None:
        """Send ``STOPPING=1``."""
        self._ready = False
        self.notifier.send("STOPPING=1", "STATUS=" + _one_line(text))

    def reasons_to_withhold(self, now: float) -> list[str]:
        """Why a ping must not be sent now; empty when healthy."""
        reasons = [
            f"{c.name} failed" + (f": {c.detail}" if c.detail else "")
            for c in self.health.snapshot().components
            if c.status is Status.FAILED
        ]
        stale = self.monitor.stale_for(now)
        if stale is not None:
            reasons.append(f"event loop monitor silent for {stale:.1f} s")
        return reasons

    def tick(self, now: float) -> bool:
        """Ping if healthy; otherwise log why not (once per distinct reason)."""
        reasons = self.reasons_to_withhold(now)
        if reasons:
            self.withheld += 1
            text = "; ".join(reasons)
            if text != self._withholding:
                log.error("withholding systemd watchdog pings: %s", text)
                self._withholding = text
            return False
        if self._withholding is not None:
            log.warning("healthy again; watchdog pings resume")
            self._withholding = None
        if self.notifier.send("WATCHDOG=1"):
            self.pings += 1
        return True

    async def run(self) -> None:
        """Ping every ``interval`` seconds until cancelled (returns at once if disabled)."""
        if self.interval is None:
            return
        while True:
            await asyncio.sleep(self.interval)
            self.tick(self.monitor.clock())
