"""The T.140 data channel: dcmap/dcsa (RFC 8864/8865 §4), direction rules, and the gateway
text between RTP and the channel (RFC 8865 §5.4, §6), with the digest's vectors 4 and 7."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.rtt.channel import (
    ChannelSdpError,
    ChannelText,
    DcMap,
    Direction,
    T140Channel,
    answer_direction,
    format_dcmap,
    parse_dcmap,
    t140_attributes,
    t140_channels,
    text_flow,
)
from appliance.rtt.receiver import Origin, ReceivedBlock
from appliance.rtt.t140 import BOM, LOSS_MARK, NEW_LINE
from tests.rtt.vectors import DC_BACKSPACE, DC_HI_AFTER_BOM, DC_LOSS_MARK, DC_NEW_LINE

# ----------------------------------------------------------------- vector 7


def test_vector_7_data_channel_lines() -> None:
    assert t140_attributes(T140Channel(1, "rtt")) == [
        'a=dcmap:1 label="rtt";subprotocol="t140"',
        "a=dcsa:1 fmtp:t140 cps=30",
    ]
    assert t140_channels(
        ['a=dcmap:1 label="rtt";subprotocol="t140"', "a=dcsa:1 fmtp:t140 cps=30"]
    ) == [T140Channel(1, "rtt", 30)]


def test_vector_7_msrp_lines_are_not_t140_channels() -> None:
    lines = [
        'a=dcmap:3 label="chat";subprotocol="msrp"',
        "a=dcsa:3 msrp-cema",
        "a=dcsa:3 setup:active",
        "a=dcsa:3 accept-types:message/cpim text/plain",
        "a=dcsa:3 path:msrps://gw.example.net:9/x1y2;dc",
    ]
    assert t140_channels(lines) == []
    assert parse_dcmap(lines[0]) == DcMap(3, "chat", "msrp")


# -------------------------------------------------------------------- dcmap


@pytest.mark.parametrize(
    "line",
    [
        'a=dcmap:0 label="rtt";subprotocol="t140"',
        'a=dcmap:2 subprotocol="t140";label="a%22b%25c"',
        "a=dcmap:65534",
        'a=dcmap:5 label="x";ordered=true;priority=256;subprotocol="t140"',
    ],
)
def test_dcmap_round_trips(line: str) -> None:
    dcmap = parse_dcmap(line)
    assert parse_dcmap(format_dcmap(dcmap)) == dcmap


def test_dcmap_quoting() -> None:
    dcmap = parse_dcmap('a=dcmap:2 label="a%22b;c%25%c3%a9";subprotocol="t140"')
    assert dcmap.label == 'a"b;c%é'
    assert format_dcmap(dcmap) == 'a=dcmap:2 label="a%22b;c%25%C3%A9";subprotocol="t140"'


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("a=dcmap:65535", "stream id"),
        ("a=dcmap:x", "stream id"),
        ('a=dcmap:1 label="a', "unterminated"),
        ("a=dcmap:1 label=rtt", "not a quoted string"),
        ('a=dcmap:1 label="a%2"', "bad escape"),
        ('a=dcmap:1 label="a";label="b"', "twice"),
        ("a=dcmap:1 max-retr=3;max-time=100", "both"),
        ("a=dcmap:1 max-retr=x", "max-retr"),
        ("a=dcmap:1 label", "no value"),
        ("a=foo:1", "not an a=dcmap"),
    ],
)
def test_bad_dcmap(line: str, why: str) -> None:
    with pytest.raises(ChannelSdpError, match=why):
        parse_dcmap(line)


@pytest.mark.parametrize(
    "option", ["max-retr=0", "max-time=500", "ordered=false"], ids=["retr", "time", "unordered"]
)
def test_t140_channel_must_be_reliable_and_ordered(option: str) -> None:
    """RFC 8865 §4.1: an offer with these MUST be rejected."""
    with pytest.raises(ChannelSdpError, match="t140 channel 1"):
        t140_channels([f'a=dcmap:1 subprotocol="t140";{option}'])


def test_dcsa_rules() -> None:
    lines = [
        'a=dcmap:1 label="rtt";subprotocol="t140"',
        "a=dcsa:1 fmtp:t140 cps=20",
        "a=dcsa:1 recvonly",
        "a=dcsa:1 hlang-send:en es",
        "a=dcsa:1 hlang-recv:en",
        "a=dcsa:1 fmtp:msrp cps=5",  # another format: ignored
        "a=dcsa:1 fmtp:t140 cps=0",  # no valid cps: ignored
        "a=dcsa:7 sendonly",  # no dcmap: discarded
        "a=dcsa:1 x-unknown:1",
    ]
    (channel,) = t140_channels(lines)
    assert channel == T140Channel(1, "rtt", 20, Direction.RECVONLY, ("en", "es"), ("en",))
    assert t140_attributes(channel) == [
        'a=dcmap:1 label="rtt";subprotocol="t140"',
        "a=dcsa:1 fmtp:t140 cps=20",
        "a=dcsa:1 recvonly",
        "a=dcsa:1 hlang-send:en es",
        "a=dcsa:1 hlang-recv:en",
    ]
    assert t140_attributes(T140Channel(0), explicit=True)[-1] == "a=dcsa:0 sendrecv"


def test_two_dcmaps_for_one_stream_are_an_error() -> None:
    with pytest.raises(ChannelSdpError, match="two dcmap"):
        t140_channels(['a=dcmap:1 subprotocol="t140"', 'a=dcmap:1 subprotocol="msrp"'])


# ---------------------------------------------------------------- direction


@pytest.mark.parametrize(
    ("offer", "local", "answer"),
    [
        (Direction.SENDRECV, Direction.SENDRECV, Direction.SENDRECV),
        (Direction.SENDONLY, Direction.SENDRECV, Direction.RECVONLY),
        (Direction.RECVONLY, Direction.SENDRECV, Direction.SENDONLY),
        (Direction.INACTIVE, Direction.SENDRECV, Direction.INACTIVE),
        (Direction.SENDRECV, Direction.RECVONLY, Direction.RECVONLY),
        (Direction.SENDONLY, Direction.SENDONLY, Direction.INACTIVE),
    ],
)
def test_answer_direction(offer: Direction, local: Direction, answer: Direction) -> None:
    """RFC 3264 §6.1 as RFC 8865 §4.2.3 uses it."""
    assert answer_direction(offer, local) == answer


def test_text_flows_only_where_both_ends_agree() -> None:
    """The gateway offers to the phone the direction the browser offered and answers the
    browser with the direction the phone answered (RFC 8865 §6: the same direction on both
    legs); text then flows one way only when that end sends and the other receives."""
    for browser_offer in Direction:
        for phone_wants in Direction:
            phone_answer = answer_direction(browser_offer, phone_wants)
            to_phone, to_browser = text_flow(browser_offer, phone_answer)
            assert to_phone == (browser_offer.sends and phone_wants.receives)
            assert to_browser == (browser_offer.receives and phone_wants.sends)


# ------------------------------------------------------------ gateway text


def block(data: bytes, origin: Origin = Origin.PRIMARY, seq: int = 0) -> ReceivedBlock:
    return ReceivedBlock(1, seq, data, origin)


def test_vector_4_toward_the_channel() -> None:
    """RTP text "Hi", a BS, a new line and an unrecovered block become the digest's bytes."""
    text = ChannelText()
    assert text.from_rtp(block(BOM.encode() + b"Hi")) == []  # waits for the channel
    opened = text.channel_opened()
    assert [m.encode() for m in opened.to_channel] == [DC_HI_AFTER_BOM]
    assert opened.to_rtp == ""
    assert [m.encode() for m in text.from_rtp(block(b"\x08"))] == [DC_BACKSPACE]
    assert [m.encode() for m in text.from_rtp(block("\u2028".encode()))] == [DC_NEW_LINE]
    assert [m.encode() for m in text.from_rtp(block(LOSS_MARK.encode(), Origin.LOST))] == [
        DC_LOSS_MARK
    ]


