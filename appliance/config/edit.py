"""Change a configuration file in place, keeping its comments, atomically.

Edits go through ``tomlkit`` (which round-trips comments and layout), the result is
validated with the same schema as a fresh load, and only a valid result replaces the
file: written to a temporary file in the same directory, fsynced, renamed over the
original, and the directory fsynced, so a power cut leaves the old or the new file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import Table

from appliance.config.load import ConfigError, parse_config_text
from appliance.config.schema import Config


def atomic_write(path: Path, data: bytes, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new bytes, never a mix."""
    if mode is None:
        try:
            mode = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o640
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(tmp).unlink()
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class ConfigEditor:
    """Load a config file for editing; :meth:`set` values; :meth:`save` validates and writes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.document = tomlkit.parse(path.read_text("utf-8"))

    def get(self, table: Sequence[str], key: str) -> Any:
        """Current value of ``key`` in ``table`` (``None`` when absent)."""
        node: Any = self.document
        for name in table:
            node = node.get(name)
            if node is None:
                return None
        return node.get(key)

    def set(self, table: Sequence[str], key: str, value: Any) -> None:
        """Set ``key`` in ``table``, creating the table (at the end) when it is missing."""
        node: Any = self.document
        for name in table:
            child = node.get(name)
            if child is None:
                child = tomlkit.table()
                node[name] = child
            node = child
        if not isinstance(node, Table | tomlkit.TOMLDocument):
            raise TypeError(f"[{'.'.join(table)}] is not a table")
        node[key] = value

    def text(self) -> str:
        """The edited document as TOML text."""
        return tomlkit.dumps(self.document)

    def validate(self) -> Config:
        """The edited configuration as the service would load it; raises ConfigError."""
        config, issues = parse_config_text(self.text(), str(self.path))
        if config is None:
            raise ConfigError(issues)
        return config

    def save(self) -> Config:
        """Validate, then atomically replace the file; the old file stays if invalid."""
        config = self.validate()
        atomic_write(self.path, self.text().encode("utf-8"))
        return config
