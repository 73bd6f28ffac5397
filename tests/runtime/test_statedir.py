"""The state directory: where it is, and that it is private."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from appliance.runtime.statedir import StateDirError, ensure_state_dir, resolve_state_dir


def test_resolution_order() -> None:
    assert resolve_state_dir("/srv/x", {"STATE_DIRECTORY": "/var/lib/a"}) == Path("/srv/x")
    assert resolve_state_dir("", {"STATE_DIRECTORY": "/var/lib/a:/var/lib/b"}) == Path("/var/lib/a")
    assert resolve_state_dir("", {"XDG_STATE_HOME": "/h/s", "HOME": "/h"}) == Path("/h/s/appliance")
    assert resolve_state_dir("", {"HOME": "/h"}) == Path("/h/.local/state/appliance")


def test_created_private(tmp_path: Path) -> None:
    path = ensure_state_dir(tmp_path / "a" / "state")
    assert path.stat().st_mode & 0o777 == 0o700


def test_loose_permissions_are_tightened(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "state"
    path.mkdir(mode=0o755)
    path.chmod(0o777)
    ensure_state_dir(path)
    assert path.stat().st_mode & 0o777 == 0o700
    assert "tightening to 0700" in caplog.text


def test_symlink_and_file_are_refused(tmp_path: Path) -> None:
    target = tmp_path / "real"
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(StateDirError, match="symbolic link"):
        ensure_state_dir(link)
    file = tmp_path / "file"
    file.write_text("")
    with pytest.raises(FileExistsError):
        ensure_state_dir(file)


def test_foreign_owner_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to create a directory owned by another user")
    path = tmp_path / "theirs"
    path.mkdir()
    os.chown(path, 65534, 65534)
    with pytest.raises(StateDirError, match="belongs to uid 65534"):
        ensure_state_dir(path)