def test_rtp_keepalive_boms_and_empty_blocks_send_nothing() -> None:
    text = ChannelText()
    text.channel_opened()
    assert text.from_rtp(block(BOM.encode())) == []
    assert text.from_rtp(block(b"")) == []
    assert text.from_rtp(block(b"", Origin.INFERRED)) == []


def test_a_character_split_across_rtp_blocks_is_sent_whole() -> None:
    text = ChannelText()
    text.channel_opened()
    euro = "€".encode()
    assert text.from_rtp(block(b"a" + euro[:1])) == ["a"]
    assert text.from_rtp(block(euro[1:])) == ["€"]


def test_a_loss_after_a_cut_character_marks_both() -> None:
    text = ChannelText()
    text.channel_opened()
    assert text.from_rtp(block(b"a\xe2\x82")) == ["a"]
    assert text.from_rtp(block(LOSS_MARK.encode(), Origin.LOST)) == [LOSS_MARK * 2]


def test_reopen_marks_possible_loss_both_ways() -> None:
    """RFC 8865 §5.4, §6: no retransmission after a re-open, U+FFFD both ways."""
    text = ChannelText()
    first = text.channel_opened()
    assert first.to_channel == (BOM,)
    assert text.from_rtp(block(b"abc")) == ["abc"]
    text.channel_closed()
    assert not text.is_open
    assert text.from_rtp(block(b"def")) == []
    again = text.channel_opened()
    assert again.to_channel == (BOM + LOSS_MARK + "def",)
    assert again.to_rtp == LOSS_MARK


