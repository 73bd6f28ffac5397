"""The T.140 text model shared by RTP text (RFC 4103) and the T.140 data channel (RFC 8865).

T.140 text is UTF-8; a T140block holds whole characters (RFC 4103 §3.3). The control codes
and their handling follow RFC 9071 §4.2.4, which summarises T.140 §8:

* U+FEFF (BOM) is sent first after session set-up and deleted wherever it is received;
* U+0008 (BS) erases the last character, and one BS erases a whole new line;
* U+2028 (LINE SEPARATOR) is the new line; CR LF means one new line too;
* BEL, INT (ESC a), SGR (CSI Ps m) and SOS ... ST change nothing on the display;
* U+FFFD marks text lost beyond recovery (T.140 Amendment 1, RFC 4103 §5.3).

:class:`T140Writer` turns what a user types into normalised text; :func:`block_cut` and
:func:`encode_block` cut it into T140blocks. :class:`T140Reader` decodes received blocks
into displayable characters plus BS, and :class:`TextBuffer` applies them to give the
visible text.
"""

from __future__ import annotations

import codecs
import re
import unicodedata

BOM = "\ufeff"
BS = "\b"
BEL = "\x07"
ESC = "\x1b"
NEW_LINE = "\u2028"
LOSS_MARK = "\ufffd"
LOSS_MARK_BYTES = LOSS_MARK.encode()
SOS = "\x98"
ST = "\x9c"
CSI = "\x9b"
NEL = "\x85"

MAX_BLOCK_BYTES = 1023
"""A T140block that may be sent again as a redundant block fits RFC 2198's 10-bit length."""

MAX_SGR_PARAMETERS = 32
"""Parameter characters kept for an unterminated SGR before it is given up (T.140 sets no
limit; 32 holds any ISO 6429 colour selection, e.g. ``38;2;255;255;255``)."""

MAX_SOS_BYTES = 256
"""An SOS string is at most 256 bytes before its ST (RFC 9071 §4.2.4)."""

_SURROGATE = re.compile("[\ud800-\udfff]")
_SGR_PARAMETER = frozenset("0123456789;:")


def sanitize(text: str) -> str:
    """Replace lone surrogates (from JSON or a browser) with U+FFFD so the text encodes."""
    return _SURROGATE.sub(LOSS_MARK, text)


def encode_block(text: str) -> bytes:
    """The UTF-8 bytes of one T140block (RFC 4103 §3.3)."""
    return sanitize(text).encode("utf-8")


def _joins(prev: str, char: str) -> bool:
    """True when ``char`` continues the character sequence ending in ``prev``."""
    if prev == "\r" and char == "\n":
        return True
    if prev == "\u200d" or char == "\u200d":  # zero-width joiner sequences
        return True
    code = ord(char)
    if 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF:  # variation selectors
        return True
    if 0x1F3FB <= code <= 0x1F3FF:  # emoji skin-tone modifiers
        return True
    return unicodedata.category(char) in ("Mn", "Mc", "Me")


def block_cut(text: str, max_chars: int, max_bytes: int = MAX_BLOCK_BYTES) -> int:
    """How many leading code points of ``text`` make the next T140block.

    At most ``max_chars`` code points and ``max_bytes`` UTF-8 bytes, and never a cut inside
    a combining sequence unless one sequence alone is longer than the limits (RFC 4103
    §3.3: whole characters MUST, a composite sequence SHOULD stay in one block).
    """
    count = 0
    size = 0
    for char in text:
        if count >= max_chars:
            break
        width = len(char.encode("utf-8", "surrogatepass"))
        if size + width > max_bytes:
            break
        size += width
        count += 1
    if 0 < count < len(text):
        cut = count
        while cut > 0 and _joins(text[cut - 1], text[cut]):
            cut -= 1
        if cut > 0:
            count = cut
    return count


class T140Writer:
    """Normalises what a user types into T.140 text (RFC 9071 §3.2, §4.2.4).

    The first output of a session starts with the BOM. CR LF, a lone CR, a lone LF and NEL
    become U+2028; a CR LF split across two calls still gives one new line.
    """

    def __init__(self, *, bom: bool = True) -> None:
        self._bom_due = bom
        self._after_cr = False

    def start(self) -> str:
        """The text to send right after session set-up: the BOM, once (RFC 9071 §3.2)."""
        if self._bom_due:
            self._bom_due = False
            return BOM
        return ""

    def text(self, typed: str) -> str:
        """Normalised text for ``typed``, which may hold BS and new lines."""
        out: list[str] = [self.start()]
        for char in sanitize(typed):
            if char == "\n" and self._after_cr:
                self._after_cr = False
                continue
            self._after_cr = char == "\r"
            out.append(NEW_LINE if char in ("\r", "\n", NEL) else char)
        return "".join(out)

    def erase(self, count: int = 1) -> str:
        """``count`` backspaces; each erases one character or one new line."""
        self._after_cr = False
        return self.start() + BS * max(count, 0)

    def newline(self) -> str:
        """One new line."""
        self._after_cr = False
        return self.start() + NEW_LINE


