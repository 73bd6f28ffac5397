"""RFC 2198 redundant payloads as used for text (RFC 4103 §4), strict.

A redundant block header is four bytes, ``F=1 | block PT (7) | timestamp offset (14) |
block length (10)``; the final (primary) header is one byte, ``F=0 | block PT``; the data
blocks follow in header order (RFC 2198 §3). For text every block PT is the negotiated
t140 PT, redundant blocks come oldest first and none is older than 16383 ms
(RFC 4103 §4.1-4.2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MAX_OFFSET = 0x3FFF
"""The largest timestamp offset a 14-bit field holds, in ms at the 1000 Hz text clock."""

MAX_LENGTH = 0x3FF
"""The largest block a 10-bit length field holds, in bytes."""


class RedError(ValueError):
    """A RED payload that breaks RFC 2198 §3 or RFC 4103 §4."""


@dataclass(frozen=True)
class RedundantBlock:
    """One earlier T140block: its age relative to the packet's timestamp and its bytes."""

    offset: int
    data: bytes


@dataclass(frozen=True)
class RedPayload:
    """A decoded RED payload: redundant blocks oldest first, then the primary block."""

    redundant: tuple[RedundantBlock, ...]
    primary: bytes


def _check_pt(pt: int) -> None:
    if not 0 <= pt <= 127:
        raise RedError(f"payload type {pt} is not 0-127")


def encode_red(t140_pt: int, redundant: Sequence[RedundantBlock], primary: bytes) -> bytes:
    """The RED payload for ``redundant`` (oldest first) and ``primary`` (RFC 2198 §3)."""
    _check_pt(t140_pt)
    headers = bytearray()
    for block in redundant:
        if not 0 <= block.offset <= MAX_OFFSET:
            raise RedError(f"timestamp offset {block.offset} ms is outside 0-{MAX_OFFSET}")
        if len(block.data) > MAX_LENGTH:
            raise RedError(f"redundant block of {len(block.data)} bytes exceeds {MAX_LENGTH}")
        word = 0x80000000 | t140_pt << 24 | block.offset << 10 | len(block.data)
        headers += word.to_bytes(4, "big")
    headers.append(t140_pt)
    return bytes(headers) + b"".join(block.data for block in redundant) + primary


def decode_red(payload: bytes, t140_pt: int) -> RedPayload:
    """Split a RED payload, rejecting any block PT other than ``t140_pt`` and truncation."""
    _check_pt(t140_pt)
    view = memoryview(payload)
    pos = 0
    heads: list[tuple[int, int]] = []
    while True:
        if pos >= len(view):
            raise RedError("RED payload ends inside its block headers")
        first = view[pos]
        block_pt = first & 0x7F
        if block_pt != t140_pt:
            raise RedError(f"RED block payload type {block_pt} is not the t140 type {t140_pt}")
        if not first & 0x80:
            pos += 1
            break
        if pos + 4 > len(view):
            raise RedError("RED payload ends inside a redundant block header")
        word = int.from_bytes(view[pos : pos + 4], "big")
        heads.append(((word >> 10) & MAX_OFFSET, word & MAX_LENGTH))
        pos += 4
    blocks: list[RedundantBlock] = []
    for offset, length in heads:
        if pos + length > len(view):
            raise RedError(
                f"RED payload ends inside a redundant block ({length} bytes announced,"
                f" {len(view) - pos} left)"
            )
        blocks.append(RedundantBlock(offset, bytes(view[pos : pos + length])))
        pos += length
    return RedPayload(tuple(blocks), bytes(view[pos:]))


def parse_red_fmtp(value: str, t140_pt: int) -> int:
    """Redundant generations declared by ``a=fmtp:<red> 98/98/98`` (RFC 4102 §4, RFC 4103
    §7.2): one entry per block, primary included, every entry the t140 PT."""
    entries = value.strip().split("/")
    try:
        pts = [int(entry) for entry in entries]
    except ValueError:
        raise RedError(f"red fmtp {value!r} is not a list of payload types") from None
    if any(pt != t140_pt for pt in pts):
        raise RedError(f"red fmtp {value!r} names a format other than t140 ({t140_pt})")
    return len(pts) - 1
