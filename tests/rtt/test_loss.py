"""Sender → lossy, reordering path → receiver, as properties.

Every sent T140block is accounted for by sequence number: a block that some received
packet carries (as primary or redundancy) comes out exactly once, unchanged; a block no
received packet carries comes out as exactly one U+FFFD (or, for an empty block left out
of the redundancy for age, as an inferred empty block, RFC 4103 §5.3); blocks before the
first one the receiver can place are covered by one leading U+FFFD. So with at most
``generations`` consecutive losses the text arrives exactly, and with more every loss is
marked and nothing else is lost or repeated.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from appliance.rtt.receiver import Origin, ReceivedBlock, RttReceiver
from appliance.rtt.red import decode_red
from appliance.rtt.sender import RttSender
from appliance.rtt.sim import account, simulate, simulate_loss
from appliance.rtt.stream import RtpPacket, RtpTextStream, feed_datagram
from appliance.rtt.t140 import BS, LOSS_MARK, NEW_LINE, T140Writer, TextBuffer
from tests.rtt.vectors import RED_PT, T140_PT

SENTINEL_PAUSE = 20.0
"""After the typing, one last text is sent (and never lost) so a loss at the end shows."""


@dataclass
class Run:
    """What was sent (by index) and what the receiver gave, plus per-block facts."""

    sent: list[RtpPacket]
    data: list[bytes]
    carried: list[bool]
    received: list[ReceivedBlock]
    first_seq: int
    generations: int

    def index(self, block: ReceivedBlock) -> int:
        return (block.seq - self.first_seq) & 0xFFFF


def blocks_of(packet: RtpPacket) -> tuple[list[bytes], bytes]:
    if packet.payload_type == RED_PT:
        red = decode_red(packet.payload, T140_PT)
        return [block.data for block in red.redundant], red.primary
    return [], packet.payload


def run(
    typed: list[tuple[float, str]],
    generations: int,
    lost: set[int],
    delay: dict[int, float],
    *,
    first_seq: int = 1000,
) -> Run:
    """Type ``typed`` (gap before each piece, text), send, lose and delay packets by index
    (the sentinel's packets are never lost), and receive."""
    writer = T140Writer()
    sender = RttSender(T140_PT, RED_PT, generations=generations, cps=None)
    stream = RtpTextStream(sender, ssrc=0xABCDEF, first_seq=first_seq)
    writes: list[tuple[float, str]] = [(0.0, writer.start())]
    at = 0.0
    for gap, text in typed:
        at += gap
        writes.append((at, writer.text(text)))
    timed: list[tuple[float, RtpPacket]] = []
    sentinel_index: int | None = None
    now = 0.0
    while True:
        while writes and writes[0][0] <= now:
            sender.write(writes.pop(0)[1], now)
        timed.extend((now, packet) for packet in stream.poll(now))
        deadline = stream.next_deadline()
        if deadline is None and not writes:
            if sentinel_index is not None:
                break
            sentinel_index = len(timed)
            writes.append((now + SENTINEL_PAUSE, "."))
        times = [t for t in (deadline,) if t is not None] + [w[0] for w in writes[:1]]
        now = max(now, min(times))
    assert sentinel_index is not None
    sent = [packet for _, packet in timed]
    data = [blocks_of(packet)[1] for packet in sent]
    arrivals: list[tuple[float, int]] = []
    for index, (t, _) in enumerate(timed):
        if index < sentinel_index and index in lost:
            continue
        arrivals.append((t + delay.get(index, 0.0), index))
    heapq.heapify(arrivals)
    carried = [False] * len(sent)
    for _, index in arrivals:
        redundant, _ = blocks_of(sent[index])
        for back in range(len(redundant) + 1):
            carried[index - back] = True
    receiver = RttReceiver(T140_PT, RED_PT, generations=generations, started=0.0)
    received: list[ReceivedBlock] = []
    while arrivals:
        at, index = heapq.heappop(arrivals)
        deadline = receiver.next_deadline()
        while deadline is not None and deadline < at:
            received += receiver.poll(deadline)
            deadline = receiver.next_deadline()
        assert feed_datagram(receiver, sent[index].serialize(), at)
        received += receiver.poll(at)
    while (deadline := receiver.next_deadline()) is not None:
        received += receiver.poll(deadline)
    return Run(sent, data, carried, received, first_seq, generations)


def split_leading(result: Run) -> tuple[bool, list[ReceivedBlock]]:
    """Whether the output starts with the one U+FFFD for an unknown start, and the rest."""
    out = list(result.received)
    if out and out[0].origin is Origin.LOST:
        return True, out[1:]
    return False, out


def check_accounting(result: Run) -> tuple[bool, int]:
    """Assert the per-block rules; return (leading mark?, marks after the start)."""
    leading, out = split_leading(result)
    indexes = [result.index(block) for block in out]
    assert indexes == list(range(indexes[0], len(result.sent))), "each block once, in order"
    if indexes[0] > 0:
        assert leading, "blocks before the start were neither delivered nor marked"
    marks = 0
    for index, block in zip(indexes, out, strict=True):
        if block.origin is Origin.INFERRED:
            # Also for a carried block: a packet that left it out as too old (RFC 4103
            # §5.2: only an empty block can be) may arrive before the one carrying it.
            assert result.data[index] == b"", "only an empty block may be inferred"
        elif result.carried[index]:
            assert block.origin in (Origin.PRIMARY, Origin.REDUNDANT), index
            assert block.data == result.data[index], index
        else:
            assert block.origin is Origin.LOST, index
            assert block.data == LOSS_MARK.encode()
            marks += 1
    return leading, marks


def longest_run(lost: set[int]) -> int:
    best = current = 0
    for index in range(max(lost, default=-1) + 1):
        current = current + 1 if index in lost else 0
        best = max(best, current)
    return best


# ------------------------------------------------------------------- strategies

typing_text = st.lists(
    st.one_of(
        st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
        st.sampled_from([BS, "\r\n", "\n", "\r", NEW_LINE]),
    ),
    min_size=1,
    max_size=6,
).map("".join)
gaps = st.one_of(
    st.floats(0.0, 0.5),
    st.floats(0.5, 4.0),
    st.floats(16.0, 19.0),  # redundant blocks outgrow the 16383 ms offset
)
typed_strategy = st.lists(st.tuples(gaps, typing_text), min_size=1, max_size=12)


@st.composite
def bounded_losses(draw: st.DrawFn, generations: int) -> set[int]:
    """Lost packet indexes with at most ``generations`` in a row."""
    lost: set[int] = set()
    index = 0
    while index < 80:
        burst = draw(st.integers(0, generations))
        lost.update(range(index, index + burst))
        index += burst + draw(st.integers(1, 4))
    return lost


def visible(blocks: list[bytes]) -> str:
    buffer = TextBuffer()
    for block in blocks:
        buffer.feed(block)
    return buffer.text


# -------------------------------------------------------------------- properties


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), typed=typed_strategy, generations=st.integers(1, 3))
def test_up_to_generations_consecutive_losses_lose_nothing(
    data: st.DataObject, typed: list[tuple[float, str]], generations: int
) -> None:
    lost = data.draw(bounded_losses(generations))
    result = run(typed, generations, lost, {})
    leading, marks = check_accounting(result)
    assert marks == 0
    # the first packet that arrives still carries the session's opening BOM
    assert not leading
    got = [block.data for block in result.received if block.origin is not Origin.LOST]
    assert b"".join(got) == b"".join(result.data)
    assert visible(got) == visible(result.data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    typed=typed_strategy,
    generations=st.integers(0, 3),
    lost=st.sets(st.integers(0, 80), max_size=60),
    first_seq=st.sampled_from([1000, 65530]),
)
def test_any_loss_is_marked_once_per_block_and_nothing_else_changes(
    typed: list[tuple[float, str]], generations: int, lost: set[int], first_seq: int
) -> None:
    result = run(typed, generations, lost, {}, first_seq=first_seq)
    _, marks = check_accounting(result)
    assert marks <= sum(1 for carried in result.carried if not carried)
    if longest_run(lost) <= generations:
        assert marks == 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    typed=typed_strategy,
    generations=st.integers(0, 3),
    lost=st.sets(st.integers(0, 80), max_size=30),
    delays=st.dictionaries(st.integers(0, 80), st.floats(0.0, 0.9), max_size=40),
)
@example(  # block 21 lost; 23, which leaves 21 out as too old, overtakes 22, which carries it
    typed=[(0.5, "0"), (0.25, "0"), (1.0, "0"), (1.0, "0"), (1.0, "0"), (1.0, "0"), (17.0, "0")],
    generations=3,
    lost={0, 21},
    delays={0: 0.0, 22: 0.5},
)
def test_reordering_within_the_hold_changes_nothing(
    typed: list[tuple[float, str]],
    generations: int,
    lost: set[int],
    delays: dict[int, float],
) -> None:
    in_order = run(typed, generations, lost, {})
    reordered = run(typed, generations, lost, delays)
    check_accounting(reordered)
    assert [(b.seq, b.data) for b in reordered.received] == [
        (b.seq, b.data) for b in in_order.received
    ]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    typed=typed_strategy,
    generations=st.integers(0, 3),
    lost=st.sets(st.integers(0, 80), max_size=30),
    delays=st.dictionaries(st.integers(0, 80), st.floats(0.0, 4.0), max_size=40),
)
def test_reordering_beyond_the_hold_still_loses_nothing_unmarked(
    typed: list[tuple[float, str]],
    generations: int,
    lost: set[int],
    delays: dict[int, float],
) -> None:
    """Packets later than the hold are treated as lost: marked if nothing else carried
    them, never delivered twice or out of order."""
    result = run(typed, generations, lost, delays)
    _, out = split_leading(result)
    indexes = [result.index(block) for block in out]
    assert indexes == list(range(indexes[0], len(result.sent))), "each block once, in order"
    for index, block in zip(indexes, out, strict=True):
        if block.origin is Origin.LOST:
            assert block.data == LOSS_MARK.encode()
        else:
            assert block.data == result.data[index]


