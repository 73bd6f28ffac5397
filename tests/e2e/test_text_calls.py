"""Real-time text end to end: headless Chromium on the call-taker's page ⇄ the box ⇄ sipp
as the phone's signalling, with the test's own RFC 4103 peer carrying the phone's text
(red + t140) and an RTP peer its audio.

Text typed on either side must appear exactly on the other, backspaces and new lines
included; loss on the phone's side within the redundancy must not show, and loss beyond
it must show as a U+FFFD mark on the page.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.e2e.conftest import PHONE_AUTH, Box, Sipp, needs_peers, open_console
from tests.peers.rtp_peer import RtpPeer
from tests.peers.rtt_peer import MARK, RttPeer
from tests.waiting import until

pytestmark = needs_peers

REMOTE = "article.call .remote-text"


async def remote_text(page: Any) -> str:
    return str(await page.locator(REMOTE).first.inner_text())


async def wait_remote(page: Any, text: str, timeout: float = 10.0) -> None:
    """Until the page's "Remote text" region shows exactly ``text``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (shown := await remote_text(page)) != text:
        if loop.time() > deadline:
            raise AssertionError(f"the page shows {shown!r}, expected {text!r}")
        await asyncio.sleep(0.05)


async def answer_text_call(
    box: Box, browser: Any, tmp_path: Path
) -> tuple[Any, Sipp, RttPeer, RtpPeer]:
    page = await open_console(browser, box)
    audio = await RtpPeer.open()
    text = await RttPeer.open()
    sipp = Sipp(
        "phone_calls_operator_with_text.xml", "-key", "rtp_port", str(audio.port),
        "-key", "text_port", str(text.port), "-s", "alice", f"127.0.0.1:{box.sip_port}",
        *PHONE_AUTH, workdir=tmp_path,
    )  # fmt: skip
    await page.get_by_role("alertdialog").wait_for()
    await page.get_by_role("button", name="Answer").click()
    await page.locator("article.call .state", has_text="Connected").wait_for(timeout=15000)
    await page.locator("article.call .text-pill", has_text="Text").wait_for(timeout=5000)
    # The box starts its text stream with a BOM (RFC 9071 §3.2): that shows where to send.
    await until(lambda: bool(text.sources), 5, "the box's first text packet")
    text.start(next(iter(text.sources)))
    await until(lambda: bool(audio.received.sources), 5, "audio from the box")
    audio.start_tone(next(iter(audio.received.sources)), 440.0)
    return page, sipp, text, audio


async def test_phone_calls_with_text_and_both_sides_type(
    start_box: Any, browser: Any, tmp_path: Path
) -> None:
    box: Box = start_box()
    page, sipp, phone, audio = await answer_text_call(box, browser, tmp_path)
    try:
        assert phone.markers >= 1
        phone.type("Fire at 12 Mian")
        await asyncio.sleep(0.4)
        phone.type("\b\b\bain St\u2028help")
        await wait_remote(page, "Fire at 12 Main St\nhelp")

        field = page.get_by_role("textbox", name="Real-time text")
        await field.click()
        await page.keyboard.type("Whre", delay=30)
        await page.keyboard.press("Backspace")
        await page.keyboard.press("Backspace")
        await page.keyboard.type("ere are you?", delay=30)
        await page.keyboard.press("Enter")
        await page.keyboard.type("ok", delay=30)
        await until(lambda: phone.visible() == "Where are you?\nok", 10, "the page's text")
        # each keystroke went out as typed: the erasures are in the stream as BS
        assert "\b\b" in phone.text()

        # the conversation is in the transcript, read back through the API
        call_id = await page.locator("article.call").first.get_attribute("id")
        assert call_id is not None
        reply = await page.evaluate(
            "(id) => request({type: 'transcript', call: id})", call_id.removeprefix("call-")
        )
        assert reply["text"] == {
            "caller": "Fire at 12 Main St\nhelp",
            "call-taker": "Where are you?\nok",
        }
        await page.get_by_role("button", name="Hang up").click()
        code, output = await asyncio.to_thread(sipp.wait)
        assert code == 0, output
    finally:
        sipp.stop()
        phone.close()
        audio.close()


async def test_loss_on_the_phones_side_is_recovered_or_marked(
    start_box: Any, browser: Any, tmp_path: Path
) -> None:
    box: Box = start_box()
    page, sipp, phone, audio = await answer_text_call(box, browser, tmp_path)
    try:
        start = phone.sent
        # two lost in a row (recovered from redundancy), one late (reordered), then
        # three lost in a row: one block gone for good, marked
        phone.drop = lambda i: i - start in (1, 2, 6, 7, 8)
        phone.delay = lambda i: 0.4 if i - start == 4 else 0.0
        words = [f"w{n:02d}" for n in range(1, 15)]
        for word in words:
            phone.type(word + " ")
            await asyncio.sleep(0.3)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not (shown := await remote_text(page)).endswith(words[-1] + " "):
            assert loop.time() < deadline, shown
            await asyncio.sleep(0.1)
        assert shown.count(MARK) == 1, shown
        before, after = shown.split(MARK)
        head, tail = before.split(), after.split()
        # everything but the lost block arrived, in order, around the one mark
        assert head == words[: len(head)] and tail == words[len(words) - len(tail) :], shown
        assert 1 <= len(words) - len(head) - len(tail) <= 3, shown
        assert len(head) >= 4, shown
        assert await page.locator(f"{REMOTE} mark.lost").count() == 1
        assert await page.locator("article.call .rtt-lost").is_visible()
        await page.get_by_role("button", name="Hang up").click()
        code, output = await asyncio.to_thread(sipp.wait)
        assert code == 0, output
    finally:
        sipp.stop()
        phone.close()
        audio.close()


