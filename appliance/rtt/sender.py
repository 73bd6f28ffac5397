"""The RFC 4103 sender: when to send, what each packet carries, sans-I/O.

The sender decides payloads, payload types, timestamps (1000 Hz) and the marker bit. It does
not own sequence numbers or the SSRC: the RTP layer numbers packets in the order
:meth:`RttSender.poll` returns them, one number per payload, with no gaps (RFC 4103 §4.2:
the receiver infers which earlier packet a redundant block repeats by counting back from
the sequence number). :class:`appliance.rtt.stream.RtpTextStream` does exactly that.

Rules, with their sources:

* after an idle period new text goes at once, then at most once per buffering interval,
  300 ms recommended and 500 ms at most (RFC 4103 §5.1);
* each packet repeats the previous ``generations`` primaries, oldest first, leaving out
  only those older than 16383 ms (RFC 4103 §4.1-4.2, §5.2);
* after the last text, empty primaries follow at every interval until that text has gone
  out in every generation, then sending stops; with no redundancy one empty primary still
  marks the start of the idle period (RFC 4103 §5.2);
* the marker bit is set on the first packet of the session and the first after an idle
  period, and only there (RFC 4103 §3.5, §5.2);
* consecutive timestamps differ (RFC 4103 §3.5);
* the peer's ``cps`` is a mean over any 10 s; text beyond it waits, it is never dropped
  (RFC 4103 §6);
* a BOM keeps an idle session alive when the caller asks for it (RFC 9071 §3.3, §4.2.4).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from appliance.rtt.red import MAX_OFFSET, RedundantBlock, encode_red
from appliance.rtt.t140 import BOM, LOSS_MARK, MAX_BLOCK_BYTES, block_cut, sanitize

CPS_WINDOW = 10.0
"""``cps`` is a mean over any 10-second interval (RFC 4103 §6)."""

MAX_INTERVAL = 0.5
"""T.140 buffers text for at most 500 ms (RFC 4103 §5.1)."""

MAX_GENERATIONS = 3

TS_MASK = 0xFFFFFFFF

EARLY = 1e-6
"""A poll this close before a deadline counts as on time: event loops may wake a timer a
clock tick early, and sums of float seconds drift by a few ulps."""


@dataclass(frozen=True)
class RtpPayloadOut:
    """One packet's worth for the RTP layer.

    ``timestamp`` is already reduced to 32 bits; ``primary`` is the new T140block the
    payload carries (the whole payload without RED, the last block with it).
    """

    pt: int
    marker: bool
    timestamp: int
    payload: bytes
    primary: bytes


class RttSender:
    """Turns written text into RFC 4103 payloads (with RFC 2198 redundancy when ``red_pt``
    is given, plain ``text/t140`` otherwise).

    ``generations`` is the number of redundant generations (0-3; RFC 4103 §4 recommends 2);
    it is 0 without RED. ``cps`` is the peer's declared limit (``None``: none).
    ``keepalive`` is the idle time after which a BOM is sent (``None``: never).
    ``timestamp_base`` is added to ``now`` in ms (RFC 3550 §5.1 wants a random start).
    ``max_pending`` bounds the text waiting for ``cps``: beyond it text is replaced by one
    U+FFFD (counted in ``overflowed``) so the loss is visible rather than silent.
    """

    def __init__(
        self,
        t140_pt: int,
        red_pt: int | None = None,
        *,
        generations: int = 2,
        interval: float = 0.3,
        cps: int | None = 30,
        keepalive: float | None = None,
        timestamp_base: int = 0,
        max_pending: int = 100_000,
    ) -> None:
        if not 0 <= t140_pt <= 127 or (red_pt is not None and not 0 <= red_pt <= 127):
            raise ValueError("payload types are 0-127")
        if red_pt == t140_pt:
            raise ValueError("red and t140 need different payload types")
        if not 0 <= generations <= MAX_GENERATIONS:
            raise ValueError(f"generations must be 0-{MAX_GENERATIONS}")
        if not 0 < interval <= MAX_INTERVAL:
            raise ValueError(f"interval must be in (0, {MAX_INTERVAL}] s (RFC 4103 §5.1)")
        if cps is not None and cps < 1:
            raise ValueError("cps must be at least 1")
        if keepalive is not None and keepalive <= interval:
            raise ValueError("keepalive must be longer than the interval")
        self.t140_pt = t140_pt
        self.red_pt = red_pt
        self.generations = generations if red_pt is not None else 0
        self.interval = interval
        self.cps = cps
        self.keepalive = keepalive
        self._ts_base = timestamp_base
        self._max_pending = max_pending
        self._pending = ""
        self._pending_since = 0.0
        self._history: deque[tuple[int, bytes]] = deque(maxlen=max(self.generations, 1))
        self._tail_left = 0
        self._last_send: float | None = None
        self._last_ts: int | None = None
        self._window: deque[tuple[float, int]] = deque()
        self._window_total = 0
        self.packets_sent = 0
        self.characters_sent = 0
        self.overflowed = 0

    # ----------------------------------------------------------------- input
    def write(self, text: str, now: float) -> None:
        """Queue text (normalised T.140, see :class:`appliance.rtt.t140.T140Writer`)."""
        text = sanitize(text)
        if not text:
            return
        if not self._pending:
            self._pending_since = now
        room = self._max_pending - len(self._pending)
        if len(text) > room:
            if room >= 1:
                self.overflowed += len(text) - (room - 1)
                text = text[: room - 1] + LOSS_MARK
            else:
                self.overflowed += len(text)
                text = ""
                if not self._pending.endswith(LOSS_MARK):
                    self.overflowed += 1
                    self._pending = self._pending[:-1] + LOSS_MARK
        self._pending += text

    def set_cps(self, cps: int | None) -> None:
        """Apply a renegotiated peer limit (RFC 8865 §4.2.1 allows changing it)."""
        if cps is not None and cps < 1:
            raise ValueError("cps must be at least 1")
        self.cps = cps

    @property
    def pending(self) -> int:
        """Characters written but not yet sent."""
        return len(self._pending)

    @property
    def idle(self) -> bool:
        """True when nothing is queued and the idle tail is over (RFC 4103 §5.2)."""
        return not self._pending and self._tail_left == 0

    # ---------------------------------------------------------------- timers
    def _budget(self, now: float) -> int:
        if self.cps is None:
            return len(self._pending)
        window = self._window
        while window and window[0][0] < now - CPS_WINDOW:
            self._window_total -= window.popleft()[1]
        return self.cps * int(CPS_WINDOW) - self._window_total

    def _budget_free_at(self) -> float:
        """When the cps window next has room for one more character."""
        if self.cps is None:
            return self._pending_since
        excess = self._window_total - (self.cps * int(CPS_WINDOW) - 1)
        if excess <= 0:
            return self._pending_since
        freed = 0
        for sent_at, count in self._window:
            freed += count
            if freed >= excess:
                return sent_at + CPS_WINDOW + 1e-3
        return self._pending_since  # pragma: no cover - the window holds the excess

    def next_deadline(self) -> float | None:
        """When :meth:`poll` has something to do next; ``None`` when nothing is planned."""
        if self._tail_left > 0:
            assert self._last_send is not None
            return self._last_send + self.interval
        if self._pending:
            return self._budget_free_at()
        if self.keepalive is not None and self._last_send is not None:
            return self._last_send + self.keepalive
        return None

    def poll(self, now: float) -> list[RtpPayloadOut]:
        """The payloads due at ``now`` (at most one)."""
        if (
            self.keepalive is not None
            and self._last_send is not None
            and self.idle
            and now >= self._last_send + self.keepalive - EARLY
        ):
            self.write(BOM, now)
        active = self._tail_left > 0
        if active:
            assert self._last_send is not None
            if now < self._last_send + self.interval - EARLY:
                return []
        elif not self._pending:
            return []
        count = min(self._budget(now), len(self._pending))
        count = block_cut(self._pending, count, MAX_BLOCK_BYTES) if count > 0 else 0
        if count == 0 and not active:
            return []
        text, self._pending = self._pending[:count], self._pending[count:]
        if self._pending and count:
            self._pending_since = now
        return [self._emit(now, text, marker=not active)]

    # ---------------------------------------------------------------- output
    def _timestamp(self, now: float) -> int:
        ts = self._ts_base + round(now * 1000)
        if self._last_ts is not None and ts <= self._last_ts:
            ts = self._last_ts + 1
        self._last_ts = ts
        return ts

    def _emit(self, now: float, text: str, *, marker: bool) -> RtpPayloadOut:
        ts = self._timestamp(now)
        block = text.encode("utf-8")
        if self.red_pt is None:
            pt, payload = self.t140_pt, block
        else:
            redundant = [
                RedundantBlock(ts - old_ts, data)
                for old_ts, data in self._history
                if self.generations and ts - old_ts <= MAX_OFFSET
            ]
            pt, payload = self.red_pt, encode_red(self.t140_pt, redundant, block)
        self._history.append((ts, block))
        if text:
            self._tail_left = max(self.generations, 1)
            self.characters_sent += len(text)
            if self.cps is not None:
                self._window.append((now, len(text)))
                self._window_total += len(text)
        else:
            self._tail_left -= 1
        self._last_send = now
        self.packets_sent += 1
        return RtpPayloadOut(pt, marker, ts & TS_MASK, payload, block)
