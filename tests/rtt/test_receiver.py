"""The RFC 4103 receiver: the digest's loss cases, recovery, marks, reordering, duplicates,
SSRC changes, sequence wrap and hostile input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.rtt.receiver import Origin, RttReceiver
from appliance.rtt.red import RedundantBlock, encode_red
from appliance.rtt.stream import RtpPacket, feed_datagram
from appliance.rtt.t140 import BOM
from tests.rtt.streams import MARK, fates, feed, receiver, rtp, send, shown
from tests.rtt.vectors import (
    RED_PT,
    RED_SEQ_102,
    T140_PT,
    TAIL_SEQ_103,
    TAIL_SEQ_104,
)

BA = BOM.encode() + b"a"
P, R, L, INF = Origin.PRIMARY, Origin.REDUNDANT, Origin.LOST, Origin.INFERRED


def vector_stream() -> dict[int, tuple[float, RtpPacket]]:
    """Packets 98-104 of vectors 1-2: BOM at 0.4 s, "H" 1.0, "EL" 1.3, "P" 1.6, the tail."""
    timed = send([(0.4, BOM), (1.0, "H"), (1.3, "EL"), (1.6, "P")])
    packets = {packet.sequence: (t, packet) for t, packet in timed}
    assert sorted(packets) == list(range(98, 105))
    assert packets[102][1].serialize() == RED_SEQ_102
    assert packets[103][1].serialize() == TAIL_SEQ_103
    assert packets[104][1].serialize() == TAIL_SEQ_104
    return packets


# ------------------------------------------------------- vector 3: the four loss cases


def test_vector_3a_in_order() -> None:
    """Last seen 101, then 102 arrives: "P"."""
    stream = vector_stream()
    rx = receiver()
    for seq in (98, 99, 100, 101):
        feed(rx, stream[seq][1], stream[seq][0])
    assert fates(feed(rx, RED_SEQ_102, 1.6)) == [(102, b"P", P)]


def test_vector_3b_one_lost() -> None:
    """Last seen 101, 102 lost, 103 arrives: "P" from R1, then the empty primary."""
    stream = vector_stream()
    rx = receiver()
    for seq in (98, 99, 100, 101):
        feed(rx, stream[seq][1], stream[seq][0])
    assert fates(feed(rx, TAIL_SEQ_103, 1.9)) == [(102, b"P", R), (103, b"", P)]
    assert rx.stats.recovered == 1
    assert rx.stats.marked == 0


def test_vector_3c_two_lost() -> None:
    """Last seen 99, 100-101 lost, 102 arrives: "H" (R2), "EL" (R1), then "P"."""
    stream = vector_stream()
    rx = receiver()
    for seq in (98, 99):
        feed(rx, stream[seq][1], stream[seq][0])
    assert fates(feed(rx, RED_SEQ_102, 1.6)) == [(100, b"H", R), (101, b"EL", R), (102, b"P", P)]
    assert rx.next_deadline() is None


def test_vector_3d_three_lost_one_mark() -> None:
    """Last seen 98, 99-101 lost, 102 arrives: EF BF BD for 99, then "H", "EL", "P".

    The gap cannot be filled from redundancy, so 102 is held for a reordered 99 for 1 s
    (RFC 4103 §5.4), then 99 is marked."""
    stream = vector_stream()
    rx = receiver()
    feed(rx, stream[98][1], stream[98][0])
    assert feed(rx, RED_SEQ_102, 1.6) == []
    assert rx.next_deadline() == pytest.approx(2.6)
    assert rx.poll(2.59) == []
    assert fates(rx.poll(2.6)) == [
        (99, MARK, L),
        (100, b"H", R),
        (101, b"EL", R),
        (102, b"P", P),
    ]
    assert bytes.fromhex("EF BF BD") == MARK
    assert rx.stats.marked == 1
    assert rx.next_deadline() is None


def test_vector_3d_the_reordered_packet_in_time_means_no_mark() -> None:
    stream = vector_stream()
    rx = receiver()
    feed(rx, stream[98][1], stream[98][0])
    assert feed(rx, RED_SEQ_102, 1.6) == []
    assert fates(feed(rx, stream[99][1], 2.5)) == [
        (99, b"", P),
        (100, b"H", R),
        (101, b"EL", R),
        (102, b"P", P),
    ]
    assert rx.stats.marked == 0


# --------------------------------------------------------------- marks and holding


def test_one_mark_per_unrecoverable_block() -> None:
    """Five lost in a row with two generations: three blocks are gone, three marks."""
    timed = send([(0.3 * i, chr(ord("a") + i)) for i in range(10)], first_seq=0)
    rx = receiver()
    out = []
    for t, packet in timed:
        if 2 <= packet.sequence <= 6:
            continue
        out += feed(rx, packet, t)
    out += rx.poll(100.0)
    assert shown(out) == b"ab" + MARK * 3 + b"fghij"
    assert [block.origin for block in out][:8] == [P, P, L, L, L, R, R, P]
    assert rx.stats.marked == 3


def test_plain_t140_reordering_within_the_hold_is_repaired() -> None:
    timed = send([(0.0, "a"), (0.2, "b"), (0.5, "c")], red=False, first_seq=10)
    rx = receiver(0, red=False)
    assert [p.payload for _, p in timed] == [BA, b"b", b"c", b""]
    order = [timed[0], timed[2], timed[1], timed[3]]
    out = []
    for arrival, (_, packet) in zip([0.0, 0.6, 0.9, 1.0], order, strict=True):
        out += feed(rx, packet, arrival)
    assert fates(out) == [(10, BA, P), (11, b"b", P), (12, b"c", P), (13, b"", P)]


def test_plain_t140_reordering_beyond_one_second_is_marked_then_dropped() -> None:
    timed = send([(0.0, "a"), (0.2, "b"), (0.5, "c")], red=False, first_seq=10)
    rx = receiver(0, red=False)
    out = feed(rx, timed[0][1], 0.0)
    out += feed(rx, timed[2][1], 0.6)
    assert rx.next_deadline() == pytest.approx(1.6)
    out += rx.poll(1.6)
    out += feed(rx, timed[1][1], 1.7)
    assert fates(out) == [(10, BA, P), (11, MARK, L), (12, b"c", P)]
    assert rx.stats.late == 1


def test_hold_is_counted_from_the_earliest_waiting_packet() -> None:
    timed = send([(0.3 * i, chr(ord("a") + i)) for i in range(6)], red=False, first_seq=0)
    rx = receiver(0, red=False)
    feed(rx, timed[0][1], 0.0)
    feed(rx, timed[2][1], 0.5)
    feed(rx, timed[4][1], 0.9)
    assert rx.next_deadline() == pytest.approx(1.5)
    assert fates(rx.poll(1.5)) == [(1, MARK, L), (2, b"c", P)]
    assert rx.next_deadline() == pytest.approx(1.9)
    assert fates(rx.poll(1.9)) == [(3, MARK, L), (4, b"e", P)]


def test_duplicates_are_dropped() -> None:
    timed = send([(0.0, "a"), (0.3, "b")])
    rx = receiver()
    out = []
    for t, packet in timed:
        out += feed(rx, packet, t)
        out += feed(rx, packet, t + 0.01)
    assert shown(out) == b"ab"
    assert rx.stats.duplicates == len(timed)
    assert rx.stats.marked == 0


def test_a_redundant_copy_does_not_replace_a_primary_and_vice_versa() -> None:
    timed = send([(0.0, "a"), (0.3, "b"), (0.6, "c")])
    rx = receiver()
    out = feed(rx, timed[0][1], 0.0)
    out += feed(rx, timed[2][1], 0.6)  # carries "b" as R1: recovered at once
    out += feed(rx, timed[1][1], 0.61)  # the primary of "b", late: dropped
    assert fates(out) == [(98, BA, P), (99, b"b", R), (100, b"c", P)]
    assert rx.stats.late == 1


# ------------------------------------------------------------------ stream start


def test_start_with_marker_is_delivered_at_once() -> None:
    timed = send([(0.0, "hi")])
    rx = receiver()
    assert shown(feed(rx, timed[0][1], 0.0)) == b"hi"


def test_start_lost_but_covered_by_redundancy() -> None:
    """The first packet (M=1) is lost; the second repeats it with fewer blocks than the
    level, which shows the session start: no mark."""
    timed = send([(0.0, "a"), (0.3, "b"), (0.6, "c")])
    rx = receiver()
    out = feed(rx, timed[1][1], 0.3)
    assert fates(out) == [(98, BA, R), (99, b"b", P)]


def test_start_unknown_gets_one_mark_after_the_hold() -> None:
    """A first packet without marker and with full redundancy may follow lost text."""
    timed = send([(0.3 * i, chr(ord("a") + i)) for i in range(6)])
    rx = receiver()
    assert feed(rx, timed[4][1], 1.2) == []
    assert rx.next_deadline() == pytest.approx(2.2)
    out = feed(rx, timed[5][1], 1.5)
    assert out == []
    out = rx.poll(2.2)
    assert fates(out) == [
        (99, MARK, L),
        (100, b"c", R),
        (101, b"d", R),
        (102, b"e", P),
        (103, b"f", P),
    ]


def test_start_unknown_then_an_earlier_packet_arrives() -> None:
    timed = send([(0.3 * i, chr(ord("a") + i)) for i in range(6)])
    rx = receiver()
    feed(rx, timed[3][1], 0.9)
    out = feed(rx, timed[0][1], 1.0)  # the marker packet, reordered
    assert shown(out) == b"abcd"
    assert rx.stats.marked == 0


# ------------------------------------------------------------------- SSRC change


def test_ssrc_change_ends_the_old_stream_and_starts_a_new_one() -> None:
    old = send([(0.0, "a"), (0.3, "b"), (0.6, "c")], ssrc=1, first_seq=500)
    new = send([(5.0, "x"), (5.3, "y")], ssrc=2, first_seq=20000)
    rx = receiver()
    out = feed(rx, old[0][1], 0.0)
    out += feed(rx, old[1][1], 0.3)
    # old[2] ("c") is late; the new SSRC arrives first
    out += feed(rx, new[0][1], 5.0)
    assert [(b.ssrc, b.data) for b in out] == [(1, BA), (1, b"b"), (2, BOM.encode() + b"x")]
    assert rx.stats.ssrc_changes == 1
    out = feed(rx, old[2][1], 5.1)  # carries "c" beyond where the old stream ended: marked
    assert fates(out) == [(502, MARK, L)]
    assert feed(rx, old[2][1], 5.2) == []  # and only once
    assert feed(rx, old[0][1], 5.2) == []  # earlier packets of the old SSRC: dropped
    out = feed(rx, new[1][1], 5.3)
    assert [(b.ssrc, b.data) for b in out] == [(2, b"y")]
    assert rx.stats.stale_ssrc == 3


def test_stale_empty_tail_of_an_old_ssrc_is_not_marked() -> None:
    old = send([(0.0, "a")], ssrc=1, first_seq=500)
    new = send([(5.0, "x")], ssrc=2, first_seq=7)
    rx = receiver()
    feed(rx, old[0][1], 0.0)
    feed(rx, new[0][1], 5.0)
    assert feed(rx, old[1][1], 5.1) == []  # empty primary, R1 "a" already delivered
    assert feed(rx, old[2][1], 5.1) == []


def test_ssrc_change_marks_the_old_streams_gaps() -> None:
    old = send([(0.3 * i, chr(ord("a") + i)) for i in range(6)], ssrc=1, first_seq=0, red=False)
    new = send([(5.0, "x")], ssrc=2, first_seq=7, red=False)
    rx = receiver(0, red=False)
    out = feed(rx, old[0][1], 0.0)
    out += feed(rx, old[2][1], 0.6)
    out += feed(rx, new[0][1], 0.7)
    assert fates(out) == [(0, BA, P), (1, MARK, L), (2, b"c", P), (7, BOM.encode() + b"x", P)]


# ------------------------------------------------------------- sequence numbers


def test_sequence_numbers_wrap() -> None:
    timed = send([(0.3 * i, chr(ord("a") + i)) for i in range(6)], first_seq=65533)
    rx = receiver()
    out = []
    for t, packet in timed:
        if packet.sequence in (65535, 0):
            continue
        out += feed(rx, packet, t)
    assert shown(out) == b"abcdef"
    assert [b.seq for b in out][:6] == [65533, 65534, 65535, 0, 1, 2]


def test_a_big_jump_is_believed_only_when_the_next_packet_follows_it() -> None:
    rx = receiver(0, red=False)
    out = feed(rx, rtp(T140_PT, 100, 0, BA, True), 0.0)
    out += feed(rx, rtp(T140_PT, 30000, 300, b"x"), 0.3)  # a stray: ignored
    out += feed(rx, rtp(T140_PT, 101, 600, b"b"), 0.6)
    assert shown(out) == b"ab"
    assert rx.stats.out_of_range == 1
    out = feed(rx, rtp(T140_PT, 40000, 900, b"y"), 0.9)
    out += feed(rx, rtp(T140_PT, 40001, 1200, b"z"), 1.2)
    assert fates(out) == [(40000, MARK, L), (40001, b"z", P)]
    assert rx.stats.resyncs == 1


# ---------------------------------------------------- fewer generations than usual


def test_left_out_old_blocks_are_taken_as_empty() -> None:
    """After a 17 s pause the tail blocks are too old to repeat (RFC 4103 §4.1); losing
    them and then receiving a packet without them is not a loss of text (§5.3)."""
    timed = send([(0.0, "a"), (17.0, "b"), (17.3, "c")])
    assert [t for t, _ in timed] == pytest.approx([0.0, 0.3, 0.6, 17.0, 17.3, 17.6, 17.9])
    rx = receiver()
    out = feed(rx, timed[0][1], 0.0)
    out += feed(rx, timed[3][1], 17.0)  # the tail 99-100 lost; 101 carries none of it
    assert fates(out) == [(98, BA, P), (99, b"", INF), (100, b"", INF), (101, b"b", P)]
    assert rx.stats.marked == 0


def test_fewer_blocks_without_the_age_to_justify_it_are_marked() -> None:
    """A peer that declares two generations but sends one cannot make a block vanish."""
    rx = receiver()
    pkt = [
        rtp(RED_PT, 10, 1000, encode_red(T140_PT, [], BA), True),
        rtp(RED_PT, 11, 1300, encode_red(T140_PT, [RedundantBlock(300, BA)], b"b")),
        rtp(RED_PT, 12, 1600, encode_red(T140_PT, [RedundantBlock(300, b"b")], b"c")),
        rtp(RED_PT, 13, 1900, encode_red(T140_PT, [RedundantBlock(300, b"c")], b"d")),
        rtp(RED_PT, 14, 2200, encode_red(T140_PT, [RedundantBlock(300, b"d")], b"e")),
    ]
    out = []
    for index, packet in enumerate(pkt):
        out += feed(rx, packet, index * 0.3)
    assert shown(out) == b"abcde"
    assert rx.level == 1  # learned from two successive packets carrying one block
    # 11 and 12 lost; 13 repeats only 12: 11 ("b") is not taken as an empty block
    red_13 = encode_red(T140_PT, [RedundantBlock(300, b"c")], b"d")
    rx2 = receiver()
    out = feed(rx2, pkt[0], 0.0) + feed(rx2, rtp(RED_PT, 13, 1900, red_13), 0.9)
    out += rx2.poll(10.0)
    assert fates(out) == [(10, BA, P), (11, MARK, L), (12, b"c", R), (13, b"d", P)]


# ------------------------------------------------------------ other payloads


def test_other_payload_types_count_as_empty_blocks() -> None:
    rx = receiver(0, red=False)
    out = feed(rx, rtp(T140_PT, 1, 0, BA, True), 0.0)
    out += feed(rx, rtp(13, 2, 10, b"\x00"), 0.1)  # e.g. an RFC 6263 keep-alive
    out += feed(rx, rtp(T140_PT, 3, 20, b"b"), 0.2)
    assert shown(out) == b"ab"
    assert rx.stats.foreign_pt == 1
    assert rx.stats.marked == 0


def test_malformed_red_is_counted_and_its_text_recovered_or_marked() -> None:
    timed = send([(0.0, "a"), (0.3, "b"), (0.6, "c")])
    rx = receiver()
    out = feed(rx, timed[0][1], 0.0)
    broken = timed[1][1].serialize()[:12] + b"\xe2\x00\x00\xff\x62b"  # a 255-byte block cut
    assert feed_datagram(rx, broken, 0.3)
    assert rx.stats.malformed == 1
    out += feed(rx, timed[2][1], 0.6)
    assert shown(out) == b"abc"
    assert not feed_datagram(rx, b"\x80\x64", 0.7)
    assert rx.stats.malformed == 2


def test_flush_marks_what_is_still_missing() -> None:
    timed = send([(0.3 * i, chr(ord("a") + i)) for i in range(6)], red=False, first_seq=0)
    rx = receiver(0, red=False)
    feed(rx, timed[0][1], 0.0)
    feed(rx, timed[2][1], 0.6)
    assert fates(rx.flush()) == [(1, MARK, L), (2, b"c", P)]
    assert rx.next_deadline() is None


@settings(max_examples=300, deadline=None)
@given(
    packets=st.lists(
        st.tuples(
            st.integers(0, 0xFFFF),
            st.integers(0, 0xFFFFFFFF),
            st.sampled_from([RED_PT, T140_PT, 0, 127]),
            st.binary(max_size=40),
            st.integers(0, 3),
            st.booleans(),
            st.floats(0, 3, allow_nan=False),
        ),
        max_size=30,
    )
)
def test_hostile_packets_never_raise(
    packets: list[tuple[int, int, int, bytes, int, bool, float]],
) -> None:
    rx = RttReceiver(T140_PT, RED_PT)
    now = 0.0
    for seq, ts, pt, payload, ssrc, marker, step in packets:
        now += step
        rx.feed(seq, ts, payload, pt, now, ssrc=ssrc, marker=marker)
        rx.poll(now)
    rx.flush()
    deadline = rx.next_deadline()
    assert deadline is None or deadline >= 0


def test_a_marker_after_a_lost_first_burst_is_not_taken_for_the_start() -> None:
    """ "hi" and its idle tail are all lost; the next text comes with M=1 and the (empty)
    tail as redundancy. It does not open with a BOM, so it does not show the session
    start: "hi" is marked rather than silently missing (RFC 9071 §3.2)."""
    timed = send([(0.0, "hi"), (1.5, "there")])
    assert [p.marker for _, p in timed] == [True, False, False, True, False, False]
    rx = RttReceiver(T140_PT, RED_PT, started=0.0)
    assert feed(rx, timed[3][1], 1.5) == []
    assert fates(rx.poll(2.5)) == [(98, MARK, L), (99, b"", R), (100, b"", R), (101, b"there", P)]


def test_a_keepalive_bom_long_after_the_start_is_not_taken_for_the_start() -> None:
    timed = send([(0.0, "hi")], keepalive=25.0, until=30.0)
    assert [p.marker for _, p in timed] == [True, False, False, True, False, False]
    rx = RttReceiver(T140_PT, RED_PT, started=0.0)
    assert feed(rx, timed[3][1], 25.6) == []
    assert fates(rx.poll(26.6)) == [(100, MARK, L), (101, BOM.encode(), P)]
    rx = RttReceiver(T140_PT, RED_PT, started=0.0)
    assert shown(feed(rx, timed[0][1], 0.0)) == b"hi"


def test_a_new_ssrc_starts_its_own_window() -> None:
    old = send([(0.0, "a")], ssrc=1, first_seq=500)
    new = send([(30.0, "x")], ssrc=2, first_seq=7)
    rx = RttReceiver(T140_PT, RED_PT, started=0.0)
    out = feed(rx, old[0][1], 0.0) + feed(rx, new[0][1], 30.0)
    assert shown(out) == b"ax"


def test_the_opening_bom_in_redundancy_shows_the_start() -> None:
    """The first two packets are lost; the third repeats the opening BOM: no mark."""
    timed = send([(0.0, ""), (0.2, "a"), (0.4, "b")])
    assert [p.marker for _, p in timed][:3] == [True, False, False]
    rx = RttReceiver(T140_PT, RED_PT, started=0.0)
    out = feed(rx, timed[2][1], 0.6)
    assert fates(out) == [(98, BOM.encode(), R), (99, b"a", R), (100, b"b", P)]
