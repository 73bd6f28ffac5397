"""Subsystems: the parts the service starts in order, supervises, and stops in reverse."""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from appliance.runtime.health import Health

log = logging.getLogger(__name__)


class Subsystem(abc.ABC):
    """A part of the service with its own health component and supervised tasks.

    ``start`` returns once the subsystem serves (and has reported ``ok`` or
    ``degraded``); it raises if it cannot start. ``stop`` releases everything it holds.
    A task started with :meth:`spawn` that dies marks the subsystem failed.
    """

    def __init__(self, name: str, health: Health) -> None:
        self.name = name
        self.health = health.reporter(name)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False

    @abc.abstractmethod
    async def start(self) -> None:
        """Start serving."""

    async def stop(self) -> None:
        """Stop serving; the default cancels the spawned tasks."""
        await self.cancel_tasks()

    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        """Run ``coro`` as a task that is expected to run until the subsystem stops."""
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.name}: {what}")
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._task_done(t, what))
        return task

    def _task_done(self, task: asyncio.Task[Any], what: str) -> None:
        self._tasks.discard(task)
        if task.cancelled() or self._stopping:
            return
        exc = task.exception()
        if exc is None:
            log.error("%s: %s ended unexpectedly", self.name, what)
            self.health.failed(f"{what} ended unexpectedly")
        else:
            log.error("%s: %s crashed", self.name, what, exc_info=exc)
            self.health.failed(f"{what} crashed: {type(exc).__name__}: {exc}")

    async def cancel_tasks(self) -> None:
        """Cancel every spawned task and wait for them to finish."""
        self._stopping = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
