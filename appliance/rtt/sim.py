"""A seeded, clock-free simulation of one RTP text stream over a lossy, reordering path.

Text is typed into :class:`T140Writer` at a human pace (with pauses, some longer than the
16383 ms a redundant block may age), sent by :class:`RttSender` through
:class:`RtpTextStream`, dropped or delayed per packet, and reassembled by
:class:`RttReceiver`. Every sent block is then matched, by sequence number, with what the
receiver delivered: its own packet, a redundant copy, an U+FFFD mark, or nothing (a silent
loss, which must never happen). The sender keeps the session alive with a BOM every 25 s,
so a loss at the very end is found when the next packet arrives, as in a real call.

With independent loss ``p`` and ``g`` generations, a block is unrecoverable only when its
packet and the next ``g`` are all lost: the floor is ``p ** (g + 1)`` (RFC 4103 §4).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass

from appliance.rtt.receiver import Origin, ReceivedBlock, RttReceiver
from appliance.rtt.red import decode_red
from appliance.rtt.sender import RttSender
from appliance.rtt.stream import RtpPacket, RtpTextStream, feed_datagram
from appliance.rtt.t140 import BOM, T140Writer

T140_PT = 98
RED_PT = 100
FIRST_SEQ = 1000
KEEPALIVE = 25.0
MAX_PACKETS_AT_END = 600


@dataclass(frozen=True)
class SimRun:
    """What went in and what came out: ``sent[i]`` is the primary block of the packet with
    sequence number ``FIRST_SEQ + i``; ``received`` is the receiver's output in order."""

    sent: tuple[bytes, ...]
    lost: frozenset[int]
    received: tuple[ReceivedBlock, ...]
    generations: int
    typed_at: tuple[float, ...] = ()
    received_at: tuple[float, ...] = ()


@dataclass(frozen=True)
class LossCounts:
    """Characters (code points, BOMs excluded) by fate, plus block and packet totals."""

    characters: int
    delivered: int
    recovered: int
    marked: int
    silently_lost: int
    duplicated: int
    marks: int
    blocks: int
    blocks_marked: int
    packets: int
    packets_lost: int
    floor: float

    def as_dict(self) -> dict[str, float]:
        """The counts as a plain dict (for a benchmark's JSON)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def typing_schedule(text: str, rng: random.Random) -> list[tuple[float, str]]:
    """When each character of ``text`` is typed: 40-300 ms apart, a pause of 0.5-3 s at
    one space in ten and of 17-20 s at one space in a hundred."""
    at = 1.0
    schedule = []
    for char in text:
        at += rng.uniform(0.04, 0.3)
        if char == " ":
            roll = rng.random()
            if roll < 0.01:
                at += rng.uniform(17.0, 20.0)
            elif roll < 0.1:
                at += rng.uniform(0.5, 3.0)
        schedule.append((at, char))
    return schedule


def simulate(
    text: str,
    generations: int,
    *,
    seed: int,
    drop: Callable[[int], bool],
    delay: Callable[[int], float],
    interval: float = 0.3,
) -> SimRun:
    """Run ``text`` through sender → path → receiver; ``drop(i)`` and ``delay(i)`` decide
    the fate of the i-th packet (0-based)."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible simulation, not a secret
    schedule = typing_schedule(text, rng)
    writer = T140Writer()
    sender = RttSender(
        T140_PT, RED_PT, generations=generations, interval=interval, keepalive=KEEPALIVE
    )
    stream = RtpTextStream(sender, ssrc=0x5EED, first_seq=FIRST_SEQ)
    receiver = RttReceiver(T140_PT, RED_PT, generations=generations, started=0.0)
    sent: list[bytes] = []
    lost: set[int] = set()
    received: list[ReceivedBlock] = []
    received_at: list[float] = []
    flight: list[tuple[float, int, RtpPacket]] = []
    tail = max(generations, 1)
    last_text = -1
    settled = False
    typed = 0
    packets_at_end = 0
    sender.write(writer.start(), 0.0)
    now = 0.0
    while True:
        while typed < len(schedule) and schedule[typed][0] <= now:
            sender.write(writer.text(schedule[typed][1]), now)
            typed += 1
        done_typing = typed == len(schedule) and sender.pending == 0
        for packet in stream.poll(now):
            index = len(sent)
            primary = _primary(packet)
            sent.append(primary)
            if characters(primary):
                last_text = index
            elif done_typing and index > last_text + tail:
                packets_at_end += 1
            if drop(index):
                lost.add(index)
            else:
                heapq.heappush(flight, (now + delay(index), index, packet))
        while flight and flight[0][0] <= now:
            _, index, packet = heapq.heappop(flight)
            feed_datagram(receiver, packet.serialize(), now)
            if done_typing and index > last_text + tail:
                settled = True
        ready = receiver.poll(now)
        received.extend(ready)
        received_at.extend(now for _ in ready)
        if settled and not flight and receiver.next_deadline() is None:
            break
        if packets_at_end > MAX_PACKETS_AT_END and not flight:
            ready = receiver.flush()
            received.extend(ready)
            received_at.extend(now for _ in ready)
            break
        times = [t for t in (stream.next_deadline(), receiver.next_deadline()) if t is not None]
        if typed < len(schedule):
            times.append(schedule[typed][0])
        if flight:
            times.append(flight[0][0])
        now = max(min(times), now)
    return SimRun(
        tuple(sent),
        frozenset(lost),
        tuple(received),
        generations,
        tuple(at for at, _ in schedule),
        tuple(received_at),
    )


