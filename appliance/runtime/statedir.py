"""The service's state directory: certificates, registrations, transcripts."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)


class StateDirError(Exception):
    """The state directory cannot be used safely."""


def resolve_state_dir(configured: str, environ: Mapping[str, str] | None = None) -> Path:
    """The configured directory, else systemd's ``$STATE_DIRECTORY``, else the XDG state home."""
    env = os.environ if environ is None else environ
    if configured:
        return Path(configured).expanduser()
    if env.get("STATE_DIRECTORY"):
        # systemd.exec(5): a colon-separated list when several are configured.
        return Path(env["STATE_DIRECTORY"].split(":")[0])
    base = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME", "/")) / ".local" / "state")
    return Path(base) / "appliance"


def ensure_state_dir(path: Path) -> Path:
    """Create ``path`` (0700) or check an existing one; tighten group/other permissions."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):
        raise StateDirError(f"state directory {path} is a symbolic link; refusing to use it")
    if not stat.S_ISDIR(st.st_mode):
        raise StateDirError(f"state directory {path} exists and is not a directory")
    if st.st_uid != os.geteuid():
        raise StateDirError(
            f"state directory {path} belongs to uid {st.st_uid}, not to this service "
            f"(uid {os.geteuid()})"
        )
    if st.st_mode & 0o077:
        log.warning("state directory %s had mode %o; tightening to 0700", path, st.st_mode & 0o777)
        path.chmod(0o700)
    if not os.access(path, os.W_OK | os.X_OK):
        raise StateDirError(f"state directory {path} is not writable by this service")
    return path
