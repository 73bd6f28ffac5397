"""A call's text conversation on disk: one JSON object per line, appended as it happens.

Each line is written with one ``write(2)`` on an ``O_APPEND`` descriptor as soon as the
text passes the gateway, so a killed service loses nothing already written; ``fsync`` runs
at most ``sync_delay`` later (in a worker thread, off the event loop), so a power cut loses
at most that much. The first line describes the call; the others are
``{"t": <unix time>, "from": "caller" | "call-taker", "text": <T.140 text>}`` with new
lines as U+2028, erasures as U+0008 and lost text as U+FFFD (RFC 4103 §5.3), or
``{"t": ..., "event": ...}`` notes (text started, channel re-opened, ended). A reader
skips a torn last line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance.rtt.t140 import TextBuffer

log = logging.getLogger(__name__)

CALLER = "caller"
CALL_TAKER = "call-taker"
SOURCES = (CALLER, CALL_TAKER)
SYNC_DELAY = 0.2
_CALL_ID = re.compile(r"^[0-9a-f]{6,32}$")


def transcript_path(directory: Path, call_id: str) -> Path:
    """Where a call's transcript lives; ValueError for an id that is not a call id."""
    if not _CALL_ID.match(call_id):
        raise ValueError(f"{call_id!r} is not a call id")
    return directory / f"{call_id}.jsonl"


class Transcript:
    """Appends one call's text to ``<directory>/<call id>.jsonl`` (created 0600)."""

    def __init__(
        self,
        directory: Path,
        call_id: str,
        header: dict[str, Any],
        *,
        clock: Callable[[], float] = time.time,
        sync_delay: float = SYNC_DELAY,
    ) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = transcript_path(directory, call_id)
        self._clock = clock
        self._sync_delay = sync_delay
        self._fd: int | None = os.open(
            self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600
        )
        self._sync_timer: asyncio.TimerHandle | None = None
        self.lines = 0
        self._append({"t": self._clock(), "call": call_id, **header})

    def text(self, source: str, text: str) -> None:
        """Text that passed the gateway from ``source`` (caller or call-taker)."""
        if text:
            self._append({"t": self._clock(), "from": source, "text": text})

    def event(self, event: str, **fields: Any) -> None:
        """A note in the conversation (text started, channel re-opened, call ended)."""
        self._append({"t": self._clock(), "event": event, **fields})

    def _append(self, entry: dict[str, Any]) -> None:
        if self._fd is None:
            return
        data = (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        try:
            os.write(self._fd, data)
        except OSError as exc:
            log.error("transcript %s: %s", self.path, exc)
            return
        self.lines += 1
        self._schedule_sync()

    def _schedule_sync(self) -> None:
        if self._sync_timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._fsync()
            return
        self._sync_timer = loop.call_later(self._sync_delay, self._sync_in_thread, loop)

    def _sync_in_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        self._sync_timer = None
        loop.run_in_executor(None, self._fsync)

    def _fsync(self) -> None:
        fd = self._fd
        if fd is None:
            return
        try:
            os.fsync(fd)
        except OSError as exc:  # closed meanwhile, or the disk failed
            log.debug("transcript %s: fsync: %s", self.path, exc)

    def close(self) -> None:
        """Sync and close (idempotent)."""
        if self._sync_timer is not None:
            self._sync_timer.cancel()
            self._sync_timer = None
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.fsync(fd)
            os.close(fd)


def read_transcript(path: Path) -> list[dict[str, Any]]:
    """The entries of a transcript file, skipping lines that do not parse (a torn end)."""
    entries: list[dict[str, Any]] = []
    with path.open("rb") as source:
        for raw in source:
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            if isinstance(entry, dict):
                entries.append(entry)
    return entries


def render(entries: list[dict[str, Any]]) -> dict[str, str]:
    """The visible text of each side after all its edits (new lines as ``\\n``)."""
    buffers = {source: TextBuffer() for source in SOURCES}
    for entry in entries:
        buffer = buffers.get(str(entry.get("from")))
        text = entry.get("text")
        if buffer is not None and isinstance(text, str):
            buffer.apply(text)
    return {source: buffer.text.replace("\u2028", "\n") for source, buffer in buffers.items()}
