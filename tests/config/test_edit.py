"""Config edits keep comments, validate first, and replace the file atomically."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from appliance.config import ConfigEditor, ConfigError, atomic_write, default_config_text


def test_set_keeps_comments_and_layout(tmp_path: Path) -> None:
    path = tmp_path / "appliance.toml"
    path.write_text(default_config_text())
    path.chmod(0o640)
    editor = ConfigEditor(path)
    editor.set(["web"], "port", 9443)
    editor.set(["sip", "registrar"], "min_expires", 120)
    config = editor.save()
    assert config.web.port == 9443
    assert config.sip.registrar.min_expires == 120
    text = path.read_text()
    before = default_config_text()
    # Only the two values changed; every comment line is still there.
    changed = [
        (a, b) for a, b in zip(before.splitlines(), text.splitlines(), strict=True) if a != b
    ]
    assert changed == [("port = 8443", "port = 9443"), ("min_expires = 60", "min_expires = 120")]
    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["appliance.toml"]


def test_new_table_is_added(tmp_path: Path) -> None:
    path = tmp_path / "appliance.toml"
    path.write_text("# mine\n[web]\nport = 8443 # the port\n")
    editor = ConfigEditor(path)
    editor.set(["rtt"], "redundancy", 3)
    editor.save()
    text = path.read_text()
    assert text.startswith("# mine\n[web]\nport = 8443 # the port\n")
    assert "[rtt]\nredundancy = 3\n" in text
    assert editor.get(["rtt"], "redundancy") == 3


def test_invalid_edit_leaves_the_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "appliance.toml"
    original = "[web]\nport = 8443\n"
    path.write_text(original)
    editor = ConfigEditor(path)
    editor.set(["web"], "port", 70000)
    with pytest.raises(ConfigError, match=r"\[web\] port: expected a value from 1 to 65535"):
        editor.save()
    assert path.read_text() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["appliance.toml"]


def test_atomic_write_failure_keeps_old_content(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"old")

    # A write that fails half-way (not bytes-like for os.write) must leave no temp file.
    with pytest.raises(TypeError):
        atomic_write(path, 12345)  # type: ignore[arg-type]
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_atomic_write_mode(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    atomic_write(path, b"x", mode=0o600)
    assert path.stat().st_mode & 0o777 == 0o600
    assert os.stat(tmp_path).st_mode  # directory still there after the dir fsync
