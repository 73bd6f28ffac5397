"""A UDP relay that drops the first copy of every distinct SIP message, both ways.

Between a SIP peer and the box it makes every request and response arrive only as a
retransmission, deterministically, so a whole call proves the retransmission rules of
both sides (RFC 3261 §17, §13.3.1.4). Real sockets on loopback.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from dataclasses import dataclass, field

_CSEQ = re.compile(rb"^CSeq:\s*(.+?)\r?$", re.IGNORECASE | re.MULTILINE)
_CALL_ID = re.compile(rb"^(?:Call-ID|i):\s*(.+?)\r?$", re.IGNORECASE | re.MULTILINE)


def message_key(data: bytes) -> bytes:
    """What makes a message distinct: its start line, Call-ID and CSeq."""
    first = data.split(b"\r\n", 1)[0]
    cseq = _CSEQ.search(data)
    call_id = _CALL_ID.search(data)
    return b"|".join([first, call_id.group(1) if call_id else b"", cseq.group(1) if cseq else b""])


class _Side(asyncio.DatagramProtocol):
    def __init__(self, relay: LossyRelay, name: str) -> None:
        self.relay = relay
        self.name = name
        self.transport: asyncio.DatagramTransport | None = None

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.relay.forward(self.name, data, (str(addr[0]), int(addr[1])))


@dataclass
class LossyRelay:
    """Listens on ``port`` for the peer and talks to ``target`` from a second socket."""

    target: tuple[str, int]
    dropped: Counter[bytes] = field(default_factory=Counter)
    forwarded: Counter[bytes] = field(default_factory=Counter)
    peer_address: tuple[str, int] | None = None
    outer: _Side | None = None
    inner: _Side | None = None

    async def start(self, host: str = "127.0.0.1") -> int:
        loop = asyncio.get_running_loop()
        outer_transport, self.outer = await loop.create_datagram_endpoint(
            lambda: _Side(self, "outer"), local_addr=(host, 0)
        )
        inner_transport, self.inner = await loop.create_datagram_endpoint(
            lambda: _Side(self, "inner"), local_addr=(host, 0)
        )
        self.outer.transport = outer_transport
        self.inner.transport = inner_transport
        return int(outer_transport.get_extra_info("sockname")[1])

    def forward(self, side: str, data: bytes, addr: tuple[str, int]) -> None:
        if not data.strip(b"\r\n"):
            return
        key = side.encode() + b"|" + message_key(data)
        if key not in self.dropped:
            self.dropped[key] += 1  # the first copy is lost
            return
        self.forwarded[key] += 1
        assert self.outer is not None and self.inner is not None
        assert self.outer.transport is not None and self.inner.transport is not None
        if side == "outer":
            self.peer_address = addr
            self.inner.transport.sendto(data, self.target)
        elif self.peer_address is not None:
            self.outer.transport.sendto(data, self.peer_address)

    def close(self) -> None:
        for side in (self.outer, self.inner):
            if side is not None and side.transport is not None:
                side.transport.close()

    def kinds(self, side: str) -> set[str]:
        """Start lines (method or status) dropped in one direction."""
        out = set()
        for key in self.dropped:
            parts = key.split(b"|")
            if parts[0] == side.encode():
                first = parts[1].decode(errors="replace")
                out.add(first.split(" ")[1] if first.startswith("SIP/2.0") else first.split(" ")[0])
        return out
