"""The RFC 4103 sender: timing, redundancy, idle tail, marker, timestamps, cps, keep-alive."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.rtt.red import decode_red
from appliance.rtt.sender import RtpPayloadOut, RttSender
from appliance.rtt.stream import RtpPacket, RtpTextStream
from appliance.rtt.t140 import BOM, LOSS_MARK, sanitize
from tests.rtt.vectors import (
    MARKER_SECOND_BYTE,
    RED_PT,
    RED_SEQ_102,
    SSRC,
    T140_PT,
    TAIL_SEQ_103,
    TAIL_SEQ_104,
)

Sent = list[tuple[float, RtpPayloadOut]]


def drive(sender: RttSender, writes: list[tuple[float, str]], until: float) -> Sent:
    """Run ``sender`` on its own deadlines, writing ``writes`` at their times."""
    pending = sorted(writes, key=lambda write: write[0])
    out: Sent = []
    now = 0.0
    while True:
        while pending and pending[0][0] <= now:
            sender.write(pending.pop(0)[1], now)
        out.extend((now, payload) for payload in sender.poll(now))
        times = [t for t in (sender.next_deadline(),) if t is not None]
        if pending:
            times.append(pending[0][0])
        if not times or min(times) > until:
            return out
        now = max(now, min(times))


def red(out: RtpPayloadOut) -> tuple[list[tuple[int, bytes]], bytes]:
    decoded = decode_red(out.payload, T140_PT)
    return [(b.offset, b.data) for b in decoded.redundant], decoded.primary


# ----------------------------------------------------------- the vectors


def test_vectors_1_and_2_byte_exact() -> None:
    """BOM, then "H" at 1.0, "EL" at 1.3, "P" at 1.6 (seq 100-102) and the idle tail."""
    sender = RttSender(T140_PT, RED_PT)
    stream = RtpTextStream(sender, SSRC, first_seq=98)
    packets: list[RtpPacket] = []
    writes = {0.4: BOM, 1.0: "H", 1.3: "EL", 1.6: "P"}
    now = 0.4
    while True:
        if now in writes:
            sender.write(writes.pop(now), now)
        packets.extend(stream.poll(now))
        deadline = stream.next_deadline()
        if deadline is None:
            break
        now = deadline
    assert [p.sequence for p in packets] == [98, 99, 100, 101, 102, 103, 104]
    assert packets[4].serialize() == RED_SEQ_102
    assert packets[5].serialize() == TAIL_SEQ_103
    assert packets[6].serialize() == TAIL_SEQ_104
    assert [p.marker for p in packets] == [True] + [False] * 6
    assert sender.idle
    sender.write("x", 5.0)
    (after_idle,) = stream.poll(5.0)
    assert after_idle.serialize()[1] == MARKER_SECOND_BYTE
    assert after_idle.sequence == 105


# ---------------------------------------------------------------- timing


def test_text_goes_at_once_after_idle_then_at_most_once_per_interval() -> None:
    sender = RttSender(T140_PT, RED_PT)
    out = drive(sender, [(0.0, "a"), (0.05, "b"), (0.1, "c"), (0.35, "d")], until=10)
    text = [(round(t, 3), red(p)[1]) for t, p in out]
    assert text[:3] == [(0.0, b"a"), (0.3, b"bc"), (0.6, b"d")]
    assert text[3:] == [(0.9, b""), (1.2, b"")]
    times = [t for t, _ in out]
    assert all(b - a >= 0.3 - 1e-9 for a, b in itertools.pairwise(times))


def test_text_after_the_tail_goes_at_once_with_the_marker() -> None:
    sender = RttSender(T140_PT, RED_PT, generations=2)
    out = drive(sender, [(0.0, "a"), (0.65, "b")], until=10)
    assert [(round(t, 3), p.marker, red(p)[1]) for t, p in out] == [
        (0.0, True, b"a"),
        (0.3, False, b""),
        (0.6, False, b""),
        (0.65, True, b"b"),
        (0.95, False, b""),
        (1.25, False, b""),
    ]


def test_text_during_the_tail_waits_for_the_next_tick_without_marker() -> None:
    sender = RttSender(T140_PT, RED_PT, generations=2)
    out = drive(sender, [(0.0, "a"), (0.4, "b")], until=10)
    assert [(round(t, 3), p.marker, red(p)[1]) for t, p in out][:3] == [
        (0.0, True, b"a"),
        (0.3, False, b""),
        (0.6, False, b"b"),
    ]


@pytest.mark.parametrize("generations", [0, 1, 2, 3])
def test_idle_tail_until_the_text_went_out_in_every_generation(generations: int) -> None:
    sender = RttSender(T140_PT, RED_PT, generations=generations)
    out = drive(sender, [(1.0, "hi")], until=30)
    primaries = [red(p)[1] for _, p in out]
    assert primaries == [b"hi"] + [b""] * max(generations, 1)
    for back, (_, packet) in enumerate(out[1:], start=1):
        blocks, _ = red(packet)
        # the session's first packets have fewer earlier primaries to repeat (§4.2)
        assert len(blocks) == min(back, generations)
        if back <= generations:
            assert blocks[-back] == (300 * back, b"hi")
    assert sender.next_deadline() is None
    assert sender.idle


def test_redundant_blocks_are_the_previous_primaries_oldest_first() -> None:
    sender = RttSender(T140_PT, RED_PT, generations=3)
    writes = [(0.3 * i, chr(ord("a") + i)) for i in range(8)]
    out = drive(sender, writes, until=30)
    primaries = [red(p)[1] for _, p in out]
    stamps = [p.timestamp for _, p in out]
    for index, (_, packet) in enumerate(out):
        blocks, _ = red(packet)
        expected = [
            (stamps[index] - stamps[j], primaries[j]) for j in range(max(0, index - 3), index)
        ]
        assert blocks == expected


def test_plain_t140_without_red() -> None:
    sender = RttSender(T140_PT, None, generations=2)
    assert sender.generations == 0
    out = drive(sender, [(0.0, "ab"), (0.1, "c")], until=10)
    assert [(p.pt, p.payload, p.marker) for _, p in out] == [
        (T140_PT, b"ab", True),
        (T140_PT, b"c", False),
        (T140_PT, b"", False),
    ]
    assert out[0][1].primary == b"ab"


def test_timestamps_strictly_increase_within_one_millisecond() -> None:
    sender = RttSender(T140_PT, RED_PT, interval=0.0001)
    out = drive(sender, [(0.0, "a"), (0.00005, "b"), (0.0001, "c")], until=1)
    assert [red(p)[1] for _, p in out] == [b"a", b"bc", b"", b""]
    stamps = [p.timestamp for _, p in out]
    assert stamps == [0, 1, 2, 3]  # 0.1 ms apart, yet one millisecond each


def test_blocks_older_than_16383_ms_are_left_out() -> None:
    sender = RttSender(T140_PT, RED_PT, generations=2)
    out = drive(sender, [(0.0, "a"), (16.9, "b")], until=60)
    assert [round(t, 3) for t, _ in out] == [0.0, 0.3, 0.6, 16.9, 17.2, 17.5]
    blocks, primary = red(out[3][1])
    assert primary == b"b"
    assert blocks == [(16300, b"")]  # the 0.3 s block is 16600 ms old: left out
    assert out[3][1].marker
    blocks, _ = red(out[4][1])
    assert blocks == [(300, b"b")]  # the 0.6 s block is now 16600 ms old: left out


def test_timestamps_wrap_at_32_bits() -> None:
    sender = RttSender(T140_PT, RED_PT, timestamp_base=2**32 - 400)
    out = drive(sender, [(0.0, "a"), (0.3, "b")], until=10)
    assert [p.timestamp for _, p in out][:3] == [2**32 - 400, 2**32 - 100, 200]
    blocks, _ = red(out[2][1])
    assert blocks == [(600, b"a"), (300, b"b")]


# ------------------------------------------------------------------- cps


def test_cps_queues_and_never_drops() -> None:
    sender = RttSender(T140_PT, RED_PT, cps=2)
    text = "".join(chr(ord("a") + i % 26) for i in range(75))
    out = drive(sender, [(0.0, text)], until=120)
    primaries = [red(p)[1] for _, p in out]
    assert b"".join(primaries) == text.encode()
    sends = [(t, len(red(p)[1])) for t, p in out if red(p)[1]]
    for start, _ in sends:
        window = sum(n for t, n in sends if start <= t <= start + 10.0)
        assert window <= 20
    assert sender.characters_sent == 75
    assert sender.overflowed == 0


def test_cps_limited_text_resumes_after_the_tail_with_the_marker() -> None:
    sender = RttSender(T140_PT, RED_PT, cps=1)
    out = drive(sender, [(0.0, "x" * 12)], until=30)
    with_text = [(round(t, 3), p.marker, red(p)[1]) for t, p in out if red(p)[1]]
    assert with_text == [(0.0, True, b"x" * 10), (10.001, True, b"xx")]


def test_set_cps_applies_to_later_packets() -> None:
    sender = RttSender(T140_PT, RED_PT, cps=1)
    sender.write("y" * 15, 0.0)
    (first,) = sender.poll(0.0)
    assert red(first)[1] == b"y" * 10
    sender.set_cps(None)
    assert red(sender.poll(0.3)[0])[1] == b"y" * 5
    with pytest.raises(ValueError, match="cps"):
        sender.set_cps(0)


def test_blocks_hold_at_most_1023_bytes_of_whole_characters() -> None:
    sender = RttSender(T140_PT, RED_PT, cps=None)
    text = "é" * 1500 + "😀" * 300
    out = drive(sender, [(0.0, text)], until=30)
    primaries = [red(p)[1] for _, p in out]
    assert all(len(p) <= 1023 for p in primaries)
    assert "".join(p.decode() for p in primaries) == text


def test_pending_overflow_is_marked_not_silent() -> None:
    sender = RttSender(T140_PT, RED_PT, cps=1, max_pending=10)
    sender.write("abcdefghijklmnop", 0.0)
    assert sender.pending == 10
    sender.write("more", 0.0)
    out = drive(sender, [], until=60)
    sent = b"".join(red(p)[1] for _, p in out).decode()
    assert sent == "abcdefghi" + LOSS_MARK
    assert sender.overflowed == 7 + 4


# ------------------------------------------------------------- keep-alive


def test_keepalive_bom_after_long_idle_only_when_enabled() -> None:
    sender = RttSender(T140_PT, RED_PT, keepalive=25.0)
    out = drive(sender, [(0.0, "a")], until=60)
    bom = BOM.encode()
    assert [(round(t, 3), p.marker, red(p)[1]) for t, p in out] == [
        (0.0, True, b"a"),
        (0.3, False, b""),
        (0.6, False, b""),
        (25.6, True, bom),
        (25.9, False, b""),
        (26.2, False, b""),
        (51.2, True, bom),
        (51.5, False, b""),
        (51.8, False, b""),
    ]
    quiet = RttSender(T140_PT, RED_PT)
    assert len(drive(quiet, [(0.0, "a")], until=60)) == 3


# ------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    "kwargs",
    [
        {"generations": 4},
        {"generations": -1},
        {"interval": 0.6},
        {"interval": 0.0},
        {"cps": 0},
        {"keepalive": 0.1},
        {"red_pt": T140_PT},
        {"red_pt": 200},
    ],
)
def test_bad_arguments(kwargs: dict[str, int | float]) -> None:
    args: dict[str, object] = {"red_pt": RED_PT, **kwargs}
    with pytest.raises(ValueError, match=r"\w"):
        RttSender(T140_PT, **args)  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(
    writes=st.lists(
        st.tuples(st.floats(0, 20, allow_nan=False), st.text(min_size=1, max_size=12)),
        max_size=25,
    ),
    generations=st.integers(0, 3),
    interval=st.sampled_from([0.1, 0.3, 0.5]),
)
def test_everything_written_goes_out_once_in_order(
    writes: list[tuple[float, str]], generations: int, interval: float
) -> None:
    sender = RttSender(T140_PT, RED_PT, generations=generations, interval=interval, cps=None)
    out = drive(sender, writes, until=1000)
    expected = sanitize("".join(text for _, text in sorted(writes, key=lambda w: w[0])))
    sent = b"".join(red(p)[1] for _, p in out)
    assert sent.decode() == expected
    stamps = [p.timestamp for _, p in out]
    assert stamps == sorted(set(stamps))
    markers = [p.marker for _, p in out]
    assert markers[:1] in ([], [True])
    assert sender.idle
