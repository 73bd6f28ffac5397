"""End-to-end harness: the real service process, headless Debian Chromium through
Playwright, sipp as the phone, and a test RTP peer carrying the phone's audio."""

from __future__ import annotations

import json
import math
import os
import shutil
import ssl
import struct
import subprocess
import time
import tomllib
import urllib.request
import wave
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import async_playwright

from appliance.auth.passwords import hash_password
from tests.conftest import ServiceProcess, free_port, write_config

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]
SCENARIOS = Path(__file__).parent / "scenarios"
PASSWORD = "correct horse battery staple"
PHONE_USER = "1001"
PHONE_PASSWORD = "lobby-phone-secret"
# sipp arguments that answer the box's digest challenge as phone 1001.
PHONE_AUTH = ("-au", PHONE_USER, "-ap", PHONE_PASSWORD)

needs_peers = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium"),
    pytest.mark.skipif(shutil.which("sipp") is None, reason="needs sipp (Debian: sip-tester)"),
]


def write_tone_wav(path: Path, frequency: float, seconds: float = 10.0, rate: int = 48000) -> Path:
    """A mono 16-bit WAV sine for Chromium's fake microphone (it loops the file)."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"".join(
            struct.pack("<h", int(12000 * math.sin(2 * math.pi * frequency * n / rate)))
            for n in range(int(seconds * rate))
        ))  # fmt: skip
    return path


@dataclass
class Box:
    """The running service and how to reach it."""

    process: ServiceProcess
    url: str
    sip_port: int
    state_dir: Path

    def health(self) -> dict[str, Any]:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            with urllib.request.urlopen(self.url + "healthz", context=context, timeout=2) as r:
                return dict(json.load(r))
        except urllib.error.HTTPError as exc:
            return dict(json.load(exc))


@pytest.fixture
def start_box(tmp_path: Path) -> Iterator[Callable[..., Box]]:
    started: list[ServiceProcess] = []

    def start(**tables: dict[str, Any]) -> Box:
        sip_port = free_port()
        tables.setdefault("sip", {}).update(
            {"udp_port": sip_port, "tcp_port": sip_port, "tls_port": 0}
        )
        # sipp answers only MD5 challenges, and only the first one it is given.
        tables["sip"].setdefault("registrar", {"digest_algorithms": ["MD5"]})
        low = 20000 + (os.getpid() % 400) * 100
        tables.setdefault("media", {}).update({"rtp_port_min": low, "rtp_port_max": low + 98})
        tables.setdefault("webrtc", {}).setdefault("ice_addresses", ["127.0.0.1"])
        config = write_config(tmp_path / "appliance.toml", tmp_path / "state", **tables)
        with config.open("a") as out:
            out.write(
                f'\n[[sip.accounts]]\nuser = "{PHONE_USER}"\npassword = "{PHONE_PASSWORD}"\n'
                'display_name = "Lobby phone"\n'
            )
            out.write(
                '\n[[operators]]\nname = "alice"\n'
                f'password_hash = "{hash_password(PASSWORD)}"\n'
                'display_name = "Alice Desk 1"\n'
            )
        process = ServiceProcess(config)
        started.append(process)
        process.wait_log("after process start", timeout=30)
        port = tomllib.loads(config.read_text())["web"]["port"]
        return Box(process, f"https://127.0.0.1:{port}/", sip_port, tmp_path / "state")

    yield start
    for process in started:
        process.stop()


@pytest_asyncio.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Any]:
    tone = write_tone_wav(tmp_path / "microphone.wav", 1000.0)
    async with async_playwright() as p:
        instance = await p.chromium.launch(
            executable_path=CHROMIUM,
            args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={tone}"],
        )
        yield instance
        await instance.close()


async def open_console(browser: Any, box: Box) -> Any:
    """A logged-in page of operator alice, registered for calls."""
    context = await browser.new_context(ignore_https_errors=True)
    page = await context.new_page()
    await page.goto(box.url)
    await page.get_by_label("User name").fill("alice")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(box.url)
    await page.locator("#registration").filter(has_text="Registered").wait_for()
    return page


class Sipp:
    """One sipp run in the background."""

    def __init__(self, scenario: str, *args: str, workdir: Path) -> None:
        self.port = free_port()
        self.media_port = free_port()
        self.proc = subprocess.Popen(
            ["sipp", "-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1", "-p", str(self.port),
             "-mi", "127.0.0.1", "-mp", str(self.media_port), "-m", "1", "-nostdin",
             "-timeout", "60", "-timeout_error", *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            cwd=str(workdir),
        )  # fmt: skip
        time.sleep(0.2)

    def wait(self, timeout: float = 30.0) -> tuple[int, str]:
        out, _ = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
