"""Audio calls end to end: headless Chromium on the call-taker's page ⇄ the box ⇄ sipp.

Chromium's fake microphone plays a 1000 Hz WAV; sipp (or the test's RTP peer for the
phone's media) plays 440 Hz PCMU. Each side's frequency is measured where it arrives:
in the page with a WebAudio analyser, on the SIP side by decoding the RTP.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from aiortc.rtp import RtcpByePacket, RtcpPacket, RtcpSdesPacket, RtcpSrPacket

from tests.e2e.conftest import PHONE_AUTH, Box, Sipp, needs_peers, open_console
from tests.peers.rtp_peer import RtpPeer, dominant_frequency, ulaw_tone
from tests.waiting import until

pytestmark = needs_peers

ANALYSE = """
async () => {
  const audio = [...document.querySelectorAll("audio.remote")].find((a) => a.srcObject);
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 32768;
  ctx.createMediaStreamSource(audio.srcObject).connect(analyser);
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const bins = new Float32Array(analyser.frequencyBinCount);
  analyser.getFloatFrequencyData(bins);
  let best = 1;
  for (let i = 2; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
  const [a, b, c] = [bins[best - 1], bins[best], bins[best + 1]];
  const shift = (a - c) / (2 * (a - 2 * b + c));
  await ctx.close();
  return {frequency: (best + shift) * ctx.sampleRate / analyser.fftSize, level: b};
}
"""


def sipp_workdir(tmp_path: Path) -> Path:
    """sipp's working directory, with the 440 Hz PCMU file its scenarios stream."""
    (tmp_path / "tone.ulaw").write_bytes(ulaw_tone(440.0, 2.0))
    return tmp_path


async def state_text(page: Any) -> str:
    return str(await page.locator("article.call .state").first.inner_text())


async def wait_state(page: Any, text: str, timeout: float = 15.0) -> None:
    await page.locator("article.call .state", has_text=text).first.wait_for(timeout=timeout * 1000)


async def test_operator_calls_a_phone_hears_its_tone_holds_resumes_and_hangs_up(
    start_box: Any, browser: Any, tmp_path: Path
) -> None:
    box: Box = start_box()
    sipp = Sipp("phone_plays_tone.xml", workdir=sipp_workdir(tmp_path))
    try:
        page = await open_console(browser, box)
        await page.get_by_role("textbox", name="Number or SIP address").fill(
            f"sip:phone@127.0.0.1:{sipp.port}"
        )
        await page.get_by_role("button", name="Call").click()
        await wait_state(page, "Connected")
        heard = await page.evaluate(ANALYSE)
        assert abs(heard["frequency"] - 440.0) < 4.0, heard
        assert heard["level"] > -70, heard

        hold = page.get_by_role("button", name="Hold")
        await hold.click()
        await wait_state(page, "On hold")
        assert await hold.get_attribute("aria-pressed") == "true"
        await hold.click()
        await wait_state(page, "Connected")
        await page.get_by_role("button", name="Hang up").click()
        await wait_state(page, "Ended")
        code, output = await asyncio.to_thread(sipp.wait)
        assert code == 0, output
    finally:
        sipp.stop()


async def test_phone_calls_operator_hears_the_page_and_dtmf_goes_both_ways(
    start_box: Any, browser: Any, tmp_path: Path
) -> None:
    box: Box = start_box()
    page = await open_console(browser, box)
    peer = await RtpPeer.open()
    sipp = Sipp(
        "phone_calls_operator.xml", "-key", "rtp_port", str(peer.port),
        "-s", "alice", f"127.0.0.1:{box.sip_port}", *PHONE_AUTH, workdir=tmp_path,
    )  # fmt: skip
    try:
        alert = page.get_by_role("alertdialog")
        await alert.wait_for()
        text = await alert.inner_text()
        assert "Lobby phone" in text, "named by its authenticated account, not its From header"
        assert "sip:1001@127.0.0.1" in text
        await page.get_by_role("button", name="Answer").click()
        await wait_state(page, "Connected")
        await until(lambda: len(peer.received.audio) > 100, 10, "audio from the page")
        source = next(iter(peer.received.sources))
        peer.start_tone(source, 440.0)

        await asyncio.sleep(1.0)
        heard_on_phone = dominant_frequency(peer.decoded(1.0), 900, 1100)
        assert abs(heard_on_phone - 1000.0) <= 3.0, heard_on_phone
        heard = await page.evaluate(ANALYSE)
        assert abs(heard["frequency"] - 440.0) < 4.0, heard

        await page.get_by_role("button", name="Key 5").click()
        await page.get_by_role("button", name="Key #").click()
        await until(lambda: peer.received.events == ["5", "#"], 5, "RFC 4733 digits")
        await peer.send_event("7")
        await page.locator("article.call .dtmf", has_text="7").wait_for()

        await page.get_by_role("button", name="Hang up").click()
        code, output = await asyncio.to_thread(sipp.wait)
        assert code == 0, output

        # The box takes part in RTCP toward the phone (RFC 3550 §6), on the RTP port as the
        # phone's a=rtcp-mux asked (RFC 5761): sender reports with a CNAME while it sends
        # audio, and a BYE when the call ends. Read with aiortc's parser, not the box's.
        def ended() -> bool:
            return any(
                isinstance(p, RtcpByePacket) for p in RtcpPacket.parse(peer.received.rtcp[-1])
            )

        await until(lambda: bool(peer.received.rtcp) and ended(), 5, "RTCP BYE from the box")
        reports = [RtcpPacket.parse(data) for data in peer.received.rtcp]
        assert len(reports) >= 2, reports
        assert isinstance(reports[0][0], RtcpSrPacket), reports[0]
        assert all(isinstance(p[1], RtcpSdesPacket) and p[1].chunks[0].items for p in reports)
    finally:
        sipp.stop()
        peer.close()


async def test_phone_hangs_up_and_the_page_is_told(
    start_box: Any, browser: Any, tmp_path: Path
) -> None:
    box: Box = start_box()
    page = await open_console(browser, box)
    sipp = Sipp(
        "phone_calls_and_hangs_up.xml",
        "-s",
        "alice",
        f"127.0.0.1:{box.sip_port}",
        *PHONE_AUTH,
        workdir=tmp_path,
    )
    try:
        await page.get_by_role("button", name="Answer").click()
        await wait_state(page, "Connected")
        await page.locator("article.call .cause", has_text="the other party hung up").wait_for()
        assert await state_text(page) == "Ended"
        code, output = await asyncio.to_thread(sipp.wait)
        assert code == 0, output
    finally:
        sipp.stop()


async def test_declined_call_gets_603(start_box: Any, browser: Any, tmp_path: Path) -> None:
    box: Box = start_box()
    page = await open_console(browser, box)
    sipp = Sipp(
        "phone_is_declined.xml",
        "-s",
        "alice",
        f"127.0.0.1:{box.sip_port}",
        *PHONE_AUTH,
        workdir=tmp_path,
    )
    try:
        await page.get_by_role("button", name="Decline").click()
        code, output = await asyncio.to_thread(sipp.wait)
        assert code == 0, output
        assert await page.get_by_role("alertdialog").count() == 0
    finally:
        sipp.stop()


async def test_closing_the_tab_mid_call_sends_bye_within_5_s(
    start_box: Any, browser: Any, tmp_path: Path
) -> None:
    box: Box = start_box()
    sipp = Sipp("phone_waits_for_bye.xml", workdir=sipp_workdir(tmp_path))
    try:
        page = await open_console(browser, box)
        await page.get_by_role("textbox", name="Number or SIP address").fill(
            f"sip:phone@127.0.0.1:{sipp.port}"
        )
        await page.get_by_role("button", name="Call").click()
        await wait_state(page, "Connected")
        closed = time.monotonic()
        await page.context.close()
        code, output = await asyncio.to_thread(sipp.wait, 10.0)
        took = time.monotonic() - closed
        assert code == 0, output
        assert took < 5.0, f"BYE came {took:.1f} s after the tab closed"
    finally:
        sipp.stop()


async def test_silent_phone_ends_the_call_and_the_page_says_why(
    start_box: Any, browser: Any, tmp_path: Path
) -> None:
    box: Box = start_box(media={"rtp_timeout": 3})
    sipp = Sipp("phone_answers_silently.xml", workdir=tmp_path)
    try:
        page = await open_console(browser, box)
        await page.get_by_role("textbox", name="Number or SIP address").fill(
            f"sip:phone@127.0.0.1:{sipp.port}"
        )
        await page.get_by_role("button", name="Call").click()
        await wait_state(page, "Connected")
        cause = page.locator("article.call .cause", has_text="no audio from the phone")
        await cause.wait_for(timeout=10000)
        code, output = await asyncio.to_thread(sipp.wait)
        assert code == 0, output
    finally:
        sipp.stop()


@pytest.mark.parametrize("password", ["wrong password", ""])
async def test_the_console_needs_a_login(start_box: Any, browser: Any, password: str) -> None:
    box: Box = start_box()
    context = await browser.new_context(ignore_https_errors=True)
    page = await context.new_page()
    await page.goto(box.url)
    assert "/login" in page.url
    await page.get_by_label("User name").fill("alice")
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()
    assert "/login" in page.url
    response = await page.request.get(box.url + "api/v1/ws")
    assert response.status == 401
    await context.close()
