"""The WebRTC stack loads on demand: the service starts without aiortc, aioice and PyAV,
and the first page or call imports them once, off the event loop."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from types import ModuleType

import pytest

from appliance.webrtc import stack as stack_module
from appliance.webrtc.stack import StackUnavailable, WebRtcStack

HEAVY = ("aiortc", "aioice", "av", "OpenSSL")  # pylibsrtp stays: SDES-SRTP to phones


def test_the_service_imports_none_of_the_stack() -> None:
    code = (
        "import sys, appliance.service, appliance.cli\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "[]"


async def test_concurrent_loads_import_once_in_a_worker_thread() -> None:
    seen: list[tuple[ModuleType, ModuleType, str]] = []
    stack = WebRtcStack(
        lambda leg, hooks: seen.append((leg, hooks, threading.current_thread().name))
    )
    loaded_before = stack.loaded
    stack.preload()
    first, second = await asyncio.gather(stack.load(), stack.load())
    assert not loaded_before
    assert first is second and first.__name__ == "appliance.webrtc.leg"
    assert hasattr(first, "WebRtcLeg")
    assert stack.loaded and stack.load_seconds is not None
    assert len(seen) == 1
    leg, hooks, thread = seen[0]
    assert (leg, hooks.__name__) == (first, "appliance.webrtc.hooks")
    assert thread == threading.main_thread().name  # the callback runs on the loop
    assert await stack.load() is first


async def test_a_failed_import_is_reported_and_tried_again(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(stack_module, "LEG_MODULE", "appliance.webrtc.not_installed")
    stack = WebRtcStack()
    stack.preload()
    with pytest.raises(StackUnavailable, match="could not be loaded: No module named"):
        await stack.load()
    assert not stack.loaded
    assert "the WebRTC stack (aiortc) could not be loaded" in caplog.text
    monkeypatch.undo()
    leg = await stack.load()
    assert leg.__name__ == "appliance.webrtc.leg" and stack.loaded