async def test_operator_calls_a_text_phone(start_box: Any, browser: Any, tmp_path: Path) -> None:
    box: Box = start_box()
    audio = await RtpPeer.open()
    phone = await RttPeer.open()
    sipp = Sipp(
        "phone_answers_with_text.xml", "-key", "rtp_port", str(audio.port),
        "-key", "text_port", str(phone.port), workdir=tmp_path,
    )  # fmt: skip
    try:
        page = await open_console(browser, box)
        await page.get_by_role("textbox", name="Number or SIP address").fill(
            f"sip:phone@127.0.0.1:{sipp.port}"
        )
        await page.get_by_role("button", name="Call").click()
        await page.locator("article.call .state", has_text="Connected").wait_for(timeout=15000)
        await page.locator("article.call .text-pill", has_text="Text").wait_for(timeout=5000)
        await until(lambda: bool(phone.sources), 5, "the box's first text packet")
        phone.start(next(iter(phone.sources)))
        await until(lambda: bool(audio.received.sources), 5, "audio from the box")
        audio.start_tone(next(iter(audio.received.sources)), 440.0)

        await page.get_by_role("textbox", name="Real-time text").click()
        await page.keyboard.type("PSAP here", delay=30)
        await page.keyboard.press("Enter")
        await page.keyboard.type("speak", delay=30)
        await until(lambda: phone.visible() == "PSAP here\nspeak", 10, "the page's text")
        phone.type("I cannot talk\u2028abc\b\b\bsend help")
        await wait_remote(page, "I cannot talk\nsend help")
        await page.get_by_role("button", name="Hang up").click()
        code, output = await asyncio.to_thread(sipp.wait)
        assert code == 0, output
    finally:
        sipp.stop()
        phone.close()
        audio.close()


async def test_the_page_shows_t140_as_a_person_expects(
    start_box: Any, browser: Any, tmp_path: Path
) -> None:
    """The page's T.140 display, fed directly: BOM and controls skipped, CR LF one new
    line, BS erasing one character or one new line but never a loss mark."""
    box: Box = start_box()
    page = await open_console(browser, box)
    shown = await page.evaluate(
        """() => {
          const c = ensureCall({call: "t140test", state: "active", direction: "in", peer: {}});
          c.text = newText();
          showRemote(c, "\\ufeffHi\\u0007 there\\r\\nnext\\u009b31mline\\u0098hidden\\u009c!");
          showRemote(c, "\\b\\b\\b\\b\\b\\b\\b\\b\\b\\b\\b\\b\\b\\bX\\ufffdab\\b\\b\\b\\b");
          return document.querySelector("#call-t140test .remote-text").innerText;
        }"""
    )
    assert shown == "Hi tX\ufffd"


async def test_text_only_phone_calls_the_operator(
    start_box: Any, browser: Any, tmp_path: Path
) -> None:
    """No audio at all: the page needs no microphone, text flows both ways."""
    box: Box = start_box()
    page = await open_console(browser, box)
    phone = await RttPeer.open()
    sipp = Sipp(
        "phone_calls_operator_text_only.xml", "-key", "text_port", str(phone.port),
        "-s", "alice", f"127.0.0.1:{box.sip_port}", *PHONE_AUTH, workdir=tmp_path,
    )  # fmt: skip
    try:
        alert = page.get_by_role("alertdialog")
        await alert.wait_for()
        assert "text-only call" in await alert.inner_text()
        await page.get_by_role("button", name="Answer").click()
        await page.locator("article.call .state", has_text="Connected").wait_for(timeout=15000)
        await until(lambda: bool(phone.sources), 5, "the box's first text packet")
        phone.start(next(iter(phone.sources)))
        phone.type("I am deaf\u2028send police")
        await wait_remote(page, "I am deaf\nsend police")
        await page.get_by_role("textbox", name="Real-time text").click()
        await page.keyboard.type("On the way", delay=30)
        await until(lambda: phone.visible() == "On the way", 10, "the page's text")
        assert await page.locator("article.call audio.remote").evaluate("a => a.srcObject") is None
        await page.get_by_role("button", name="Hang up").click()
        code, output = await asyncio.to_thread(sipp.wait)
        assert code == 0, output
    finally:
        sipp.stop()
        phone.close()


async def test_operator_places_a_text_only_call(
    start_box: Any, browser: Any, tmp_path: Path
) -> None:
    box: Box = start_box()
    phone = await RttPeer.open()
    sipp = Sipp(
        "phone_answers_text_only.xml", "-key", "text_port", str(phone.port), workdir=tmp_path
    )
    try:
        page = await open_console(browser, box)
        await page.get_by_role("textbox", name="Number or SIP address").fill(
            f"sip:phone@127.0.0.1:{sipp.port}"
        )
        await page.get_by_label("Text only").check()
        await page.get_by_role("button", name="Call").click()
        await page.locator("article.call .state", has_text="Connected").wait_for(timeout=15000)
        await until(lambda: bool(phone.sources), 5, "the box's first text packet")
        phone.start(next(iter(phone.sources)))
        await page.get_by_role("textbox", name="Real-time text").click()
        await page.keyboard.type("Text 911, what is your emergency?", delay=20)
        await until(
            lambda: phone.visible() == "Text 911, what is your emergency?", 10, "the page's text"
        )
        phone.type("car crash")
        await wait_remote(page, "car crash")
        await page.get_by_role("button", name="Hang up").click()
        code, output = await asyncio.to_thread(sipp.wait)
        assert code == 0, output
    finally:
        sipp.stop()
        phone.close()
