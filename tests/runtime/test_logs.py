"""Logs: journald priority prefixes under systemd, timestamps on a terminal."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.runtime.logs import setup_logging, stderr_is_journal, syslog_priority


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_priorities() -> None:
    assert [syslog_priority(lvl) for lvl in (50, 40, 30, 20, 10, 5, 25)] == [2, 3, 4, 6, 7, 7, 6]


def test_journal_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> None:
    out = tmp_path / "stderr"
    with out.open("w") as stream:
        st = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert stderr_is_journal(stream)
        setup_logging("info", stream)
        log = logging.getLogger("appliance.test")
        log.debug("hidden")
        log.warning("careful")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    lines = out.read_text().splitlines()
    assert lines[0] == "<4>appliance.test: careful"
    assert lines[1] == "<3>appliance.test: failed"
    assert all(line.startswith("<3>") for line in lines[2:])  # traceback keeps its priority
    assert lines[-1] == "<3>ValueError: boom"


def test_terminal_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "1:2")
    out = tmp_path / "stderr"
    with out.open("w") as stream:
        assert not stderr_is_journal(stream)
        setup_logging("debug", stream)
        logging.getLogger("x").debug("hello")
    line = out.read_text().strip()
    assert line.endswith("DEBUG   x: hello")
    assert line[:4].isdigit()  # a timestamp leads
