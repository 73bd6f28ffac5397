"""Logging to stderr in a form journald keeps well.

Under systemd (``JOURNAL_STREAM`` names our stderr) each line carries an ``<N>`` syslog
priority prefix (sd-daemon(3)) and no timestamp, since the journal adds its own; the
lines of a traceback keep the priority of their record. On a terminal, lines carry a
local timestamp and the level name instead.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

# RFC 5424 §6.2.1 severities, as sd-daemon(3) prefixes use them.
_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


def syslog_priority(levelno: int) -> int:
    """The syslog severity for a logging level (levels between round down)."""
    for level in sorted(_PRIORITY, reverse=True):
        if levelno >= level:
            return _PRIORITY[level]
    return 7


class JournalFormatter(logging.Formatter):
    """``<prio>logger: message`` on every line of the record."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in text.splitlines() or [""])


def stderr_is_journal(stream: TextIO, environ: dict[str, str] | None = None) -> bool:
    """True when systemd connected ``stream`` to the journal (systemd.exec(5) JOURNAL_STREAM)."""
    value = (environ if environ is not None else os.environ).get("JOURNAL_STREAM", "")
    try:
        device, inode = (int(part) for part in value.split(":"))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return st.st_dev == device and st.st_ino == inode


def setup_logging(level: str, stream: TextIO | None = None) -> None:
    """Configure the root logger once for the process."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    if stderr_is_journal(stream):
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log at INFO would flood the journal with health checks.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