class T140Reader:
    """Decodes a T.140 byte stream into displayable text plus BS (RFC 9071 §4.2.4).

    The output holds printable characters, TAB, U+2028 for every new line, U+0008 for every
    erase and U+FFFD for every loss mark. BOMs, BEL, INT, SGR and SOS...ST are removed;
    other C0/C1 controls are skipped (RFC 8865 §5.2). Invalid UTF-8 becomes U+FFFD; the
    decoder keeps a character split across blocks. An SGR or SOS that runs past its cap,
    or is cut by a character it cannot hold, is given up and its characters are shown, so
    nothing a peer sent disappears unseen.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._state = "text"  # text | esc | csi | sos | sos-esc
        self._held: list[str] = []
        self._held_bytes = 0
        self._after_cr = False
        self.bells = 0
        self.controls_skipped = 0

    def feed(self, data: bytes) -> str:
        """Decode one T140block (or any slice of the stream)."""
        return self._run(self._decoder.decode(data))

    def feed_text(self, text: str) -> str:
        """Process already-decoded text (e.g. a data-channel string message)."""
        return self._run(sanitize(text))

    def flush(self) -> str:
        """End of stream: a partial character becomes U+FFFD, open sequences are shown."""
        out = self._run(self._decoder.decode(b"", final=True))
        if self._state != "text":
            held = self._held
            self._reset_sequence()
            out += self._run("".join(held))
        return out

    def _reset_sequence(self) -> None:
        self._state = "text"
        self._held = []
        self._held_bytes = 0

    def _give_up(self, pending: list[str]) -> None:
        """Show the held characters of an unfinished sequence, then go on."""
        held = self._held
        self._reset_sequence()
        pending.extend(reversed(held))

    def _run(self, text: str) -> str:
        out: list[str] = []
        pending = list(reversed(text))
        while pending:
            char = pending.pop()
            state = self._state
            if state == "esc":
                self._state = "text"
                if char == "a":  # INT
                    self.controls_skipped += 1
                elif char == "[":
                    self._state = "csi"
                elif char == "X":
                    self._state = "sos"
                elif char != "\\":
                    self.controls_skipped += 1  # an unknown escape: drop the ESC only
                    pending.append(char)
                continue
            if state == "csi":
                if char == "m":
                    self.controls_skipped += 1
                    self._reset_sequence()
                elif char in _SGR_PARAMETER and len(self._held) < MAX_SGR_PARAMETERS:
                    self._held.append(char)
                else:
                    pending.append(char)
                    self._give_up(pending)
                continue
            if state in ("sos", "sos-esc"):
                if char == ST or (state == "sos-esc" and char == "\\"):
                    self.controls_skipped += 1
                    self._reset_sequence()
                    continue
                if state == "sos-esc":
                    self._state = "sos"
                    self._held.append(ESC)
                    self._held_bytes += 1
                if char == ESC:
                    self._state = "sos-esc"
                    continue
                width = len(char.encode("utf-8"))
                if self._held_bytes + width > MAX_SOS_BYTES:
                    pending.append(char)
                    self._give_up(pending)
                    continue
                self._held.append(char)
                self._held_bytes += width
                continue
            self._text_char(char, out)
        return "".join(out)

    def _text_char(self, char: str, out: list[str]) -> None:
        after_cr = self._after_cr
        if char == BOM:
            return
        self._after_cr = char == "\r"
        if char == "\n" and after_cr:
            return
        if char in ("\r", "\n", NEL, NEW_LINE):
            out.append(NEW_LINE)
        elif char in (BS, "\t"):
            out.append(char)
        elif char == BEL:
            self.bells += 1
        elif char == ESC:
            self._state = "esc"
        elif char == CSI:
            self._state = "csi"
        elif char == SOS:
            self._state = "sos"
        elif ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F:
            self.controls_skipped += 1
        else:
            out.append(char)


class TextBuffer:
    """The visible text after applying T.140 edits (RFC 9071 §4.2.4).

    :meth:`apply` takes :class:`T140Reader` output. A BS erases the last character; a new
    line is one character, so one BS erases it. A BS never erases a loss mark: the mark
    stands for unknown text the BS may have been meant for, and the reader must keep
    seeing that text was lost.
    """

    def __init__(self) -> None:
        self._chars: list[str] = []
        self._reader = T140Reader()
        self.marks = 0

    def feed(self, data: bytes) -> None:
        """Decode and apply one T140block."""
        self.apply(self._reader.feed(data))

    def apply(self, text: str) -> None:
        """Apply decoded text: characters are appended, BS erases."""
        chars = self._chars
        for char in text:
            if char == BS:
                if chars and chars[-1] != LOSS_MARK:
                    chars.pop()
            else:
                if char == LOSS_MARK:
                    self.marks += 1
                chars.append(char)

    @property
    def text(self) -> str:
        """The visible text, new lines as U+2028."""
        return "".join(self._chars)

    def lines(self) -> list[str]:
        """The visible text split at new lines."""
        return self.text.split(NEW_LINE)
