"""Where the helper keeps its socket and files on the box (``appliance-net.service``)."""

from __future__ import annotations

from pathlib import Path

DEFAULT_SOCKET = Path("/run/appliance-net/net.sock")
DEFAULT_RESOLV = Path("/run/appliance-net/resolv.conf")
DEFAULT_STATE = Path("/var/lib/appliance-net")
DEFAULT_NETWORKD = Path("/run/appliance-net/networkd")
"""Where the helper writes its systemd-networkd markers (appliance-net-networkd.path)."""
