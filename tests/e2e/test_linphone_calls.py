"""Audio calls with a real SIP phone: headless Chromium on the call-taker's page ⇄ the box ⇄
liblinphone (Debian ``liblinphone10``, driven by :mod:`tests.peers.linphone`).

The page's fake microphone plays 1000 Hz; liblinphone plays 440 Hz from a WAV and records what
it hears to another WAV. Each side's frequency is measured where it arrives: in the page with a
WebAudio analyser, on the phone by reading its recording.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import PHONE_PASSWORD, PHONE_USER, Box, needs_peers, open_console
from tests.e2e.test_audio_calls import ANALYSE, wait_state
from tests.peers import linphone
from tests.peers.linphone import CallState, LinphonePhone, MediaEncryption

pytestmark = [
    *needs_peers,
    pytest.mark.skipif(not linphone.available(), reason="needs liblinphone (Debian liblinphone10)"),
]


@pytest.fixture
def phone(tmp_path: Path) -> Iterator[LinphonePhone]:
    """A liblinphone phone playing 440 Hz and recording what it hears; its log in tmp_path."""
    linphone.log_to(tmp_path / "linphone.log")
    peer = LinphonePhone(
        tmp_path / "linphone",
        play=linphone.write_tone(tmp_path / "phone-440.wav", 440.0),
        record=tmp_path / "phone-heard.wav",
    )
    yield peer
    peer.close()
    linphone.log_to(None)


def register(phone: LinphonePhone, box: Box) -> None:
    """Phone 1001 of [[sip.accounts]], digest credentials, registering with the box."""
    phone.register(f"sip:127.0.0.1:{box.sip_port};transport=udp", PHONE_USER, PHONE_PASSWORD)


async def page_hears(page: Any, frequency: float) -> None:
    heard = await page.evaluate(ANALYSE)
    assert abs(heard["frequency"] - frequency) < 4.0, heard
    assert heard["level"] > -70, heard


def phone_heard(phone: LinphonePhone, tmp_path: Path, frequency: float) -> None:
    """The phone's recording (closed when the call ended) holds the page's tone."""
    heard = linphone.heard(tmp_path / "phone-heard.wav", frequency - 100, frequency + 100)
    assert abs(heard.frequency - frequency) <= 3.0, heard
    assert heard.level_dbfs > -40, heard
    assert heard.sound_seconds >= 0.5, heard


async def test_linphone_registers_calls_operator_with_mandatory_sdes_holds_and_hangs_up(
    start_box: Any, browser: Any, phone: LinphonePhone, tmp_path: Path
) -> None:
    box: Box = start_box()
    page = await open_console(browser, box)
    register(phone, box)
    await phone.wait_registered()

    phone.call(f"sip:alice@127.0.0.1:{box.sip_port}", srtp="SDES")
    alert = page.get_by_role("alertdialog")
    await alert.wait_for()
    assert "Lobby phone" in await alert.inner_text(), "named by its [[sip.accounts]] entry"
    await page.get_by_role("button", name="Answer").click()
    await wait_state(page, "Connected")
    await phone.wait_state(CallState.STREAMS_RUNNING)
    info = phone.call_info()
    assert info is not None
    assert info.encryption is MediaEncryption.SRTP, info

    # Opus call: the phone sends RFC 4733 events, the box signals the page's key by SIP INFO.
    phone.send_dtmf("5#")
    await page.get_by_role("button", name="Key 7").click()
    await page.locator("article.call .dtmf", has_text="5#").wait_for()
    await phone.wait_for(lambda p: p.records.dtmf == ["7"], 5, "RFC 4733 digit from the page")

    # Hold and resume re-INVITE with the phone's SDES keys (RFC 3264 §8.4, RFC 4568 §7.1.4).
    phone.pause()
    await wait_state(page, "Held by the other party")
    await phone.wait_state(CallState.PAUSED)
    phone.resume()
    await wait_state(page, "Connected")
    await phone.wait_for(lambda p: p.records.states[-1] is CallState.STREAMS_RUNNING, 5, "resumed")
    await page_hears(page, 440.0)

    phone.hangup()
    await page.locator("article.call .cause", has_text="the other party hung up").wait_for()
    await phone.wait_state(CallState.RELEASED)
    phone_heard(phone, tmp_path, 1000.0)  # the recording restarts with the resumed stream


async def test_page_calls_the_registered_phone_by_user_name_over_required_srtp(
    start_box: Any, browser: Any, phone: LinphonePhone, tmp_path: Path
) -> None:
    box: Box = start_box(media={"srtp": "require"})
    page = await open_console(browser, box)
    register(phone, box)
    await phone.wait_registered()

    await page.get_by_role("textbox", name="Number or SIP address").fill(PHONE_USER)
    await page.get_by_role("button", name="Call").click()
    await phone.wait_state(CallState.INCOMING_RECEIVED)
    phone.answer(srtp="SDES")
    await wait_state(page, "Connected")
    await phone.wait_state(CallState.STREAMS_RUNNING)
    info = phone.call_info()
    assert info is not None
    assert info.encryption is MediaEncryption.SRTP, info

    await page_hears(page, 440.0)
    await page.get_by_role("button", name="Hang up").click()
    await wait_state(page, "Ended")
    await phone.wait_state(CallState.RELEASED)
    assert CallState.END in phone.records.states
    phone_heard(phone, tmp_path, 1000.0)


async def test_answer_keeps_every_offered_m_line_in_place(
    start_box: Any, browser: Any, phone: LinphonePhone, tmp_path: Path
) -> None:
    """liblinphone offers audio, video and text; the box bridges audio and text and refuses
    video with port 0 in its place (RFC 3264 §6), and liblinphone's call connects."""
    box: Box = start_box()
    page = await open_console(browser, box)
    register(phone, box)
    await phone.wait_registered()

    phone.call(f"sip:alice@127.0.0.1:{box.sip_port}", video=True, rtt=True)
    await page.get_by_role("button", name="Answer").click()
    await wait_state(page, "Connected")
    await phone.wait_state(CallState.STREAMS_RUNNING)
    info = phone.call_info()
    assert info is not None
    assert not info.video and info.realtime_text, info
    await page_hears(page, 440.0)

    trace = linphone.sip_trace(tmp_path / "linphone.log")
    offer = next(m for m in trace if m.sent and m.method == "INVITE" and m.status is None)
    answer = next(m for m in trace if not m.sent and m.method == "INVITE" and m.status == 200)
    offered = re.findall(r"^m=(\w+) (\d+) ", offer.body, re.M)
    answered = re.findall(r"^m=(\w+) (\d+) ", answer.body, re.M)
    assert [kind for kind, _ in offered] == ["audio", "video", "text"], offer.body
    assert [kind for kind, _ in answered] == ["audio", "video", "text"], answer.body
    assert [port != "0" for _, port in answered] == [True, False, True], answer.body

    phone.hangup()
    await phone.wait_state(CallState.RELEASED)
    phone_heard(phone, tmp_path, 1000.0)


