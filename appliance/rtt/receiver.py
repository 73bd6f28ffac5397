"""The RFC 4103 receiver: in-order T140blocks from RTP packets, with loss recovery, sans-I/O.

Blocks are placed by sequence number. A packet's redundant blocks repeat the primaries of
the packets just before it, so block ``j`` from the end belongs to ``seq - j``
(RFC 4103 §4.2); they fill gaps left by lost packets. Blocks are delivered strictly in
sequence order. When the next block is missing and a later packet has arrived, delivery
waits up to ``hold`` seconds (1 s recommended, RFC 4103 §5.4) for a reordered packet, then
the block is reported lost with one U+FFFD (RFC 4103 §5.3).

A RED packet with fewer redundant blocks than the session's level has left out blocks too
old to send (> 16383 ms, RFC 4103 §4.1); those are empty idle-tail blocks, and are taken
as empty (RFC 4103 §5.3). This receiver does so only when the timestamps agree that the
left-out blocks are that old; otherwise the blocks count as lost and are marked, so a peer
that declares more redundancy than it sends cannot make text vanish unmarked. The level
starts at the declared number of generations and follows two successive packets that
carry the same number (RFC 4103 §5.3), leaving out packets whose shortfall age may explain
(after a pause the first packets carry fewer blocks without any change of level).

The first packets of a stream (or after an SSRC change) set where delivery starts. A
session's text starts with a BOM, sent as soon as the session is set up (RFC 9071 §3.2):
a packet whose first text (oldest block first) is a BOM and that arrives within
``start_window`` of ``started`` shows where the stream starts. The marker bit and a short
redundancy do not: both also follow every idle period (RFC 4103 §5.2), as does a
keep-alive BOM, so a later packet may follow a whole lost burst of text. Otherwise
earlier text may have been missed: after ``hold`` seconds without an earlier packet one
U+FFFD goes before the first block.

A new SSRC starts a new stream (RFC 3550 §8.2): the old one is ended first, delivering
what it holds and marking its gaps. Late packets of an SSRC the stream has left never
enter the new stream; what they carry beyond the old stream's end is marked lost.

Duplicates and packets older than what was already delivered are dropped. A sequence jump
beyond ``max_dropout`` (ahead) or ``max_misorder`` (behind) is believed only when the next
packet follows it (RFC 3550 §A.1); the stream then restarts after one U+FFFD. Packets of a
payload type other than red and t140 (e.g. RFC 6263 keep-alives) count as empty blocks.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from appliance.rtt.red import MAX_OFFSET, RedError, RedundantBlock, decode_red
from appliance.rtt.t140 import BOM, LOSS_MARK_BYTES

BOM_BYTES = BOM.encode()

TS_MASK = 0xFFFFFFFF
SEQ_MASK = 0xFFFF

MAX_RETIRED = 8
"""SSRCs remembered after a change, so their late packets are not taken for a new stream."""

RECENT_TIMESTAMPS = 16
"""Timestamps of the last delivered blocks kept to tell an aged-out block from a lower
redundancy level."""

EARLY = 1e-6
"""A poll this close before a deadline counts as on time (timer wake-ups, float sums)."""


class Origin(enum.Enum):
    """Where a delivered block came from."""

    PRIMARY = "primary"
    REDUNDANT = "redundant"  # recovered from a later packet's redundancy (RFC 4103 §4.2)
    INFERRED = "inferred-empty"  # a left-out, too-old empty block (RFC 4103 §5.3)
    LOST = "lost"  # unrecoverable; ``data`` is the U+FFFD mark (RFC 4103 §5.3)


@dataclass(frozen=True)
class ReceivedBlock:
    """One T140block in stream order; ``seq`` is the RTP sequence number it belongs to."""

    ssrc: int
    seq: int
    data: bytes
    origin: Origin


@dataclass
class ReceiverStats:
    """Counters, in blocks (a lost block is one mark)."""

    delivered: int = 0
    recovered: int = 0
    inferred: int = 0
    marked: int = 0
    duplicates: int = 0
    late: int = 0
    out_of_range: int = 0
    malformed: int = 0
    foreign_pt: int = 0
    stale_ssrc: int = 0
    ssrc_changes: int = 0
    resyncs: int = 0


_Split = tuple[tuple[RedundantBlock, ...], bytes, bool]


@dataclass
class _Slot:
    data: bytes
    origin: Origin
    ts: int | None


def _opens_with_bom(redundant: tuple[RedundantBlock, ...], primary: bytes) -> bool:
    """Whether the first text a packet carries is a BOM, as a session's first text is."""
    for data in (*(block.data for block in redundant), primary):
        if data:
            return data.startswith(BOM_BYTES)
    return False


