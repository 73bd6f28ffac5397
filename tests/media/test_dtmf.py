"""DTMF as RTP events (RFC 4733): the payload layout (§2.3), the sender's packet train
(§2.5.1) and a receiver that reports each key press once, whatever was lost or repeated."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.media.dtmf import EVENTS, DtmfReceiver, DtmfSender, decode_event, encode_event

#  0                   1                   2                   3
#  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
# |     event     |E|R| volume    |          duration             |


@pytest.mark.parametrize(
    ("fields", "wire"),
    [
        ((1, False, 10, 400), "01 0a 0190"),
        ((5, True, 10, 1280), "05 8a 0500"),
        ((11, False, 0, 0), "0b 00 0000"),  # '#', 0 dBm0, at its very start
        ((15, True, 63, 0xFFFF), "0f bf ffff"),  # 'D', -63 dBm0, the longest segment
        ((16, False, 7, 160), "10 07 00a0"),  # flash (§3.2): encodable, not a digit
    ],
)
def test_payload_layout(fields: tuple[int, bool, int, int], wire: str) -> None:
    assert encode_event(*fields) == bytes.fromhex(wire)
    assert decode_event(bytes.fromhex(wire)) == fields


def test_reserved_bit_is_ignored_and_trailing_bytes_too() -> None:
    assert decode_event(bytes.fromhex("05 ca 0500")) == (5, True, 10, 1280)  # R set (§2.3: ignore)
    assert decode_event(bytes.fromhex("05 8a 0500 deadbeef")) == (5, True, 10, 1280)


def test_short_payload_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="shorter than 4"):
        decode_event(b"\x05\x8a\x05")


def test_event_codes_follow_rfc_4733_table() -> None:
    """§3.2 Table 1: 0-9, * = 10, # = 11, A-D = 12-15."""
    assert [EVENTS.index(c) for c in "0123456789*#ABCD"] == list(range(16))


def test_sender_train_for_one_digit() -> None:
    """§2.5.1.2: a first packet with the marker, updates every 50 ms with a growing
    duration, then the end packet three times (§2.5.1.4), all with the event's timestamp."""
    packets = DtmfSender().packets("5", 0x12345678)
    assert packets == [
        (True, 0x12345678, bytes.fromhex("05 0a 0190")),  # 50 ms = 400 samples
        (False, 0x12345678, bytes.fromhex("05 0a 0320")),
        (False, 0x12345678, bytes.fromhex("05 0a 04b0")),
        (False, 0x12345678, bytes.fromhex("05 8a 0500")),  # 160 ms
        (False, 0x12345678, bytes.fromhex("05 8a 0500")),
        (False, 0x12345678, bytes.fromhex("05 8a 0500")),
    ]


@pytest.mark.parametrize("digit", list("0123456789*#ABCDabcd"))
def test_every_digit_has_a_well_formed_train(digit: str) -> None:
    packets = DtmfSender().packets(digit, 99)
    assert [m for m, _, _ in packets].count(True) == 1 and packets[0][0]
    assert {t for _, t, _ in packets} == {99}
    events = [decode_event(p) for _, _, p in packets]
    assert {e for e, _, _, _ in events} == {EVENTS.index(digit.upper())}
    ends = [e for e in events if e[1]]
    assert len(ends) == 3 and len(set(ends)) == 1 and events[-3:] == ends
    durations = [d for _, _, _, d in events]
    assert durations == sorted(durations)


def test_short_digit_is_start_and_end_at_once() -> None:
    packets = DtmfSender(duration_ms=40, interval_ms=50).packets("1", 0)
    assert (
        packets
        == [(True, 0, bytes.fromhex("01 8a 0140"))] + [(False, 0, bytes.fromhex("01 8a 0140"))] * 2
    )


def test_wideband_clock_scales_durations() -> None:
    """Durations count in the RTP clock of the stream (§2.5.1.1): 16 kHz doubles them."""
    packets = DtmfSender(clock_rate=16000).packets("0", 0)
    assert decode_event(packets[0][2])[3] == 800
    assert decode_event(packets[-1][2])[3] == 2560


@pytest.mark.parametrize("digit", ["", "E", "12", "x", " ", "0 "])
def test_sender_refuses_what_is_not_one_digit(digit: str) -> None:
    with pytest.raises(ValueError, match="DTMF"):
        DtmfSender().packets(digit, 0)


def test_receiver_reports_a_clean_train_once() -> None:
    receiver = DtmfReceiver()
    got = [receiver.feed(t, p) for _, t, p in DtmfSender().packets("7", 1000)]
    assert [g for g in got if g] == ["7"]


def test_receiver_survives_losing_the_first_packets() -> None:
    receiver = DtmfReceiver()
    packets = DtmfSender().packets("#", 2000)
    got = [receiver.feed(t, p) for _, t, p in packets[3:]]  # start and updates lost
    assert [g for g in got if g] == ["#"]


def test_receiver_survives_losing_every_end_packet() -> None:
    """The ends are sent three times against loss (§2.5.1.4), but all three can still be
    lost; the key was pressed all the same, and the updates already said so."""
    receiver = DtmfReceiver()
    packets = DtmfSender().packets("9", 3000)
    got = [receiver.feed(t, p) for _, t, p in packets[:-3]]
    assert [g for g in got if g] == ["9"]


def test_the_same_digit_twice_is_two_events() -> None:
    receiver = DtmfReceiver()
    got = []
    for start in (0, 2400):
        got += [receiver.feed(t, p) for _, t, p in DtmfSender().packets("1", start)]
    assert [g for g in got if g] == ["1", "1"]


def test_receiver_ignores_short_payloads_and_non_digit_events() -> None:
    receiver = DtmfReceiver()
    assert receiver.feed(0, b"\x01") is None
    assert receiver.feed(0, b"") is None
    assert receiver.feed(10, encode_event(16, True, 10, 800)) is None  # flash
    assert receiver.feed(20, encode_event(40, True, 10, 800)) is None
    assert receiver.feed(30, encode_event(3, True, 10, 800)) == "3"


@settings(deadline=None)
@given(
    digits=st.lists(st.sampled_from(EVENTS), min_size=1, max_size=8),
    data=st.data(),
)
def test_each_press_is_reported_once_whatever_arrives(
    digits: list[str], data: st.DataObject
) -> None:
    """Any non-empty subset of each digit's packets, duplicated and reordered within the
    digit: exactly the pressed digits, once each, in order."""
    receiver = DtmfReceiver()
    sender = DtmfSender()
    reported: list[str] = []
    for n, digit in enumerate(digits):
        packets = sender.packets(digit, (n * 4000) & 0xFFFFFFFF)
        arriving = data.draw(
            st.lists(st.sampled_from(packets), min_size=1, max_size=12), label=f"digit {n}"
        )
        for _, timestamp, payload in arriving:
            got = receiver.feed(timestamp, payload)
            if got is not None:
                reported.append(got)
    assert reported == digits