async def test_real_time_text_between_liblinphone_and_the_page(
    start_box: Any, browser: Any, phone: LinphonePhone, tmp_path: Path
) -> None:
    """RFC 4103 with RED from a real phone stack ⇄ the box ⇄ RFC 8865 T.140 in Chromium,
    character by character both ways, with backspace and new line."""
    box: Box = start_box()
    page = await open_console(browser, box)
    register(phone, box)
    await phone.wait_registered()

    phone.call(f"sip:alice@127.0.0.1:{box.sip_port}", rtt=True)
    alert = page.get_by_role("alertdialog")
    await alert.wait_for()
    assert "real-time text" in await alert.inner_text()
    await page.get_by_role("button", name="Answer").click()
    await wait_state(page, "Connected")
    await phone.wait_state(CallState.STREAMS_RUNNING)
    info = phone.call_info()
    assert info is not None and info.realtime_text, info

    phone.put_text("Smoke in the kitchem")
    await asyncio.sleep(0.5)
    phone.put_text("\bn\u2028second floor")
    remote = page.get_by_role("region", name="Remote text")
    await until_text(remote, "Smoke in the kitchen\nsecond floor")

    await page.get_by_role("textbox", name="Real-time text").click()
    await page.keyboard.type("Are yuo", delay=40)
    await page.keyboard.press("Backspace")
    await page.keyboard.press("Backspace")
    await page.keyboard.type("ou safe?", delay=40)
    await page.keyboard.press("Enter")
    await page.keyboard.type("Help is coming", delay=40)
    await phone.wait_for(
        lambda p: visible(p.received_text) == "Are you safe?\nHelp is coming",
        10, "the page's text on the phone",
    )  # fmt: skip
    assert "\b\b" in phone.received_text, "each keystroke went out, erasures as BS"

    phone.hangup()
    await phone.wait_state(CallState.RELEASED)
    await page.locator("article.call .cause", has_text="the other party hung up").wait_for()


def visible(received: str) -> str:
    """What a T.140 display shows: BS erases, U+2028 and CR LF are new lines, BOM hidden."""
    out: list[str] = []
    for char in received.replace("\r\n", "\n").replace("\u2028", "\n"):
        if char == "\b":
            if out:
                out.pop()
        elif char != "\ufeff":
            out.append(char)
    return "".join(out)


async def until_text(locator: Any, text: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (shown := await locator.inner_text()) != text:
        if loop.time() > deadline:
            raise AssertionError(f"the page shows {shown!r}, expected {text!r}")
        await asyncio.sleep(0.05)
