"""The text gateway of one call on real UDP sockets: the test's own RFC 4103 peer as the
phone, a list standing in for the browser's data channel."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest_asyncio

from appliance.media.endpoint import PortAllocator
from appliance.rtt.bridge import TextBridge, TextSettings
from appliance.rtt.sdp import PhoneText
from appliance.rtt.t140 import BOM, LOSS_MARK, NEW_LINE
from appliance.rtt.transcript import CALL_TAKER, CALLER, Transcript, read_transcript, render
from tests.peers.rtt_peer import RttPeer
from tests.waiting import until


@dataclass
class Browser:
    """What the data channel got from the box."""

    messages: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.messages)


def phone_text(peer: RttPeer, *, red: bool = True) -> PhoneText:
    return PhoneText(
        index=1, address="127.0.0.1", port=peer.port, t140_pt=98,
        red_pt=100 if red else None, generations=2 if red else 0, cps=30,
        direction="sendrecv", secure_profile=False,
    )  # fmt: skip


@dataclass
class Rig:
    bridge: TextBridge
    peer: RttPeer
    browser: Browser
    transcript: Transcript


@pytest_asyncio.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    low = 30000 + (os.getpid() % 300) * 60
    transcript = Transcript(tmp_path, "0123456789ab", {"peer": "test"})
    bridge = TextBridge(TextSettings(), transcript=transcript)
    await bridge.open("127.0.0.1", PortAllocator(low, low + 58))
    peer = await RttPeer.open()
    browser = Browser()
    bridge.channel_opened(browser.messages.append)
    yield Rig(bridge, peer, browser, transcript)
    bridge.close()
    peer.close()


async def test_phone_text_reaches_the_channel_with_edits(rig: Rig) -> None:
    rig.bridge.start(phone_text(rig.peer))
    rig.peer.start(("127.0.0.1", rig.bridge.port))
    rig.peer.type("Fire at 12 Mian")
    await asyncio.sleep(0.35)
    rig.peer.type("\b\b\bain St" + NEW_LINE + "help")
    await until(lambda: rig.browser.text.endswith("help"), 5, "the caller's text")
    assert rig.browser.messages[0] == BOM
    assert rig.browser.text == BOM + "Fire at 12 Mian\b\b\bain St" + NEW_LINE + "help"
    assert rig.bridge.receiver is not None
    assert rig.bridge.receiver.stats.marked == 0


async def test_channel_text_reaches_the_phone(rig: Rig) -> None:
    rig.bridge.start(phone_text(rig.peer))
    rig.peer.start(("127.0.0.1", rig.bridge.port))
    for key in "Where are you?\r\n":
        rig.bridge.channel_message(key)
        await asyncio.sleep(0.02)
    rig.bridge.channel_message("x")
    rig.bridge.channel_message("\b")
    await until(lambda: rig.peer.text().endswith("x\b"), 5, "text at the phone")
    assert rig.peer.text() == "Where are you?" + NEW_LINE + "x\b"
    assert rig.peer.visible() == "Where are you?\n"
    assert rig.peer.markers >= 1  # the session's first packet
    # the box sends a BOM first (RFC 9071 §3.2) and never more often than every 300 ms
    assert rig.peer.blocks[min(rig.peer.blocks)].startswith(BOM.encode())


async def test_loss_within_redundancy_is_recovered_beyond_it_marked(rig: Rig) -> None:
    rig.bridge.start(phone_text(rig.peer))
    rig.peer.drop = lambda index: index in (2, 3, 6, 7, 8)  # 2 lost, then 3 in a row
    rig.peer.start(("127.0.0.1", rig.bridge.port))
    for word in ("one ", "two ", "three ", "four ", "five ", "six ", "seven ", "eight"):
        rig.peer.type(word)
        await asyncio.sleep(0.3)
    await until(lambda: rig.browser.text.endswith("eight"), 6, "the caller's text")
    text = rig.browser.text.removeprefix(BOM)
    assert text.count(LOSS_MARK) == 1, text
    before, after = text.split(LOSS_MARK)
    assert "one two three " in before
    assert after.endswith("eight")
    assert rig.bridge.stats.marks_to_browser == 1


async def test_reordered_packets_are_put_back_in_order(rig: Rig) -> None:
    rig.bridge.start(phone_text(rig.peer, red=False))
    rig.peer.red_pt, rig.peer.generations = None, 0
    rig.peer.delay = lambda index: 0.5 if index == 2 else 0.0
    rig.peer.start(("127.0.0.1", rig.bridge.port))
    for word in ("alpha ", "beta ", "gamma ", "delta"):
        rig.peer.type(word)
        await asyncio.sleep(0.3)
    await until(lambda: rig.browser.text.endswith("delta"), 5, "the caller's text")
    assert rig.browser.text == BOM + "alpha beta gamma delta"


async def test_reopened_channel_marks_both_ways_and_queues_meanwhile(rig: Rig) -> None:
    rig.bridge.start(phone_text(rig.peer))
    rig.peer.start(("127.0.0.1", rig.bridge.port))
    rig.bridge.channel_closed()
    rig.peer.type("while closed")
    await until(lambda: rig.bridge.channel.dropped == 0 and rig.peer.sent >= 3, 5)
    await asyncio.sleep(0.5)
    reopened = Browser()
    rig.bridge.channel_opened(reopened.messages.append)
    assert reopened.messages[0].startswith(BOM + LOSS_MARK)
    assert "while closed" in reopened.text
    await until(lambda: LOSS_MARK in rig.peer.text(), 5, "the mark toward the phone")


async def test_transcript_has_both_sides(rig: Rig) -> None:
    rig.bridge.start(phone_text(rig.peer))
    rig.peer.start(("127.0.0.1", rig.bridge.port))
    rig.peer.type("I need help")
    rig.bridge.channel_message("Help is coming\n")
    await until(lambda: rig.browser.text.endswith("help"), 5)
    await until(lambda: "coming" in rig.peer.text(), 5)
    rig.bridge.close()
    entries = read_transcript(rig.transcript.path)
    assert entries[0]["peer"] == "test"
    assert any(e.get("event") == "text started" for e in entries)
    assert entries[-1]["event"] == "ended"
    assert render(entries) == {CALLER: "I need help", CALL_TAKER: "Help is coming\n"}


async def test_plain_t140_phone(rig: Rig) -> None:
    rig.peer.red_pt, rig.peer.generations = None, 0
    rig.bridge.start(phone_text(rig.peer, red=False))
    assert rig.bridge.sender is not None
    assert rig.bridge.sender.red_pt is None
    rig.peer.start(("127.0.0.1", rig.bridge.port))
    rig.bridge.channel_message("plain")
    await until(lambda: rig.peer.text() == "plain", 5, "plain T.140 at the phone")
