"""The WebRTC stack (aiortc, aioice, PyAV with its FFmpeg libraries), loaded when needed.

The stack is a quarter of the service's memory (about 23 MB of 88 MB on amd64) and only
calls use it, so the service starts without it. It is imported in a worker thread, once:
when the first call-taker's page connects (so that its first call does not wait for the
import), or when a call needs it, whichever comes first. Until then the box serves its
pages, its SIP registrar and its network monitor in the memory those need.

Importing ``appliance.webrtc.leg`` imports the whole stack; nothing else in the service
imports aiortc, aioice or av at module level (``tests/webrtc/test_stack.py`` checks it).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Callable
from types import ModuleType

log = logging.getLogger(__name__)

LEG_MODULE = "appliance.webrtc.leg"
HOOKS_MODULE = "appliance.webrtc.hooks"


class StackUnavailable(RuntimeError):
    """The WebRTC stack could not be imported (a broken installation)."""


class WebRtcStack:
    """Imports the stack once, off the event loop, and tells ``on_loaded`` when it has."""

    def __init__(self, on_loaded: Callable[[ModuleType, ModuleType], None] | None = None) -> None:
        self._on_loaded = on_loaded
        self._task: asyncio.Task[ModuleType] | None = None
        self.leg: ModuleType | None = None
        self.load_seconds: float | None = None

    @property
    def loaded(self) -> bool:
        """True once the stack is imported and its hooks are in place."""
        return self.leg is not None

    def preload(self) -> None:
        """Start loading in the background (idempotent); a failure is logged, and the next
        :meth:`load` reports it to whoever needs the stack."""
        if self.leg is None and self._task is None:
            self._start()

    async def load(self) -> ModuleType:
        """The ``appliance.webrtc.leg`` module; imports the stack on first use.

        Raises :class:`StackUnavailable` when the import fails; a later call tries again.
        """
        if self.leg is not None:
            return self.leg
        task = self._task or self._start()
        try:
            return await asyncio.shield(task)
        except StackUnavailable:
            if self._task is task:
                self._task = None
            raise

    def _start(self) -> asyncio.Task[ModuleType]:
        task = asyncio.get_running_loop().create_task(self._import(), name="WebRTC stack import")
        task.add_done_callback(_retrieve)
        self._task = task
        return task

    async def _import(self) -> ModuleType:
        started = time.perf_counter()
        try:
            leg = await asyncio.to_thread(importlib.import_module, LEG_MODULE)
            hooks = importlib.import_module(HOOKS_MODULE)
        except Exception as exc:
            log.exception("the WebRTC stack (aiortc) could not be loaded")
            raise StackUnavailable(f"the WebRTC stack could not be loaded: {exc}") from exc
        self.load_seconds = time.perf_counter() - started
        self.leg = leg
        log.info("WebRTC stack loaded in %.2f s", self.load_seconds)
        if self._on_loaded is not None:
            self._on_loaded(leg, hooks)
        return leg


def _retrieve(task: asyncio.Task[ModuleType]) -> None:
    """Mark a failed background import as seen; :meth:`WebRtcStack._import` logged it."""
    if not task.cancelled():
        task.exception()