def _primary(packet: RtpPacket) -> bytes:
    if packet.payload_type == T140_PT:
        return packet.payload
    return decode_red(packet.payload, T140_PT).primary


def characters(block: bytes) -> int:
    """User characters in a block: code points other than the BOM."""
    return len(block.decode("utf-8", errors="replace").replace(BOM, ""))


def account(run: SimRun, loss: float = 0.0) -> LossCounts:
    """Match every sent block with the receiver's output for its sequence number.

    A U+FFFD that opens the output (the receiver could not tell where the stream began)
    covers every block before it that was not delivered.
    """
    by_seq: dict[int, ReceivedBlock] = {}
    duplicated = 0
    previous: int | None = None
    for block in run.received:
        if previous is None:
            ext = block.seq if block.seq >= FIRST_SEQ - 100 else block.seq + 0x10000
        else:
            ext = previous + ((block.seq - previous) & 0xFFFF)
        previous = ext
        duplicated += ext in by_seq
        by_seq[ext] = block
    leading = FIRST_SEQ - 1
    if run.received and run.received[0].origin is Origin.LOST:
        leading = min(by_seq)
    delivered = recovered = marked = silent = blocks = blocks_marked = total = 0
    for index, data in enumerate(run.sent):
        count = characters(data)
        total += count
        blocks += count > 0
        got = by_seq.get(FIRST_SEQ + index)
        if got is None and FIRST_SEQ + index < leading:
            marked += count
            blocks_marked += count > 0
        elif got is None:
            silent += count
        elif got.origin is Origin.LOST:
            marked += count
            blocks_marked += count > 0
        elif got.data != data:
            silent += count
        elif got.origin is Origin.PRIMARY:
            delivered += count
        elif got.origin is Origin.REDUNDANT:
            recovered += count
    marks = sum(block.origin is Origin.LOST for block in run.received)
    return LossCounts(
        characters=total,
        delivered=delivered,
        recovered=recovered,
        marked=marked,
        silently_lost=silent,
        duplicated=duplicated,
        marks=marks,
        blocks=blocks,
        blocks_marked=blocks_marked,
        packets=len(run.sent),
        packets_lost=len(run.lost),
        floor=loss ** (run.generations + 1),
    )


def latencies(run: SimRun) -> list[float]:
    """Seconds from typing to delivery for each character delivered as itself (not
    marked), matched in order. Exact when every typed character is sent as one code point
    (no CR LF pairs, which become one new line)."""
    by_seq: dict[int, float] = {}
    for block, at in zip(run.received, run.received_at, strict=True):
        if block.origin is not Origin.LOST:
            by_seq.setdefault(block.seq, at)
    out: list[float] = []
    typed = 0
    for index, data in enumerate(run.sent):
        count = characters(data)
        delivered = by_seq.get((FIRST_SEQ + index) & 0xFFFF)
        for _ in range(count):
            if delivered is not None and typed < len(run.typed_at):
                out.append(delivered - run.typed_at[typed])
            typed += 1
    return out


def simulate_loss(
    text: str, loss: float, generations: int, seed: int, *, reorder: float = 0.0
) -> LossCounts:
    """Send ``text`` with ``generations`` of redundancy over a path that loses each packet
    with probability ``loss`` (and delays it by up to ``reorder`` extra seconds)."""
    path = random.Random(seed ^ 0x5A5A5A5A)  # noqa: S311 - reproducible path losses
    fates: dict[int, tuple[bool, float]] = {}

    def fate(index: int) -> tuple[bool, float]:
        if index not in fates:
            fates[index] = (path.random() < loss, 0.02 + path.random() * reorder)
        return fates[index]

    run = simulate(
        text,
        generations,
        seed=seed,
        drop=lambda index: fate(index)[0],
        delay=lambda index: fate(index)[1],
    )
    return account(run, loss)
