"""The T.140 text model: writer normalisation, reader control handling, visible text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.rtt.t140 import (
    BOM,
    BS,
    LOSS_MARK,
    MAX_SGR_PARAMETERS,
    MAX_SOS_BYTES,
    NEW_LINE,
    T140Reader,
    T140Writer,
    TextBuffer,
    block_cut,
    encode_block,
    sanitize,
)

# ---------------------------------------------------------------- writer


def test_writer_sends_bom_first_and_once() -> None:
    writer = T140Writer()
    assert writer.start() == BOM
    assert writer.start() == ""
    assert writer.text("hi") == "hi"


def test_writer_puts_bom_before_first_text_when_start_was_not_called() -> None:
    writer = T140Writer()
    assert writer.text("a") == BOM + "a"
    assert writer.text("b") == "b"
    assert T140Writer(bom=False).text("a") == "a"
    assert T140Writer().erase(2) == BOM + BS + BS
    assert T140Writer().newline() == BOM + NEW_LINE


@pytest.mark.parametrize(
    ("typed", "sent"),
    [
        ("a\r\nb", f"a{NEW_LINE}b"),
        ("a\rb", f"a{NEW_LINE}b"),
        ("a\nb", f"a{NEW_LINE}b"),
        ("a\n\nb", f"a{NEW_LINE}{NEW_LINE}b"),
        ("a\r\rb", f"a{NEW_LINE}{NEW_LINE}b"),
        ("a\n\rb", f"a{NEW_LINE}{NEW_LINE}b"),
        ("a\u0085b", f"a{NEW_LINE}b"),
        (f"a{NEW_LINE}b", f"a{NEW_LINE}b"),
        ("x\ud800y", f"x{LOSS_MARK}y"),
    ],
)
def test_writer_normalises_new_lines(typed: str, sent: str) -> None:
    assert T140Writer(bom=False).text(typed) == sent


def test_writer_joins_cr_lf_split_across_calls() -> None:
    writer = T140Writer(bom=False)
    assert writer.text("a\r") == f"a{NEW_LINE}"
    assert writer.text("\nb") == "b"
    assert writer.text("\n") == NEW_LINE


def test_sanitize_and_encode() -> None:
    assert sanitize("a\udfffb") == f"a{LOSS_MARK}b"
    assert encode_block("é\ud83d") == "é\ufffd".encode()


# ------------------------------------------------------------- block cuts


def test_block_cut_counts_code_points_and_bytes() -> None:
    assert block_cut("abcdef", 4) == 4
    assert block_cut("abc", 10) == 3
    assert block_cut("ééé", 10, max_bytes=5) == 2
    assert block_cut("€€", 10, max_bytes=5) == 1
    assert block_cut("abc", 0) == 0


def test_block_cut_keeps_combining_sequences_whole() -> None:
    text = "ae\u0301z"  # e + combining acute
    assert block_cut(text, 2) == 1
    assert block_cut(text, 3) == 3
    assert block_cut("a\U0001f44d\U0001f3fdz", 2) == 1  # thumbs up + skin tone
    assert block_cut("a\U0001f468\u200d\U0001f692z", 3) == 1  # ZWJ sequence
    assert block_cut("a\u2764\ufe0fz", 2) == 1
    assert block_cut("a\r\nb", 2) == 1


def test_block_cut_splits_an_overlong_sequence_rather_than_stall() -> None:
    text = "e" + "\u0301" * 10
    assert block_cut(text, 4) == 4


@given(st.text(max_size=60), st.integers(1, 40), st.integers(4, 60))
def test_block_cut_yields_whole_characters_within_limits(text: str, chars: int, size: int) -> None:
    text = sanitize(text)
    count = block_cut(text, chars, size)
    assert count <= chars
    assert len(text[:count].encode()) <= size
    if text:
        assert count >= 1  # every code point fits in 4 bytes


# ---------------------------------------------------------------- reader


def test_reader_strips_bom_everywhere() -> None:
    reader = T140Reader()
    assert reader.feed("\ufeffHi\ufeff there".encode()) == "Hi there"


@pytest.mark.parametrize(
    ("stream", "shown"),
    [
        (b"a\r\nb", f"a{NEW_LINE}b"),
        (b"a\rb", f"a{NEW_LINE}b"),
        (b"a\nb", f"a{NEW_LINE}b"),
        ("a\u2028b".encode(), f"a{NEW_LINE}b"),
        (b"ab\x08c", f"ab{BS}c"),
        (b"a\x07b", "ab"),
        (b"a\x1bab", "ab"),
        ("a\u009b1;31mb".encode(), "ab"),
        (b"a\x1b[0mb", "ab"),
        ("a\u0098secret\u009cb".encode(), "ab"),
        (b"a\x1bXsecret\x1b\\b", "ab"),
        ("a\u009cb".encode(), "ab"),
        (b"a\x00\x01\x7fb", "ab"),
        (b"a\tb", "a\tb"),
        ("a\ufffdb".encode(), f"a{LOSS_MARK}b"),
        (b"a\xffb", f"a{LOSS_MARK}b"),
        (b"a\xc3b", f"a{LOSS_MARK}b"),
    ],
)
def test_reader_controls(stream: bytes, shown: str) -> None:
    assert T140Reader().feed(stream) == shown


def test_reader_counts_bells_and_skipped_controls() -> None:
    reader = T140Reader()
    reader.feed(b"\x07\x07\x1ba")
    assert reader.bells == 2
    assert reader.controls_skipped == 1


def test_reader_keeps_a_character_split_across_blocks() -> None:
    reader = T140Reader()
    data = "é€😀".encode()
    out = "".join(reader.feed(data[i : i + 1]) for i in range(len(data)))
    assert out == "é€😀"


def test_reader_cr_lf_split_across_blocks_is_one_new_line() -> None:
    reader = T140Reader()
    assert reader.feed(b"a\r") == f"a{NEW_LINE}"
    assert reader.feed(b"\nb") == "b"


def test_reader_flush_marks_a_cut_character() -> None:
    reader = T140Reader()
    assert reader.feed(b"a\xe2\x82") == "a"
    assert reader.flush() == LOSS_MARK


def test_reader_loss_mark_after_a_cut_character() -> None:
    reader = T140Reader()
    assert reader.feed(b"a\xe2\x82") == "a"
    assert reader.feed(LOSS_MARK.encode()) == LOSS_MARK * 2


def test_sgr_and_sos_span_blocks() -> None:
    reader = T140Reader()
    assert reader.feed("x\u009b3".encode()) == "x"
    assert reader.feed(b"1my") == "y"
    assert reader.feed("\u0098ab".encode()) == ""
    assert reader.feed("c\u009cz".encode()) == "z"


def test_unterminated_sgr_is_given_up_and_shown() -> None:
    reader = T140Reader()
    assert reader.feed("\u009b12 Main St".encode()) == "12 Main St"
    reader = T140Reader()
    long = "1" * (MAX_SGR_PARAMETERS + 5)
    assert reader.feed(("\u009b" + long + "m").encode()) == long + "m"


def test_unterminated_sos_is_capped_and_shown() -> None:
    reader = T140Reader()
    body = "x" * (MAX_SOS_BYTES + 10)
    assert reader.feed(("\u0098" + body).encode()) == body
    reader = T140Reader()
    assert reader.feed(("\u0098" + "y" * MAX_SOS_BYTES + "\u009c!").encode()) == "!"


def test_flush_shows_an_open_sequence() -> None:
    reader = T140Reader()
    assert reader.feed("\u0098help".encode()) == ""
    assert reader.flush() == "help"
    assert reader.feed(b"ok") == "ok"


def test_feed_text_sanitises() -> None:
    assert T140Reader().feed_text("a\ud800\r\nb") == f"a{LOSS_MARK}{NEW_LINE}b"


@given(st.lists(st.binary(max_size=30), max_size=8))
def test_reader_never_raises_and_output_is_displayable(blocks: list[bytes]) -> None:
    reader = T140Reader()
    out = "".join(reader.feed(block) for block in blocks) + reader.flush()
    assert BOM not in out
    for char in out:
        assert char in (BS, "\t", NEW_LINE) or not (ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F)


@given(st.text(max_size=80))
def test_reader_shows_all_plain_text(text: str) -> None:
    """Text without controls passes through unchanged (only new lines are normalised)."""
    text = "".join(c for c in sanitize(text) if ord(c) >= 0x20 and not 0x7F <= ord(c) <= 0x9F)
    text = text.replace(BOM, "")
    assert T140Reader().feed(text.encode()) == text


# ----------------------------------------------------------- visible text


def test_backspace_erases_one_character_and_one_new_line() -> None:
    buffer = TextBuffer()
    buffer.feed("\ufeffHi".encode())
    buffer.feed(b"\x08")
    assert buffer.text == "H"
    buffer.feed(b"ey\r\nthere")
    assert buffer.lines() == ["Hey", "there"]
    buffer.feed(b"\x08" * 6)
    assert buffer.text == "Hey"
    buffer.feed(b"\x08" * 10)
    assert buffer.text == ""


def test_backspace_does_not_erase_a_loss_mark() -> None:
    buffer = TextBuffer()
    buffer.apply(f"ab{LOSS_MARK}cd")
    buffer.apply(BS * 5)
    assert buffer.text == f"ab{LOSS_MARK}"
    assert buffer.marks == 1


def test_data_channel_vector_as_seen_by_a_reader() -> None:
    """Vector 4: BOM + "Hi", BS, new line, loss mark."""
    buffer = TextBuffer()
    for block in (b"\xef\xbb\xbfHi", b"\x08", b"\xe2\x80\xa8", b"\xef\xbf\xbd"):
        buffer.feed(block)
    assert buffer.text == f"H{NEW_LINE}{LOSS_MARK}"
