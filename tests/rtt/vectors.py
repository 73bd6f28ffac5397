"""Test vectors from the project's standards digest (standards.md, "Test vectors" 1-4),
transcribed byte for byte. RTP SSRC 0x11223344, RED PT 100, T.140 PT 98."""

from __future__ import annotations

SSRC = 0x11223344
RED_PT = 100
T140_PT = 98


def hexbytes(text: str) -> bytes:
    """Bytes from the digest's spaced hex, ``|`` separators allowed."""
    return bytes.fromhex(text.replace("|", " "))


# 1. RED, 2 generations: "H" at t=1000, "EL" at t=1300, "P" at t=1600; seq 102, ts 1600.
RED_SEQ_102 = hexbytes(
    "80 64 00 66 00 00 06 40 11 22 33 44 | E2 09 60 01 | E2 04 B0 02 | 62 | 48 | 45 4C | 50"
)

# 2. Idle tail: seq 103 (empty primary), seq 104; then nothing, and the next text has M=1.
TAIL_SEQ_103 = hexbytes("80 64 00 67 00 00 07 6C 11 22 33 44 E2 09 60 02 E2 04 B0 01 62 45 4C 50")
TAIL_SEQ_104 = hexbytes("80 64 00 68 00 00 08 98 11 22 33 44 E2 09 60 01 E2 04 B0 00 62 50")
MARKER_SECOND_BYTE = 0xE4

# 4. T.140 over the data channel (PPID 51).
DC_HI_AFTER_BOM = hexbytes("EF BB BF 48 69")
DC_BACKSPACE = hexbytes("08")
DC_NEW_LINE = hexbytes("E2 80 A8")
DC_LOSS_MARK = hexbytes("EF BF BD")