def test_queue_overflow_while_closed_is_marked_once() -> None:
    text = ChannelText(max_queue=5)
    text.from_rtp(block(b"abcd"))
    text.from_rtp(block(b"efgh"))
    text.from_rtp(block(b"ijkl"))
    assert text.dropped == 7
    assert text.channel_opened().to_channel == (BOM + "abcde" + LOSS_MARK,)


def test_from_channel_normalises_for_rtp() -> None:
    text = ChannelText()
    assert text.from_channel(BOM + "hi\r\nthere\r") == f"hi{NEW_LINE}there{NEW_LINE}"
    assert text.from_channel("\nx") == "x"  # the LF of a CR LF split across messages
    assert text.from_channel("a\ud800") == f"a{LOSS_MARK}"
    assert text.from_channel("é".encode()[:1]) == ""
    assert text.from_channel("é".encode()[1:]) == "é"
    assert text.from_channel(b"\xff") == LOSS_MARK


@given(st.lists(st.tuples(st.binary(max_size=20), st.booleans()), max_size=10))
def test_any_rtp_bytes_reach_the_channel_as_text(blocks: list[tuple[bytes, bool]]) -> None:
    text = ChannelText()
    text.channel_opened()
    for data, lost in blocks:
        for message in text.from_rtp(block(data, Origin.LOST if lost else Origin.PRIMARY)):
            assert message
            message.encode("utf-8")


@given(st.lists(st.one_of(st.binary(max_size=20), st.text(max_size=20)), max_size=10))
def test_any_channel_message_becomes_rtp_text(messages: list[bytes | str]) -> None:
    text = ChannelText()
    for message in messages:
        out = text.from_channel(message)
        out.encode("utf-8")
        assert BOM not in out
        assert "\r" not in out
        assert "\n" not in out


def test_unescaped_non_ascii_in_a_label_is_an_error() -> None:
    """quoted-char is SP and VCHAR without %" (RFC 8864 §5.1.1): escape the rest."""
    with pytest.raises(ChannelSdpError, match="unescaped"):
        parse_dcmap('a=dcmap:2 label="é";subprotocol="t140"')
