"""Event-loop lag: measured on the loop, and watched from a thread while the loop is stuck.

The monitor task sleeps a short interval and records how late it woke (the lag). A lag
above the limit marks the ``event-loop`` component failed until the loop has stayed
under the limit for a recovery period, so a loop that stalls over and over stays failed
and the watchdog pings stop. A blocked loop cannot report itself: a daemon thread notices
the missing beats and logs, once per stall, where the loop's thread is stuck.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable

from appliance.runtime.health import Reporter

log = logging.getLogger(__name__)


class LoopMonitor:
    """Samples event-loop lag and reports it as component health."""

    def __init__(
        self,
        reporter: Reporter,
        limit: float,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reporter = reporter
        self.limit = limit
        self.interval = interval
        self.recovery = max(1.0, 2 * limit)
        self.clock = clock
        self.last_lag = 0.0
        self.max_lag = 0.0
        self.last_beat = clock()
        self.loop_thread: int | None = None
        self._clear_at: float | None = None

    def sample(self, lag: float, now: float) -> None:
        """Record one measurement (the decision logic; no I/O)."""
        self.last_lag = lag
        self.max_lag = max(self.max_lag, lag)
        self.last_beat = now
        if lag > self.limit:
            self._clear_at = now + self.recovery
            self.reporter.failed(f"event loop lagged {lag:.2f} s (limit {self.limit:g} s)")
        elif self._clear_at is None or now >= self._clear_at:
            self._clear_at = None
            self.reporter.ok()

    def stale_for(self, now: float) -> float | None:
        """Seconds since the last beat when that is longer than a healthy loop allows."""
        age = now - self.last_beat
        return age if age > self.interval + self.limit else None

    async def run(self) -> None:
        """Sample until cancelled."""
        loop = asyncio.get_running_loop()
        self.loop_thread = threading.get_ident()
        self.last_beat = self.clock()
        self.reporter.ok()
        while True:
            start = loop.time()
            await asyncio.sleep(self.interval)
            self.sample(max(0.0, loop.time() - start - self.interval), self.clock())


class StallWatcher(threading.Thread):
    """Logs, from outside the loop, when the loop has not beaten for longer than the limit."""

    def __init__(self, monitor: LoopMonitor) -> None:
        super().__init__(name="loop-stall-watcher", daemon=True)
        self.monitor = monitor
        self._stop_event = threading.Event()

    def run(self) -> None:
        period = min(0.25, self.monitor.limit / 2)
        stalled_since: float | None = None
        while not self._stop_event.wait(period):
            now = self.monitor.clock()
            age = now - self.monitor.last_beat
            if age > self.monitor.limit and stalled_since is None:
                stalled_since = self.monitor.last_beat
                log.error(
                    "event loop blocked for %.1f s; its thread is at:\n%s", age, self._loop_stack()
                )
            elif age <= self.monitor.limit and stalled_since is not None:
                log.warning(
                    "event loop ran again after a stall of about %.1f s",
                    self.monitor.last_beat - stalled_since,
                )
                stalled_since = None

    def _loop_stack(self) -> str:
        ident = self.monitor.loop_thread
        frame = sys._current_frames().get(ident) if ident is not None else None
        if frame is None:
            return "  (stack unavailable)"
        return "".join(traceback.format_stack(frame)).rstrip()

    def stop(self) -> None:
        """Ask the thread to end (it is a daemon, so exit does not wait for it)."""
        self._stop_event.set()
