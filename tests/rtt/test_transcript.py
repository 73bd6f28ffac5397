"""Call transcripts: appended at once, synced soon after, readable after a kill."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from appliance.rtt.t140 import BS, LOSS_MARK, NEW_LINE
from appliance.rtt.transcript import (
    CALL_TAKER,
    CALLER,
    Transcript,
    read_transcript,
    render,
    transcript_path,
)


def test_entries_round_trip_and_render(tmp_path: Path) -> None:
    clock = iter(range(100, 200))
    transcript = Transcript(
        tmp_path / "t", "a1b2c3d4e5f6", {"peer": "sip:1001@lan"}, clock=lambda: next(clock)
    )
    transcript.event("text started", red=True)
    transcript.text(CALLER, f"Hel{BS}lp{NEW_LINE}fire")
    transcript.text(CALL_TAKER, "where?")
    transcript.text(CALLER, f" {LOSS_MARK} st")
    transcript.text(CALLER, "")  # nothing to note
    transcript.close()
    transcript.close()
    entries = read_transcript(transcript.path)
    assert entries[0] == {"t": 100, "call": "a1b2c3d4e5f6", "peer": "sip:1001@lan"}
    assert entries[1] == {"t": 101, "event": "text started", "red": True}
    assert entries[2] == {"t": 102, "from": CALLER, "text": f"Hel{BS}lp{NEW_LINE}fire"}
    assert len(entries) == 5
    assert render(entries) == {CALLER: f"Help\nfire {LOSS_MARK} st", CALL_TAKER: "where?"}
    assert stat.S_IMODE(transcript.path.stat().st_mode) == 0o600


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    transcript = Transcript(tmp_path, "abcdef", {})
    transcript.text(CALLER, "ok")
    transcript.close()
    with transcript.path.open("ab") as out:
        out.write(b'{"t": 1, "from": "caller", "te')
    assert [e.get("text") for e in read_transcript(transcript.path)] == [None, "ok"]


def test_call_ids_only(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="call id"):
        transcript_path(tmp_path, "../../etc/passwd")
    assert transcript_path(tmp_path, "0123abcd").name == "0123abcd.jsonl"


def sync_pending(transcript: Transcript) -> bool:
    return transcript._sync_timer is not None


async def test_sync_runs_off_the_loop_soon_after_a_write(tmp_path: Path) -> None:
    transcript = Transcript(tmp_path, "abcdef01", {}, sync_delay=0.05)
    transcript.text(CALLER, "a")
    transcript.text(CALLER, "b")
    assert sync_pending(transcript)  # one sync for both lines
    await asyncio.sleep(0.2)
    assert not sync_pending(transcript)
    transcript.close()
    assert len(read_transcript(transcript.path)) == 3


def test_nothing_written_is_lost_when_the_process_is_killed(tmp_path: Path) -> None:
    """SIGKILL right after the writes: every line is in the file."""
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from appliance.rtt.transcript import Transcript
        t = Transcript(Path({str(tmp_path)!r}), "deadbeef", {{}})
        for n in range(200):
            t.text("caller", f"line {{n}}")
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], check=False, timeout=30)
    assert proc.returncode == -signal.SIGKILL
    entries = read_transcript(tmp_path / "deadbeef.jsonl")
    assert [e["text"] for e in entries[1:]] == [f"line {n}" for n in range(200)]
    assert os.path.getsize(tmp_path / "deadbeef.jsonl") > 0