# ------------------------------------------------------------- seeded simulation


@pytest.mark.parametrize("loss", [0.0, 0.1, 0.3, 0.5])
@pytest.mark.parametrize("generations", [0, 2])
def test_seeded_typing_with_backspaces_over_random_loss(loss: float, generations: int) -> None:
    rng = random.Random(7)
    words = ["help", "fire", "at", "12", "main", "st", "smoke", "2nd", "floor", "één", "日本"]
    pieces = []
    for _ in range(120):
        word = rng.choice(words)
        if rng.random() < 0.2:
            word += "x" + BS
        pieces.append(word + rng.choice([" ", " ", "\r\n"]))
    counts = simulate_loss("".join(pieces), loss, generations, seed=11)
    assert counts.characters >= 500
    assert counts.silently_lost == 0
    assert counts.characters == counts.delivered + counts.recovered + counts.marked
    if loss == 0.0:
        assert counts.marks == 0
        assert counts.delivered == counts.characters
    else:
        assert counts.packets_lost > 0
        assert counts.marked > 0 or generations > 0
        assert counts.recovered > 0 or generations == 0


def test_simulation_without_loss_shows_the_same_text() -> None:
    text = "Hello\r\nI need help" + BS * 4 + "an ambulance\nnow"
    sim = simulate(text, 2, seed=3, drop=lambda _: False, delay=lambda _: 0.02)
    counts = account(sim)
    assert counts.silently_lost == 0
    assert counts.marks == 0
    shown = visible([b.data for b in sim.received])
    assert shown == f"Hello{NEW_LINE}I need an ambulance{NEW_LINE}now"


def test_accounting_counts_the_unknown_start_as_marked() -> None:
    """The first five packets are lost: the one U+FFFD before the first delivered block
    stands for all of them."""
    sim = simulate("12 smoke", 0, seed=3, drop=lambda index: index < 5, delay=lambda _: 0.02)
    assert sim.received[0].origin is Origin.LOST
    counts = account(sim)
    assert counts.silently_lost == 0
    assert counts.marks == 1
    assert counts.marked >= 2
    assert counts.delivered + counts.marked == counts.characters == 8
