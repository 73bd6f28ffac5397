"""The helper's persistent state: the rollback record and the applied ``[network]`` section.

The rollback record holds the full prior state of the links a change manages (links,
static addresses, admin routes) and the network that was applied before. It is written with
:func:`~appliance.config.atomic_write` (temporary file, fsync, rename, directory fsync) before
the first netlink change, so a crash or a power cut at any point leaves either no record (and
no change) or a record from which the next start restores the prior state.

Files, under the helper's state directory::

    net/rollback.json   the latest record (status applying, pending or done)
    net/applied.json    the [network] section last applied and kept (confirmed)
    net/leases/         DHCP leases, one JSON file per interface
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from appliance.config.edit import atomic_write
from appliance.config.schema import NetworkConfig
from appliance.net.model import NetState
from appliance.net.netconfig import network_from_json, network_to_json

log = logging.getLogger(__name__)

RECORD_VERSION = 1
Mode = Literal["apply", "try"]
RecordStatus = Literal["applying", "pending", "done"]


@dataclass
class Record:
    """What it takes to undo one apply or try."""

    mode: Mode
    status: RecordStatus
    """``applying``: steps running; ``pending``: a try awaits confirmation; ``done``: kept."""
    created: float
    """Wall-clock time (``time.time()``) the record was written."""
    deadline: float | None
    """Wall-clock time a pending try rolls back at."""
    scope: list[str]
    snapshot: NetState
    prior_network: NetworkConfig | None
    prior_resolv: str | None
    """The resolver file before the change (``None``: there was none)."""
    network: NetworkConfig
    previous: Record | None = None
    """For a try: the kept record it replaced, reinstated when the try is rolled back."""

    @property
    def unfinished(self) -> bool:
        """An apply that was interrupted or a try not confirmed: roll back on start."""
        return self.status in ("applying", "pending")

    def to_json(self) -> dict[str, Any]:
        """The file's content."""
        return {
            "version": RECORD_VERSION,
            "mode": self.mode,
            "status": self.status,
            "created": self.created,
            "deadline": self.deadline,
            "scope": self.scope,
            "snapshot": self.snapshot.to_json(),
            "prior_network": (
                network_to_json(self.prior_network) if self.prior_network is not None else None
            ),
            "prior_resolv": self.prior_resolv,
            "network": network_to_json(self.network),
            "previous": self.previous.to_json() if self.previous is not None else None,
        }

    @classmethod
    def from_json(cls, data: Any) -> Record:
        """Parse a record; ``ValueError`` when it is not one this version wrote."""
        if not isinstance(data, dict) or data.get("version") != RECORD_VERSION:
            raise ValueError("not a version 1 rollback record")
        try:
            mode = data["mode"]
            status = data["status"]
            if mode not in ("apply", "try") or status not in ("applying", "pending", "done"):
                raise ValueError(f"unknown mode {mode!r} or status {status!r}")
            prior = data["prior_network"]
            previous = data.get("previous")
            return cls(
                mode=mode,
                status=status,
                created=float(data["created"]),
                deadline=None if data["deadline"] is None else float(data["deadline"]),
                scope=[str(name) for name in data["scope"]],
                snapshot=NetState.from_json(data["snapshot"]),
                prior_network=None if prior is None else network_from_json(prior),
                prior_resolv=data["prior_resolv"],
                network=network_from_json(data["network"]),
                previous=None if previous is None else cls.from_json(previous),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed rollback record: {exc}") from exc

    def seconds_left(self, now: float | None = None) -> float | None:
        """Seconds until a pending try rolls back."""
        if self.deadline is None or self.status != "pending":
            return None
        return max(0.0, self.deadline - (time.time() if now is None else now))


class Store:
    """The files under ``<state>/net``."""

    def __init__(self, state_dir: Path) -> None:
        self.directory = state_dir / "net"
        self.record_path = self.directory / "rollback.json"
        self.applied_path = self.directory / "applied.json"
        self.lease_dir = self.directory / "leases"

    def prepare(self) -> None:
        """Create the directories (0700)."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.lease_dir.mkdir(mode=0o700, exist_ok=True)

    def load_record(self) -> Record | None:
        """The latest record; an unreadable one is moved aside (``.bad``) and logged."""
        try:
            raw = self.record_path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return Record.from_json(json.loads(raw))
        except (ValueError, TypeError) as exc:
            bad = self.record_path.with_suffix(".json.bad")
            log.error("rollback record %s is unusable (%s); kept as %s", self.record_path, exc, bad)
            self.record_path.replace(bad)
            return None

    def save_record(self, record: Record) -> None:
        """Write the record atomically (see the module docstring)."""
        data = json.dumps(record.to_json(), indent=1).encode()
        atomic_write(self.record_path, data, 0o600)

    def clear_record(self) -> None:
        """Forget the record."""
        with contextlib.suppress(FileNotFoundError):
            self.record_path.unlink()

    def load_applied(self) -> NetworkConfig | None:
        """The ``[network]`` section applied last (``None`` when there is none)."""
        try:
            raw = self.applied_path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return network_from_json(json.loads(raw), str(self.applied_path))
        except (ValueError, TypeError) as exc:
            log.error("applied network %s is unusable: %s", self.applied_path, exc)
            return None

    def save_applied(self, network: NetworkConfig | None) -> None:
        """Remember ``network`` as applied (``None``: nothing is)."""
        if network is None:
            with contextlib.suppress(FileNotFoundError):
                self.applied_path.unlink()
            return
        atomic_write(self.applied_path, json.dumps(network_to_json(network)).encode(), 0o600)