class RttReceiver:
    """Reassembles one RFC 4103 text stream (RFC 2198 RED when ``red_pt`` is given).

    ``generations`` is the declared redundancy (``a=fmtp:<red> 98/98/98`` gives 2); it is 0
    without RED. Call :meth:`feed` per packet and :meth:`poll` when :meth:`next_deadline`
    passes, or after each feed, to collect :class:`ReceivedBlock` values. ``started`` is
    when the session began (the media answer); ``None`` takes a BOM-first packet for the
    start whenever it comes, which only suits tests. ``marker`` is taken for completeness
    and not relied on (see the module notes).
    """

    def __init__(
        self,
        t140_pt: int,
        red_pt: int | None = None,
        *,
        generations: int = 2,
        hold: float = 1.0,
        max_dropout: int = 3000,
        max_misorder: int = 100,
        started: float | None = None,
        start_window: float = 2.0,
    ) -> None:
        self.t140_pt = t140_pt
        self.red_pt = red_pt
        self.declared_generations = generations if red_pt is not None else 0
        self.hold = hold
        self.max_dropout = max_dropout
        self.max_misorder = max_misorder
        self.started = started
        self.start_window = start_window
        self.stats = ReceiverStats()
        self._out: list[ReceivedBlock] = []
        self._ssrc: int | None = None
        self._retired: dict[int, int] = {}
        self._reset()

    def _reset(self) -> None:
        self._slots: dict[int, _Slot] = {}
        self._arrivals: dict[int, float] = {}
        self._head: int | None = None
        self._start: int | None = None
        self._start_certain = False
        self._first_arrival = 0.0
        self._highest: int | None = None
        self._level: int | None = None
        self._prev: tuple[int, int] | None = None
        self._delivered_ts: int | None = None
        self._recent_ts: deque[tuple[int, int]] = deque(maxlen=RECENT_TIMESTAMPS)
        self._bad_seq: int | None = None
        self._had_primary: deque[int] = deque()

    @property
    def level(self) -> int:
        """The redundancy level in use: learned from the stream, else the declared one."""
        return self.declared_generations if self._level is None else self._level

    # ------------------------------------------------------------------ input
    def feed(
        self,
        seq: int,
        timestamp: int,
        payload: bytes,
        pt: int,
        now: float,
        *,
        ssrc: int = 0,
        marker: bool = False,
    ) -> None:
        """Take one RTP packet's fields; delivered blocks are collected by :meth:`poll`."""
        seq &= SEQ_MASK
        timestamp &= TS_MASK
        split = self._split(payload, pt)
        if ssrc != self._ssrc:
            if self._ssrc is not None:
                if ssrc in self._retired:
                    self._stale(ssrc, seq, split)
                    return
                self._retire()
                self.started = now
            self._ssrc = ssrc
        if split is None:
            self.stats.malformed += 1
            return
        redundant, primary, is_red = split
        ext = self._unwrap(seq)
        if self._out_of_range(ext):
            if self._bad_seq != seq:
                self._bad_seq = (seq + 1) & SEQ_MASK
                self.stats.out_of_range += 1
                return
            self._flush_stream()
            self._mark(ext - len(redundant) - 1)
            self._reset()
            self.stats.resyncs += 1
            ext = self._unwrap(seq)
            self._place(ext, timestamp, redundant, primary, is_red=is_red, now=now)
            self._note_start(ext - len(redundant), certain=True, now=now)
            return
        self._bad_seq = None
        if self._head is not None and ext < self._head:
            if ext in self._had_primary:
                self.stats.duplicates += 1
            else:
                self.stats.late += 1
            return
        if not self._place(ext, timestamp, redundant, primary, is_red=is_red, now=now):
            return
        if self._head is None:
            certain = _opens_with_bom(redundant, primary) and (
                self.started is None or now <= self.started + self.start_window
            )
            self._note_start(ext - len(redundant), certain=certain, now=now)
        else:
            self._deliver()

    def _split(self, payload: bytes, pt: int) -> _Split | None:
        """A packet's redundant blocks, primary and whether it is RED; None if malformed."""
        if self.red_pt is not None and pt == self.red_pt:
            try:
                red = decode_red(payload, self.t140_pt)
            except RedError:
                return None
            return red.redundant, red.primary, True
        if pt == self.t140_pt:
            return (), payload, False
        self.stats.foreign_pt += 1
        return (), b"", False

    def _retire(self) -> None:
        """The SSRC changed: end the old stream and remember how far it got."""
        self._flush_stream()
        assert self._ssrc is not None
        if self._highest is not None:
            self._retired[self._ssrc] = self._highest & SEQ_MASK
            while len(self._retired) > MAX_RETIRED:
                del self._retired[next(iter(self._retired))]
        self._reset()
        self.stats.ssrc_changes += 1

    def _stale(self, ssrc: int, seq: int, split: _Split | None) -> None:
        """A late packet of an SSRC the stream has left (RFC 3550 §8.2).

        What it carries beyond the old stream's end can no longer go in order: each such
        block with text, and each block between that it implies but does not carry, is
        marked lost (RFC 4103 §5.3); earlier packets and duplicates are dropped.
        """
        self.stats.stale_ssrc += 1
        end = self._retired.get(ssrc)
        if end is None:
            return  # the old stream delivered nothing: its start was never known
        ahead = (seq - end) & SEQ_MASK
        if ahead == 0 or ahead >= 0x8000:
            return
        self._retired[ssrc] = seq
        if split is None or ahead > self.max_misorder:
            missing = 1
        else:
            redundant, primary, _ = split
            carried = redundant[-(ahead - 1) :] if ahead > 1 else ()
            blocks = [*(block.data for block in carried), primary]
            missing = ahead - len(blocks) + sum(1 for data in blocks if data)
        for _ in range(missing):
            self.stats.marked += 1
            self._out.append(ReceivedBlock(ssrc, seq, LOSS_MARK_BYTES, Origin.LOST))

    def _unwrap(self, seq: int) -> int:
        if self._highest is None:
            return seq
        delta = (seq - self._highest) & SEQ_MASK
        return self._highest + delta - (0x10000 if delta >= 0x8000 else 0)

    def _out_of_range(self, ext: int) -> bool:
        if self._highest is None:
            return False
        floor = self._head if self._head is not None else self._start
        assert floor is not None
        return ext - self._highest > self.max_dropout or floor - ext > self.max_misorder

    def _place(
        self,
        ext: int,
        ts: int,
        redundant: tuple[RedundantBlock, ...],
        primary: bytes,
        *,
        is_red: bool,
        now: float,
    ) -> bool:
        """Store a packet's blocks; False for a duplicate."""
        slots = self._slots
        slot = slots.get(ext)
        if slot is not None and slot.origin is Origin.PRIMARY:
            self.stats.duplicates += 1
            return False
        slots[ext] = _Slot(primary, Origin.PRIMARY, ts)
        self._arrivals[ext] = now
        floor = self._head
        for back, block in enumerate(reversed(redundant), start=1):
            where = ext - back
            if floor is not None and where < floor:
                break
            known = slots.get(where)
            if known is None or known.origin is Origin.INFERRED:
                slots[where] = _Slot(block.data, Origin.REDUNDANT, (ts - block.offset) & TS_MASK)
        if is_red:
            carried = len(redundant)
            if floor is not None and carried < self.level:
                self._infer_empty(ext, ts, carried, floor)
            if carried < self.level and self._maybe_aged(ext - carried - 1, ts):
                self._prev = None  # a short packet that age may explain tells no level
            else:
                if self._prev == (ext - 1, carried):
                    self._level = carried
                self._prev = (ext, carried)
        if self._highest is None or ext > self._highest:
            self._highest = ext
        return True

    def _maybe_aged(self, ext: int, ts: int) -> bool:
        """Whether block ``ext`` may be older than 16383 ms at ``ts``, so a sender had to
        leave it out (RFC 4103 §4.1): true unless its timestamp is known and recent."""
        slot = self._slots.get(ext)
        known = slot.ts if slot is not None else None
        if known is None:
            known = next((stamp for seq, stamp in self._recent_ts if seq == ext), None)
        return known is None or (ts - known) & TS_MASK > MAX_OFFSET

    def _infer_empty(self, ext: int, ts: int, carried: int, floor: int) -> None:
        """Take left-out levels as empty when they must be older than 16383 ms (§4.1, §5.3)."""
        for back in range(carried + 1, self.level + 1):
            where = ext - back
            if where < floor:
                return
            if where in self._slots:
                continue
            lower = self._ts_below(where, floor)
            if lower is None:
                return
            age = (ts - lower) & TS_MASK
            if age <= MAX_OFFSET or age >= 0x80000000:
                return
            self._slots[where] = _Slot(b"", Origin.INFERRED, None)

    def _ts_below(self, where: int, floor: int) -> int | None:
        """The timestamp of the nearest block before ``where`` whose timestamp is known."""
        for ext in range(where - 1, floor - 1, -1):
            slot = self._slots.get(ext)
            if slot is not None and slot.ts is not None:
                return slot.ts
        return self._delivered_ts

    def _note_start(self, start: int, *, certain: bool, now: float) -> None:
        if self._start is None:
            self._first_arrival = now
            self._start, self._start_certain = start, certain
        elif start < self._start:
            self._start, self._start_certain = start, certain
        elif start == self._start:
            self._start_certain = self._start_certain or certain
        if self._start_certain:
            self._head = self._start
            self._deliver()

    # ----------------------------------------------------------------- output
    def _emit(self, ext: int, slot: _Slot) -> None:
        stats = self.stats
        if slot.origin is Origin.PRIMARY:
            stats.delivered += 1
            had = self._had_primary
            had.append(ext)
            while had[0] < ext - self.max_misorder:
                had.popleft()
        elif slot.origin is Origin.REDUNDANT:
            stats.recovered += 1
        elif slot.origin is Origin.INFERRED:
            stats.inferred += 1
        if slot.ts is not None:
            self._delivered_ts = slot.ts
            self._recent_ts.append((ext, slot.ts))
        assert self._ssrc is not None
        self._out.append(ReceivedBlock(self._ssrc, ext & SEQ_MASK, slot.data, slot.origin))

    def _mark(self, ext: int) -> None:
        self.stats.marked += 1
        assert self._ssrc is not None
        self._out.append(ReceivedBlock(self._ssrc, ext & SEQ_MASK, LOSS_MARK_BYTES, Origin.LOST))

    def _deliver(self) -> None:
        head = self._head
        assert head is not None
        slots = self._slots
        while head in slots:
            self._emit(head, slots.pop(head))
            self._arrivals.pop(head, None)
            head += 1
        self._head = head

    def _expire(self, now: float) -> None:
        if self._head is None:
            if self._start is None or now < self._first_arrival + self.hold - EARLY:
                return
            self._mark(self._start - 1)
            self._head = self._start
        while True:
            self._deliver()
            if not self._arrivals or now < min(self._arrivals.values()) + self.hold - EARLY:
                return
            self._mark(self._head)
            self._head += 1

    def _flush_stream(self) -> None:
        """Deliver everything held, marking what is still missing: the stream has ended."""
        if self._highest is None:
            return
        if self._head is None:
            assert self._start is not None
            if not self._start_certain:
                self._mark(self._start - 1)
            self._head = self._start
        for ext in range(self._head, self._highest + 1):
            slot = self._slots.pop(ext, None)
            if slot is None:
                self._mark(ext)
            else:
                self._emit(ext, slot)
        self._slots.clear()
        self._arrivals.clear()
        self._head = self._highest + 1

    def poll(self, now: float) -> list[ReceivedBlock]:
        """Blocks ready at ``now``, in stream order."""
        self._expire(now)
        out, self._out = self._out, []
        return out

    def flush(self) -> list[ReceivedBlock]:
        """End of the stream (hang-up): everything held, gaps marked."""
        self._flush_stream()
        out, self._out = self._out, []
        return out

    def next_deadline(self) -> float | None:
        """When a wait for a missing or earlier packet ends; ``None`` when nothing waits."""
        if self._head is None:
            return None if self._start is None else self._first_arrival + self.hold
        if self._head not in self._slots and self._arrivals:
            return min(self._arrivals.values()) + self.hold
        return None
