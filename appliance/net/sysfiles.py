"""Files the helper keeps for the rest of the system: the resolver file, networkd markers.

* The resolver file (resolv.conf(5)) lists ``[network] dns_servers`` then the servers learnt
  by DHCP, and the DHCP domain as ``search``. It is written atomically to the helper's path
  (``--resolv-conf``, default ``/run/appliance-net/resolv.conf``), for ``/etc/resolv.conf``
  to link to. (The image's ``/etc/resolv.conf`` is systemd-resolved's stub: see docs/image.md.)
* Every interface the helper manages gets a marker ``00-appliance-net-NAME.network`` with
  ``Unmanaged=yes`` (systemd.network(5) ``[Link]``) in ``/run/appliance-net/networkd``. When
  systemd-networkd runs, ``appliance-net-networkd.path`` starts a root oneshot that copies
  the markers into ``/run/systemd/network`` and runs ``networkctl reload``: the lowest file
  name wins among matching ``.network`` files, so networkd leaves those interfaces alone and
  keeps managing the others. (The helper itself runs unprivileged and cannot write there.)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from appliance.config.edit import atomic_write

log = logging.getLogger(__name__)

MAXNS = 3
"""resolv.conf(5): the resolver uses at most three name servers."""

MARKER_PREFIX = "00-appliance-net-"


def render_resolv(servers: Sequence[str], search: Sequence[str] = ()) -> str:
    """The resolver file's text; servers beyond the third are listed as comments."""
    lines = ["# Written by appliance-net from [network] dns_servers and DHCP leases."]
    unique: list[str] = []
    for server in servers:
        if server not in unique:
            unique.append(server)
    for index, server in enumerate(unique):
        prefix = "" if index < MAXNS else "# (unused: resolv.conf takes three) "
        lines.append(f"{prefix}nameserver {server}")
    domains = [d for d in dict.fromkeys(search) if d]
    if domains:
        lines.append("search " + " ".join(domains))
    return "\n".join(lines) + "\n"


def write_resolv(path: Path, text: str | None) -> bool:
    """Replace the resolver file with ``text`` (``None`` removes it); True when it changed."""
    try:
        current: str | None = path.read_text("utf-8")
    except FileNotFoundError:
        current = None
    if current == text:
        return False
    if text is None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return True
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text.encode(), 0o644)
    return True


def read_text(path: Path) -> str | None:
    """A file's text, or ``None`` when it does not exist."""
    try:
        return path.read_text("utf-8")
    except FileNotFoundError:
        return None


def networkd_marker(name: str) -> str:
    """The ``.network`` file that makes networkd leave interface ``name`` alone."""
    return (
        "# Written by appliance-net: this interface is managed by the appliance.\n"
        f"[Match]\nName={name}\n\n[Link]\nUnmanaged=yes\n"
    )


def write_networkd_markers(directory: Path, names: Iterable[str]) -> bool:
    """Make the markers in ``directory`` exactly those for ``names``; True when any changed."""
    wanted = {f"{MARKER_PREFIX}{name}.network": networkd_marker(name) for name in names}
    changed = False
    if directory.is_dir():
        for path in directory.glob(f"{MARKER_PREFIX}*.network"):
            if path.name not in wanted:
                path.unlink()
                changed = True
    if wanted:
        directory.mkdir(parents=True, exist_ok=True)
    for filename, text in wanted.items():
        path = directory / filename
        if read_text(path) != text:
            atomic_write(path, text.encode(), 0o644)
            changed = True
    return changed
