"""The command line: version, default config, password hashes, usage errors."""

from __future__ import annotations

import subprocess
import sys

from appliance import __version__
from appliance.auth.passwords import verify_password
from appliance.config import default_config_text


def _run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def test_version() -> None:
    result = _run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"appliance {__version__}"


def test_default_config_round_trips() -> None:
    assert _run("default-config").stdout == default_config_text()


def test_hash_password_from_stdin() -> None:
    result = _run("hash-password", stdin="correct horse battery\n")
    assert result.returncode == 0
    stored = result.stdout.strip()
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse batter", stored)


def test_hash_password_refuses_short() -> None:
    result = _run("hash-password", stdin="short\n")
    assert result.returncode == 2
    assert "at least 8 characters" in result.stderr


def test_no_command_is_a_usage_error() -> None:
    result = _run()
    assert result.returncode == 2
    assert "COMMAND" in result.stderr


def test_verify_password_rejects_malformed_hashes() -> None:
    for stored in (
        "",
        "scrypt$1$2",
        "bcrypt$1$2$3$00$00",
        "scrypt$x$8$1$00$00",
        "scrypt$16384$8$1$zz$00",
    ):
        assert not verify_password("anything", stored)
