"""The liblinphone test peer proves itself: two liblinphone phones call each other directly on
loopback (no box in between), with audio both ways, RFC 4103 real-time text both ways, and
SDES-SRTP when asked."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.peers import linphone
from tests.peers.linphone import CallState, LinphonePhone, MediaEncryption

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not linphone.available(), reason="needs liblinphone (Debian liblinphone10)"),
]

Phones = Callable[[str, float], LinphonePhone]


@pytest.fixture
def phones(tmp_path: Path) -> Iterator[Phones]:
    """Make phones named ``name`` playing a tone; their SIP trace in tmp_path/linphone.log."""
    linphone.log_to(tmp_path / "linphone.log")
    made: list[LinphonePhone] = []

    def make(name: str, tone: float) -> LinphonePhone:
        phone = LinphonePhone(
            tmp_path / name,
            user=name,
            play=linphone.write_tone(tmp_path / f"{name}-plays.wav", tone),
            record=tmp_path / f"{name}-heard.wav",
        )
        made.append(phone)
        return phone

    yield make
    for phone in made:
        phone.close()
    linphone.log_to(None)


def heard(phone: LinphonePhone, frequency: float) -> linphone.Heard:
    assert phone.record is not None
    return linphone.heard(phone.record, frequency - 150, frequency + 150)


async def test_audio_call_answered_tones_both_ways_hangup_seen(phones: Phones) -> None:
    alice, bob = phones("alice", 440.0), phones("bob", 1000.0)
    alice.call(bob.uri)
    await bob.wait_state(CallState.INCOMING_RECEIVED)
    bob.answer()
    await alice.wait_state(CallState.STREAMS_RUNNING)
    await bob.wait_state(CallState.STREAMS_RUNNING)
    info = alice.call_info()
    assert info is not None
    assert info.encryption is MediaEncryption.NONE and not info.realtime_text, info
    await alice.wait_for(
        lambda p: (i := p.call_info()) is not None and i.download_kbps > 0, 5, "audio arriving"
    )

    alice.hangup()
    await bob.wait_state(CallState.RELEASED)
    await alice.wait_state(CallState.RELEASED)
    assert CallState.END in bob.records.states
    for phone, tone in ((alice, 1000.0), (bob, 440.0)):
        got = heard(phone, tone)
        assert abs(got.frequency - tone) <= 2.0, (phone.user, got)
        assert got.level_dbfs > -20 and got.sound_seconds >= 0.5, (phone.user, got)


TYPED_BY_ALICE = "Fire at 12 Elm\bm St\u2028Hurry"
TYPED_BY_BOB = "Help is on the wäy\b\bay\u2028Stay calm"


async def test_realtime_text_both_ways_over_sdes_srtp(phones: Phones, tmp_path: Path) -> None:
    alice, bob = phones("alice", 440.0), phones("bob", 1000.0)
    alice.call(bob.uri, rtt=True, srtp="SDES")
    await bob.wait_state(CallState.INCOMING_RECEIVED)
    bob.answer(rtt=True)
    await alice.wait_state(CallState.STREAMS_RUNNING)
    await bob.wait_state(CallState.STREAMS_RUNNING)
    for phone in (alice, bob):
        info = phone.call_info()
        assert info is not None
        assert info.encryption is MediaEncryption.SRTP and info.realtime_text, info

    alice.put_text(TYPED_BY_ALICE)
    bob.put_text(TYPED_BY_BOB)
    await bob.wait_for(lambda p: p.received_text == TYPED_BY_ALICE, 5, "alice's text")
    await alice.wait_for(lambda p: p.received_text == TYPED_BY_BOB, 5, "bob's text")

    bob.hangup()
    await alice.wait_state(CallState.RELEASED)
    trace = linphone.sip_trace(tmp_path / "linphone.log")
    invite = next(m for m in trace if m.sent and m.method == "INVITE" and m.status is None)
    # RFC 4568 SDES on every stream, RFC 4103 text as red (RFC 2198) over t140.
    assert "m=audio" in invite.body and "RTP/SAVP" in invite.body, invite.body
    assert "a=crypto:" in invite.body, invite.body
    text = invite.body[invite.body.index("m=text") :]
    assert text.startswith("m=text") and " RTP/SAVP " in text.splitlines()[0], text
    assert "red/1000" in text and "t140/1000" in text, text


def test_quiet_unless_asked(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """No liblinphone log on stdout or stderr; log_to() refuses while a core runs."""
    phone = LinphonePhone(tmp_path / "quiet")
    try:
        with pytest.raises(RuntimeError, match="while liblinphone cores run"):
            linphone.log_to(tmp_path / "late.log")
    finally:
        phone.close()
    out, err = capfd.readouterr()
    assert out == "" and err == "", (out[:500], err[:500])


async def test_text_only_call(phones: Phones, tmp_path: Path) -> None:
    """No audio stream at all, as text-only emergency calls are (RFC 4103 alone)."""
    alice, bob = phones("alice", 440.0), phones("bob", 1000.0)
    alice.call(bob.uri, rtt=True, audio=False)
    await bob.wait_state(CallState.INCOMING_RECEIVED)
    bob.answer(rtt=True)
    await alice.wait_state(CallState.STREAMS_RUNNING)
    info = bob.call_info()
    assert info is not None and info.realtime_text, info
    alice.put_text("112\u2028")
    await bob.wait_for(lambda p: p.received_text == "112\u2028", 5, "text without audio")
    alice.hangup()
    await bob.wait_state(CallState.RELEASED)
    trace = linphone.sip_trace(tmp_path / "linphone.log")
    offer = next(m for m in trace if m.sent and m.method == "INVITE" and m.status is None)
    answer = next(m for m in trace if m.sent and m.method == "INVITE" and m.status == 200)
    for sdp in (offer.body, answer.body):
        assert re.findall(r"^m=(\w+)", sdp, re.M) == ["text"], sdp
