"""The health model: each component reports its state; the service derives readiness.

States, and what they mean for the process:

* ``starting`` — not serving yet. The service is not ready (no ``READY=1``, /healthz 503).
* ``ok`` — serving.
* ``degraded`` — serving with a problem a restart would not fix (say, the upstream PBX is
  unreachable). Ready, reported on /healthz, watchdog pings continue.
* ``failed`` — broken in a way a restart may fix (a crashed task, a stuck event loop).
  /healthz answers 503 and the systemd watchdog pings stop, so systemd restarts us.
* ``stopped`` — stopped on purpose during shutdown.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass


class Status(enum.Enum):
    """A component's state; see the module docstring."""

    STARTING = "starting"
    OK = "ok"
    DEGRADED = "degraded"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(frozen=True)
class ComponentState:
    """One component's latest report."""

    name: str
    status: Status
    detail: str
    since: float


@dataclass(frozen=True)
class HealthSnapshot:
    """All components at one moment."""

    components: tuple[ComponentState, ...]

    @property
    def alive(self) -> bool:
        """No component has failed: the watchdog may ping."""
        return all(c.status is not Status.FAILED for c in self.components)

    @property
    def ready(self) -> bool:
        """Every component serves (ok or degraded)."""
        return all(c.status in (Status.OK, Status.DEGRADED) for c in self.components)

    @property
    def overall(self) -> str:
        """``ok``, ``degraded``, ``starting``, ``stopping`` or ``failed``."""
        states = {c.status for c in self.components}
        if Status.FAILED in states:
            return "failed"
        if Status.STOPPED in states:
            return "stopping"
        if Status.STARTING in states:
            return "starting"
        if Status.DEGRADED in states:
            return "degraded"
        return "ok"

    def problems(self) -> list[str]:
        """One line per component that is not ok, worst first."""
        order = {Status.FAILED: 0, Status.STARTING: 1, Status.DEGRADED: 2, Status.STOPPED: 3}
        bad = sorted(
            (c for c in self.components if c.status is not Status.OK),
            key=lambda c: (order[c.status], c.name),
        )
        return [f"{c.name} {c.status.value}" + (f": {c.detail}" if c.detail else "") for c in bad]

    def summary(self) -> str:
        """A one-line human summary, as systemd shows in ``STATUS=``."""
        problems = self.problems()
        if not problems:
            return f"Serving: {len(self.components)} components ok"
        return f"{self.overall.capitalize()}: " + "; ".join(problems)


Listener = Callable[[HealthSnapshot], None]


class Health:
    """The registry components report to; listeners hear every change."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._states: dict[str, ComponentState] = {}
        self._listeners: list[Listener] = []

    def reporter(self, name: str) -> Reporter:
        """Register component ``name`` (state ``starting``) and return its reporter."""
        if name not in self._states:
            self._states[name] = ComponentState(name, Status.STARTING, "", self._clock())
        return Reporter(self, name)

    def set(self, name: str, status: Status, detail: str = "") -> None:
        """Record a report; listeners run only when state or detail changed."""
        old = self._states.get(name)
        if old is not None and old.status is status and old.detail == detail:
            return
        since = old.since if old is not None and old.status is status else self._clock()
        self._states[name] = ComponentState(name, status, detail, since)
        snapshot = self.snapshot()
        for listener in list(self._listeners):
            listener(snapshot)

    def snapshot(self) -> HealthSnapshot:
        """The current state of every component."""
        return HealthSnapshot(tuple(self._states.values()))

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener`` with a snapshot after every change."""
        self._listeners.append(listener)


class Reporter:
    """What one component holds to report its own state."""

    def __init__(self, health: Health, name: str) -> None:
        self.health = health
        self.name = name

    def ok(self, detail: str = "") -> None:
        """Serving."""
        self.health.set(self.name, Status.OK, detail)

    def degraded(self, detail: str) -> None:
        """Serving with a problem a restart would not fix."""
        self.health.set(self.name, Status.DEGRADED, detail)

    def failed(self, detail: str) -> None:
        """Broken; a restart may help."""
        self.health.set(self.name, Status.FAILED, detail)

    def starting(self, detail: str = "") -> None:
        """Not serving yet."""
        self.health.set(self.name, Status.STARTING, detail)

    def stopped(self, detail: str = "") -> None:
        """Stopped on purpose."""
        self.health.set(self.name, Status.STOPPED, detail)
