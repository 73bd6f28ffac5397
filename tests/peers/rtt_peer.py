"""A phone's real-time text end for tests: RFC 4103 with RFC 2198 redundancy over UDP.

Written from the RFCs on its own (it shares no code with the box's cores), so the two
check each other. It sends T.140 in RED packets (a BOM first, then text at most every
300 ms, two redundant generations, an idle tail of empty blocks, marker after idle),
can lose and delay chosen packets on the way out, and reassembles what it receives by
sequence number, filling gaps from redundancy and marking the rest with U+FFFD.
"""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import Callable
from typing import cast

BOM = "\ufeff"
MARK = "\ufffd"


def red_payload(t140_pt: int, ts: int, history: list[tuple[int, bytes]], primary: bytes) -> bytes:
    """RFC 2198 §3: 4-byte headers for the redundant blocks (oldest first), the 1-byte
    primary header, then the blocks."""
    headers = b"".join(
        struct.pack("!I", 0x80000000 | t140_pt << 24 | (ts - old_ts) << 10 | len(data))
        for old_ts, data in history
    )
    return headers + bytes([t140_pt]) + b"".join(d for _, d in history) + primary


def split_red(payload: bytes) -> tuple[list[bytes], bytes]:
    """The redundant blocks (oldest first) and the primary of a RED payload."""
    lengths = []
    pos = 0
    while payload[pos] & 0x80:
        (word,) = struct.unpack_from("!I", payload, pos)
        lengths.append(word & 0x3FF)
        pos += 4
    pos += 1
    blocks = []
    for length in lengths:
        blocks.append(payload[pos : pos + length])
        pos += length
    return blocks, payload[pos:]


class RttPeer(asyncio.DatagramProtocol):
    """A UDP socket on loopback speaking RFC 4103 text."""

    def __init__(self, t140_pt: int = 98, red_pt: int | None = 100, generations: int = 2) -> None:
        """``red_pt`` None: plain T.140 (RFC 4103 §3), no redundancy."""
        self.t140_pt, self.red_pt = t140_pt, red_pt
        self.generations = generations if red_pt is not None else 0
        self.transport: asyncio.DatagramTransport | None = None
        self.remote: tuple[str, int] | None = None
        self.ssrc = int.from_bytes(os.urandom(4), "big")
        self.sequence = int.from_bytes(os.urandom(2), "big")
        self.sent = 0
        self.drop: Callable[[int], bool] = lambda index: False
        self.delay: Callable[[int], float] = lambda index: 0.0
        self._queue = ""
        self._history: list[tuple[int, bytes]] = []
        self._tail = 0
        self._task: asyncio.Task[None] | None = None
        self._idle = True
        self.blocks: dict[int, bytes] = {}  # extended sequence number -> T140block
        self.first: int | None = None
        self.highest: int | None = None
        self.packets_received = 0
        self.markers = 0
        self.sources: set[tuple[str, int]] = set()

    @classmethod
    async def open(
        cls, t140_pt: int = 98, red_pt: int | None = 100, generations: int = 2
    ) -> RttPeer:
        loop = asyncio.get_running_loop()
        _, peer = await loop.create_datagram_endpoint(
            lambda: cls(t140_pt, red_pt, generations), local_addr=("127.0.0.1", 0)
        )
        return peer

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    # ----- receiving ------------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if len(data) < 12 or data[0] >> 6 != 2 or 64 <= data[1] & 0x7F <= 95:
            return  # not RTP (RTCP, STUN)
        self.sources.add((str(addr[0]), int(addr[1])))
        pt = data[1] & 0x7F
        (seq,) = struct.unpack_from("!H", data, 2)
        payload = data[12 + 4 * (data[0] & 0x0F) :]
        self.packets_received += 1
        self.markers += bool(data[1] & 0x80)
        if self.highest is None:
            ext = seq
        else:
            ext = self.highest + ((seq - self.highest + 0x8000) & 0xFFFF) - 0x8000
        if self.red_pt is not None and pt == self.red_pt:
            redundant, primary = split_red(payload)
        elif pt == self.t140_pt:
            redundant, primary = [], payload
        else:
            return
        self.blocks[ext] = primary
        for back, block in enumerate(reversed(redundant), start=1):
            self.blocks.setdefault(ext - back, block)
        start = ext - len(redundant)
        self.first = start if self.first is None else min(self.first, start)
        self.highest = ext if self.highest is None else max(self.highest, ext)

    def text(self) -> str:
        """Everything received, in order, BOMs removed, one U+FFFD per missing block."""
        if self.first is None or self.highest is None:
            return ""
        out = []
        for ext in range(self.first, self.highest + 1):
            block = self.blocks.get(ext)
            out.append(MARK if block is None else block.decode("utf-8", "replace"))
        return "".join(out).replace(BOM, "")

    def visible(self) -> str:
        """The text as a person sees it: BS erases, CR LF / LF / U+2028 are new lines."""
        chars: list[str] = []
        text = self.text().replace("\r\n", "\n").replace("\u2028", "\n")
        for char in text:
            if char == "\b":
                if chars:
                    chars.pop()
            else:
                chars.append(char)
        return "".join(chars)

    # ----- sending ----------------------------------------------------------------------------

    def start(self, remote: tuple[str, int]) -> None:
        """Send to ``remote``: a BOM at once, then whatever :meth:`type` queues."""
        self.remote = remote
        self._task = asyncio.get_running_loop().create_task(self._run())
        self.type(BOM)

    def type(self, text: str) -> None:
        """Queue text (already T.140: U+2028 new lines, U+0008 erasures)."""
        self._queue += text

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        while True:
            if self._queue or self._tail:
                self._send_packet(int((loop.time() - start) * 1000) + 1)
                await asyncio.sleep(0.3)
            else:
                self._idle = True
                await asyncio.sleep(0.01)

    def _send_packet(self, ts: int) -> None:
        primary, self._queue = self._queue.encode(), ""
        marker = self._idle
        self._idle = False
        history = self._history[-self.generations :] if self.generations else []
        if self.red_pt is None:
            pt, payload = self.t140_pt, primary
        else:
            pt, payload = self.red_pt, red_payload(self.t140_pt, ts, history, primary)
        self._history.append((ts, primary))
        self._tail = max(self.generations, 1) if primary else max(self._tail - 1, 0)
        self.sequence = (self.sequence + 1) & 0xFFFF
        header = struct.pack(
            "!BBHII", 0x80, (0x80 if marker else 0) | pt, self.sequence, ts, self.ssrc
        )
        index = self.sent
        self.sent += 1
        if self.drop(index) or self.transport is None or self.remote is None:
            return
        delay = self.delay(index)
        transport, remote, data = self.transport, self.remote, header + payload
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, transport.sendto, data, remote)
        else:
            transport.sendto(data, remote)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self.transport is not None:
            self.transport.close()
