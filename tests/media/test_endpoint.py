"""The phone-side RTP endpoint on real UDP sockets (127.0.0.1): port pairs (RFC 3550 §11),
symmetric-RTP latching (RFC 4961), RTCP beside RTP (RFC 5761), SDES-SRTP end to end, and
the silence timer the call's media timeout reads."""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import cast

import pytest

from appliance.media.endpoint import PortAllocator, RtpEndpoint
from appliance.media.rtcp import (
    Goodbye,
    ReceiverReport,
    RtcpPacket,
    SenderInfo,
    SenderReport,
    SourceDescription,
    parse_compound,
    serialize,
)
from appliance.media.rtp import RtpPacket
from appliance.media.sdes import SrtpContext, new_crypto
from tests.waiting import until

HOST = "127.0.0.1"
RANGE = (41000, 42999)


class Phone(asyncio.DatagramProtocol):
    """A phone's media socket: sends what the test says, queues what it receives."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.inbox: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.inbox.put_nowait((data, (str(addr[0]), int(addr[1]))))

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def send(self, data: bytes, port: int) -> None:
        assert self.transport is not None
        self.transport.sendto(data, (HOST, port))

    async def receive(self, timeout: float = 2.0) -> tuple[bytes, tuple[str, int]]:
        return await asyncio.wait_for(self.inbox.get(), timeout)

    async def nothing(self, wait: float = 0.2) -> None:
        await asyncio.sleep(wait)
        assert self.inbox.empty(), f"unexpected datagram {self.inbox.get_nowait()!r}"

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def phone(host: str = HOST) -> Phone:
    _, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
        Phone, local_addr=(host, 0)
    )
    return protocol


class Collected:
    def __init__(self) -> None:
        self.rtp: list[RtpPacket] = []
        self.rtcp: list[bytes] = []


@pytest.fixture
async def opened() -> AsyncIterator[tuple[RtpEndpoint, Collected]]:
    got = Collected()
    endpoint = RtpEndpoint(got.rtp.append, got.rtcp.append)
    await endpoint.open(HOST, PortAllocator(*RANGE))
    yield endpoint, got
    endpoint.close()


@pytest.fixture
async def handset() -> AsyncIterator[Phone]:
    p = await phone()
    yield p
    p.close()


def rtp(seq: int, ssrc: int = 0x5EED, payload: bytes = b"\xd5" * 160) -> RtpPacket:
    return RtpPacket(0, seq, seq * 160, ssrc, payload=payload)


RR = bytes.fromhex("80c90001 00005eed")  # an empty receiver report (RFC 3550 §6.4.2)


@contextmanager
def bound(port: int) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((HOST, port))
        yield sock
    finally:
        sock.close()


def port_is_free(port: int) -> bool:
    try:
        with bound(port):
            return True
    except OSError as exc:
        assert exc.errno == errno.EADDRINUSE
        return False


# ----- ports -------------------------------------------------------------------------------


def test_candidates_are_even_ports_with_room_for_rtcp() -> None:
    allocator = PortAllocator(20001, 20009)  # an odd low end rounds up
    assert sorted(allocator.candidates()) == [20002, 20004, 20006, 20008]
    # The top even port is left out when its RTCP port would be beyond the range.
    assert sorted(PortAllocator(20000, 20008).candidates()) == [20000, 20002, 20004, 20006]
    allocator.in_use.add(20004)
    assert sorted(allocator.candidates()) == [20002, 20006, 20008]
    assert PortAllocator(20000, 20000).candidates() == []


def test_candidates_start_at_random_places() -> None:
    allocator = PortAllocator(30000, 30999)
    firsts = {allocator.candidates()[0] for _ in range(20)}
    assert len(firsts) > 1


async def test_open_binds_an_even_odd_pair_and_close_frees_it() -> None:
    allocator = PortAllocator(*RANGE)
    endpoint = RtpEndpoint(lambda _: None)
    port = await endpoint.open(HOST, allocator)
    assert port % 2 == 0 and RANGE[0] <= port < RANGE[1]
    assert allocator.in_use == {port}
    assert not port_is_free(port) and not port_is_free(port + 1)
    endpoint.close()
    endpoint.close()  # idempotent
    assert allocator.in_use == set()
    await asyncio.sleep(0)  # asyncio closes datagram sockets on the next loop turn
    assert port_is_free(port) and port_is_free(port + 1)


async def test_exhausted_range_is_a_clear_error() -> None:
    allocator = PortAllocator(43000, 43003)  # two pairs
    first, second = RtpEndpoint(lambda _: None), RtpEndpoint(lambda _: None)
    await first.open(HOST, allocator)
    await second.open(HOST, allocator)
    try:
        with pytest.raises(OSError, match="no free RTP port pair"):
            await RtpEndpoint(lambda _: None).open(HOST, allocator)
    finally:
        first.close()
        second.close()
    assert allocator.in_use == set()


async def test_ports_taken_by_others_are_skipped() -> None:
    """A busy RTP port, or a free RTP port whose RTCP neighbour is busy, is passed over,
    and the half-opened RTP socket is released."""
    with bound(43100), bound(43103):
        allocator = PortAllocator(43100, 43105)  # pairs 43100, 43102, 43104
        endpoint = RtpEndpoint(lambda _: None)
        try:
            assert await endpoint.open(HOST, allocator) == 43104
        finally:
            endpoint.close()
        await asyncio.sleep(0)
        assert port_is_free(43102)


# ----- latching (RFC 4961) ----------------------------------------------------------------


async def test_nothing_is_accepted_before_the_remote_is_known(
    opened: tuple[RtpEndpoint, Collected], handset: Phone
) -> None:
    endpoint, got = opened
    handset.send(rtp(1).serialize(), endpoint.port)
    await until(lambda: endpoint.stats.foreign == 1, 2, "the packet counted as foreign")
    assert got.rtp == []


async def test_latches_to_where_the_phone_really_sends_from(
    opened: tuple[RtpEndpoint, Collected], handset: Phone
) -> None:
    """The SDP says one port, the packets come from another (a port-changing firewall):
    the box answers to where they come from."""
    endpoint, got = opened
    endpoint.set_remote(HOST, 9)  # discard port: nothing would ever arrive there
    handset.send(rtp(1).serialize(), endpoint.port)
    await until(lambda: len(got.rtp) == 1, 2, "the first packet")
    assert got.rtp[0] == rtp(1)
    assert endpoint.remote == (HOST, handset.port)
    endpoint.send(rtp(77, ssrc=1))
    data, source = await handset.receive()
    assert RtpPacket.parse(data) == rtp(77, ssrc=1)
    assert source == (HOST, endpoint.port)  # symmetric: from the port we receive on
    assert endpoint.stats.sent == 1 and endpoint.stats.received == 1


async def test_once_latched_other_ports_of_the_same_host_are_ignored(
    opened: tuple[RtpEndpoint, Collected], handset: Phone
) -> None:
    """After latching, only the latched source is media (as strict-RTP relays do): a second
    stream from another port would otherwise be mixed into the call."""
    endpoint, got = opened
    endpoint.set_remote(HOST, handset.port)
    handset.send(rtp(1).serialize(), endpoint.port)
    await until(lambda: len(got.rtp) == 1, 2, "the first packet")
    intruder = await phone()
    try:
        intruder.send(rtp(2, ssrc=0xBAD).serialize(), endpoint.port)
        await until(lambda: endpoint.stats.foreign == 1, 2, "the intruder counted")
    finally:
        intruder.close()
    handset.send(rtp(3).serialize(), endpoint.port)
    await until(lambda: len(got.rtp) == 2, 2, "the phone's next packet")
    assert [p.ssrc for p in got.rtp] == [0x5EED, 0x5EED]
    assert endpoint.remote == (HOST, handset.port)


async def test_other_hosts_are_never_accepted(
    opened: tuple[RtpEndpoint, Collected], handset: Phone
) -> None:
    endpoint, got = opened
    endpoint.set_remote(HOST, handset.port)
    stranger = await phone("127.0.0.2")
    try:
        stranger.send(rtp(1).serialize(), endpoint.port)
        stranger.send(RR, endpoint.port + 1)
        await until(lambda: endpoint.stats.foreign == 2, 2, "both counted as foreign")
    finally:
        stranger.close()
    assert got.rtp == [] and got.rtcp == []
    assert endpoint.remote == (HOST, handset.port)


async def test_a_re_invite_with_the_same_address_keeps_the_latch(
    opened: tuple[RtpEndpoint, Collected], handset: Phone
) -> None:
    """Hold and resume repeat the SDP address; the phone still sends from the latched
    port, so the box must keep answering there."""
    endpoint, got = opened
    endpoint.set_remote(HOST, 9)
    handset.send(rtp(1).serialize(), endpoint.port)
    await until(lambda: len(got.rtp) == 1, 2, "the first packet")
    endpoint.set_remote(HOST, 9)  # the resume re-INVITE says the same
    endpoint.send(rtp(2, ssrc=1))
    data, _ = await handset.receive()
    assert RtpPacket.parse(data).sequence == 2


async def test_a_re_invite_with_a_new_port_latches_again(
    opened: tuple[RtpEndpoint, Collected], handset: Phone
) -> None:
    endpoint, got = opened
    endpoint.set_remote(HOST, handset.port)
    handset.send(rtp(1).serialize(), endpoint.port)
    await until(lambda: len(got.rtp) == 1, 2, "the first packet")
    moved = await phone()
    try:
        endpoint.set_remote(HOST, moved.port)  # the phone moved its stream
        assert endpoint.remote == (HOST, moved.port)
        moved.send(rtp(100, ssrc=0x2222).serialize(), endpoint.port)
        await until(lambda: len(got.rtp) == 2, 2, "the moved stream")
        handset.send(rtp(2).serialize(), endpoint.port)  # the old port is no longer media
        await until(lambda: endpoint.stats.foreign == 1, 2, "the old port ignored")
        endpoint.send(rtp(5, ssrc=1))
        data, _ = await moved.receive()
        assert RtpPacket.parse(data).sequence == 5
    finally:
        moved.close()


async def test_stragglers_from_the_old_port_do_not_keep_the_latch(
    opened: tuple[RtpEndpoint, Collected], handset: Phone
) -> None:
    """After a re-INVITE moves the stream, the phone's packets from the old port can still
    arrive first; the new signalled port takes over as soon as it is heard from."""
    endpoint, got = opened
    endpoint.set_remote(HOST, handset.port)
    handset.send(rtp(1).serialize(), endpoint.port)
    await until(lambda: len(got.rtp) == 1, 2, "the first packet")
    moved = await phone()
    try:
        endpoint.set_remote(HOST, moved.port)
        handset.send(rtp(2).serialize(), endpoint.port)  # still in flight
        await until(lambda: len(got.rtp) == 2, 2, "the straggler")
        moved.send(rtp(3).serialize(), endpoint.port)
        await until(lambda: len(got.rtp) == 3, 2, "the new port")
        assert endpoint.remote == (HOST, moved.port)
        handset.send(rtp(4).serialize(), endpoint.port)
        await until(lambda: endpoint.stats.foreign == 1, 2, "the old port ignored now")
    finally:
        moved.close()


async def test_null_address_and_port_zero_send_nothing(
    opened: tuple[RtpEndpoint, Collected], handset: Phone
) -> None:
    endpoint, _ = opened
    payload = b"\xd5" * 160
    endpoint.send(rtp(1))  # no remote yet
    endpoint.send_relayed((0, 1, 160, False), 0xB0B0, payload, time.monotonic())
    endpoint.set_remote("0.0.0.0", handset.port)  # RFC 2543-style hold
    endpoint.send(rtp(2))
    endpoint.send_relayed((0, 2, 320, False), 0xB0B0, payload, time.monotonic())
    endpoint.set_remote(HOST, 0)
    endpoint.send(rtp(3))
    endpoint.send_relayed((0, 3, 480, False), 0xB0B0, payload, time.monotonic())
    await handset.nothing()
    assert endpoint.stats.sent == 0
    endpoint.set_remote(HOST, handset.port)  # resumed: relayed audio flows again
    endpoint.send_relayed((0, 4, 640, False), 0xB0B0, payload, time.monotonic())
    data, _ = await handset.receive()
    assert RtpPacket.parse(data) == RtpPacket(0, 4, 640, 0xB0B0, False, payload)


async def test_relayed_audio_the_socket_refuses_is_dropped_and_other_rtp_waits(
    opened: tuple[RtpEndpoint, Collected], handset: Phone
) -> None:
    """A full send buffer (injected here: loopback never fills one) drops relayed audio,
    which would only arrive late, and counts it; a packet given to ``send`` (text, RFC 4733
    events) goes through the transport, which queues what the socket cannot take."""
    endpoint, _ = opened
    endpoint.set_remote(HOST, handset.port)
    endpoint.send_relayed((0, 7, 1120, False), 0xB0B0, b"\xd5" * 160, time.monotonic())
    data, _ = await handset.receive()
    assert RtpPacket.parse(data) == RtpPacket(0, 7, 1120, 0xB0B0, False, b"\xd5" * 160)

    def full(data: bytes, address: tuple[str, int]) -> int:
        raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")

    endpoint._rtp_sendto = full
    endpoint.send_relayed((0, 8, 1280, False), 0xB0B0, b"\xd5" * 160, time.monotonic())
    assert endpoint.stats.send_failures == 1 and endpoint.stats.sent == 1
    endpoint.send(rtp(9))
    data, _ = await handset.receive()
    assert RtpPacket.parse(data).sequence == 9
    await handset.nothing()
    assert endpoint.stats.sent == 2


async def test_the_tapped_payload_type_arrives_as_fields_once_latched(
    opened: tuple[RtpEndpoint, Collected], handset: Phone
) -> None:
    endpoint, got = opened
    tapped: list[tuple[int, int, int, bool, bytes, float]] = []
    endpoint.tap(0, lambda *fields: tapped.append(fields))
    endpoint.set_remote(HOST, handset.port)
    handset.send(rtp(1).serialize(), endpoint.port)  # latches: the general path
    await until(lambda: len(got.rtp) == 1, 2, "the first packet")
    marked = RtpPacket(0, 2, 320, 0x5EED, True, b"\x01" * 160)
    sent_at = time.monotonic()
    handset.send(marked.serialize(), endpoint.port)
    handset.send(
        RtpPacket(101, 3, 320, 0x5EED, payload=b"\x05\x0a\x00\xa0").serialize(), endpoint.port
    )
    await until(lambda: len(tapped) == 1 and len(got.rtp) == 2, 2, "audio and an event")
    sequence, timestamp, ssrc, marker, payload, arrival = tapped[0]
    assert (sequence, timestamp, ssrc, marker, payload) == (2, 320, 0x5EED, True, b"\x01" * 160)
    assert sent_at <= arrival <= endpoint.last_received  # the time it arrived
    assert got.rtp[1].payload_type == 101  # not the tapped type: a packet
    assert endpoint.stats.received == 3
    assert endpoint.rtcp is None  # reception statistics begin with start_rtcp
    endpoint.tap(-1, lambda *fields: None)
    handset.send(rtp(4).serialize(), endpoint.port)
    await until(lambda: len(got.rtp) == 3, 2, "audio as a packet again")


# ----- bad bytes ----------------------------------------------------------------------------


async def test_malformed_packets_are_counted_and_the_endpoint_goes_on(
    opened: tuple[RtpEndpoint, Collected], handset: Phone
) -> None:
    endpoint, got = opened
    endpoint.set_remote(HOST, handset.port)
    for junk in (b"\x80", b"\x40" + bytes(20), bytes.fromhex("83000001") + bytes(8)):
        handset.send(junk, endpoint.port)
    handset.send(rtp(1).serialize(), endpoint.port)
    await until(lambda: len(got.rtp) == 1, 2, "the good packet after the junk")
    assert endpoint.stats.malformed == 3


async def test_stun_keepalives_are_not_media(
    opened: tuple[RtpEndpoint, Collected], handset: Phone
) -> None:
    """liblinphone sends empty STUN binding requests to the RTP and RTCP ports."""
    endpoint, got = opened
    endpoint.set_remote(HOST, handset.port)
    stun = bytes.fromhex("0001 0000 2112a442") + bytes(12)  # RFC 5389 §6 binding request
    handset.send(stun, endpoint.port)
    handset.send(stun, endpoint.port + 1)
    handset.send(rtp(1).serialize(), endpoint.port)
    await until(lambda: len(got.rtp) == 1, 2, "the packet after STUN")
    await until(lambda: endpoint.stats.rtcp_malformed == 1, 2, "STUN on the RTCP port refused")
    assert got.rtcp == []
    assert endpoint.stats.rtcp_received == 0
    assert endpoint.stats.malformed == 1


async def test_a_handler_error_does_not_close_the_socket(handset: Phone) -> None:
    calls: list[RtpPacket] = []

    def handler(packet: RtpPacket) -> None:
        calls.append(packet)
        if len(calls) == 1:
            raise RuntimeError("relay bug")

    endpoint = RtpEndpoint(handler)
    await endpoint.open(HOST, PortAllocator(*RANGE))
    try:
        endpoint.set_remote(HOST, handset.port)
        handset.send(rtp(1).serialize(), endpoint.port)
        handset.send(rtp(2).serialize(), endpoint.port)
        await until(lambda: len(calls) == 2, 2, "the second packet")
    finally:
        endpoint.close()


# ----- RTCP beside RTP ------------------------------------------------------------------------


async def test_rtcp_on_the_rtcp_port_is_not_media(
    opened: tuple[RtpEndpoint, Collected], handset: Phone
) -> None:
    endpoint, got = opened
    endpoint.set_remote(HOST, handset.port)
    assert endpoint.rtcp_silent_for() is None, "no RTCP yet: hold liveness is unknown"
    silent = endpoint.silent_for()
    handset.send(RR, endpoint.port + 1)
    await until(lambda: got.rtcp == [RR], 2, "the report")
    assert got.rtp == [] and endpoint.stats.received == 0
    quiet = endpoint.rtcp_silent_for()
    assert quiet is not None and 0 <= quiet < 2
    assert endpoint.silent_for() >= silent, "RTCP is not audio for the silence timer"


async def test_multiplexed_rtcp_is_told_apart_from_rtp(
    opened: tuple[RtpEndpoint, Collected], handset: Phone
) -> None:
    """RFC 5761 §4: packet types 200-204 on the RTP port are RTCP."""
    endpoint, got = opened
    endpoint.set_remote(HOST, handset.port, rtcp_mux=True)
    handset.send(RR, endpoint.port)
    handset.send(rtp(1).serialize(), endpoint.port)
    await until(lambda: len(got.rtp) == 1 and len(got.rtcp) == 1, 2, "one of each")
    endpoint.send_rtcp(RR)
    data, source = await handset.receive()
    assert data == RR and source == (HOST, endpoint.port)  # muxed: from and to RTP ports


async def test_rtcp_goes_to_port_plus_one_or_the_signalled_port(
    opened: tuple[RtpEndpoint, Collected],
) -> None:
    endpoint, _ = opened
    rtp_side, rtcp_side, other = await phone(), await phone(), await phone()
    try:
        endpoint.set_remote(HOST, rtp_side.port, rtcp_port=rtcp_side.port)  # RFC 3605 a=rtcp
        endpoint.send_rtcp(RR)
        data, source = await rtcp_side.receive()
        assert data == RR and source == (HOST, endpoint.port + 1)
        # The phone's reports come from elsewhere: answer where they come from.
        other.send(RR, endpoint.port + 1)
        await until(lambda: endpoint.stats.rtcp_received == 1, 2, "the phone's report")
        endpoint.send_rtcp(RR)
        assert (await other.receive())[0] == RR
    finally:
        for p in (rtp_side, rtcp_side, other):
            p.close()


# ----- SRTP between two endpoints ----------------------------------------------------------


async def test_srtp_end_to_end_between_two_endpoints() -> None:
    a_got, b_got = Collected(), Collected()
    a = RtpEndpoint(a_got.rtp.append, a_got.rtcp.append)
    b = RtpEndpoint(b_got.rtp.append, b_got.rtcp.append)
    allocator = PortAllocator(*RANGE)
    await a.open(HOST, allocator)
    await b.open(HOST, allocator)
    try:
        a_key, b_key = (
            new_crypto(1, "AES_CM_128_HMAC_SHA1_80"),
            new_crypto(1, "AES_CM_128_HMAC_SHA1_80"),
        )
        a.srtp, b.srtp = SrtpContext(a_key, b_key), SrtpContext(b_key, a_key)
        a.set_remote(HOST, b.port)
        b.set_remote(HOST, a.port)
        sent = [rtp(i, ssrc=0xA, payload=bytes([i]) * 160) for i in range(1, 6)]
        for packet in sent:
            a.send(packet)
        await until(lambda: len(b_got.rtp) == 5, 2, "five packets decrypted")
        assert b_got.rtp == sent
        b.send(rtp(9, ssrc=0xB))
        await until(lambda: len(a_got.rtp) == 1, 2, "the answer")
        a.send_rtcp(RR)
        await until(lambda: b_got.rtcp == [RR], 2, "SRTCP decrypted")
        assert a.stats.srtp_failures == b.stats.srtp_failures == 0
    finally:
        a.close()
        b.close()


async def test_srtp_endpoint_drops_clear_and_forged_packets(
    opened: tuple[RtpEndpoint, Collected], handset: Phone
) -> None:
    endpoint, got = opened
    ours, theirs = (
        new_crypto(1, "AES_CM_128_HMAC_SHA1_80"),
        new_crypto(1, "AES_CM_128_HMAC_SHA1_80"),
    )
    endpoint.srtp = SrtpContext(ours, theirs)
    phone_srtp = SrtpContext(theirs, ours)
    endpoint.set_remote(HOST, handset.port)
    handset.send(rtp(1).serialize(), endpoint.port)  # clear RTP
    forged = bytearray(phone_srtp.protect(rtp(2).serialize()))
    forged[-1] ^= 1
    handset.send(bytes(forged), endpoint.port)
    good = phone_srtp.protect(rtp(3).serialize())
    handset.send(good, endpoint.port)
    handset.send(good, endpoint.port)  # replayed
    handset.send(RR, endpoint.port + 1)  # clear RTCP
    await until(lambda: endpoint.stats.srtp_failures == 4, 2, "four refused")
    assert got.rtp == [rtp(3)] and got.rtcp == []
    endpoint.send(rtp(4, ssrc=1))
    data, _ = await handset.receive()
    assert data != rtp(4, ssrc=1).serialize()
    assert RtpPacket.parse(phone_srtp.unprotect(data)) == rtp(4, ssrc=1)


# ----- the silence timer ----------------------------------------------------------------------


async def test_silent_for_counts_from_the_last_valid_rtp(
    opened: tuple[RtpEndpoint, Collected], handset: Phone
) -> None:
    endpoint, got = opened
    endpoint.set_remote(HOST, handset.port, rtcp_mux=True)
    await asyncio.sleep(0.3)
    assert endpoint.silent_for() >= 0.3
    handset.send(rtp(1).serialize(), endpoint.port)
    await until(lambda: len(got.rtp) == 1, 2, "a packet")
    assert endpoint.silent_for() < 0.2
    await asyncio.sleep(0.3)
    # Neither RTCP, junk, STUN nor a stranger is audio.
    handset.send(RR, endpoint.port)
    handset.send(b"\x00\x01\x00\x00" + bytes(16), endpoint.port)
    handset.send(b"\x80", endpoint.port)
    stranger = await phone("127.0.0.2")
    stranger.send(rtp(5).serialize(), endpoint.port)
    stranger.close()
    await until(
        lambda: (
            len(got.rtcp) == 1 and endpoint.stats.foreign == 1 and endpoint.stats.malformed == 2
        ),
        2,
        "the non-audio datagrams",
    )
    assert endpoint.silent_for() >= 0.3
    handset.send(rtp(2).serialize(), endpoint.port)
    await until(lambda: len(got.rtp) == 2, 2, "audio again")
    assert endpoint.silent_for() < 0.2


# ----- the box's own RTCP toward the phone (RFC 3550 §6) ----------------------------------


async def reports(p: Phone, count: int, srtp: SrtpContext | None = None) -> list[list[RtcpPacket]]:
    out = []
    for _ in range(count):
        data, _ = await p.receive()
        out.append(parse_compound(srtp.unprotect_rtcp(data) if srtp else data))
    return out


async def test_reports_reach_the_phone_on_its_rtcp_port() -> None:
    got = Collected()
    endpoint = RtpEndpoint(got.rtp.append, rtcp_interval=0.2)
    await endpoint.open(HOST, PortAllocator(*RANGE))
    rtp_side, rtcp_side = await phone(), await phone()
    try:
        endpoint.set_remote(HOST, rtp_side.port, rtcp_port=rtcp_side.port)
        endpoint.start_rtcp(8000, 0xB0B0)
        first, second = await reports(rtcp_side, 2)
        assert first[0] == ReceiverReport(0xB0B0)  # nothing sent, nothing heard yet
        assert isinstance(first[1], SourceDescription) and first[1].cname(0xB0B0)
        assert isinstance(second[1], SourceDescription)
        assert first[1].cname(0xB0B0) == second[1].cname(0xB0B0)  # one CNAME per session
        # The phone talks, the box sends: a sender report with a block about the phone.
        for i in range(5):
            rtp_side.send(rtp(200 + i).serialize(), endpoint.port)
        await until(lambda: len(got.rtp) == 5, 2, "the phone's audio")
        endpoint.send(RtpPacket(0, 1, 160, 0xB0B0, payload=b"\xff" * 160))
        (latest,) = await reports(rtcp_side, 1)
        sr = latest[0]
        assert isinstance(sr, SenderReport) and sr.ssrc == 0xB0B0
        assert (sr.info.packet_count, sr.info.octet_count) == (1, 160)
        assert [(b.ssrc, b.highest_sequence, b.cumulative_lost) for b in sr.reports] == [
            (0x5EED, 204, 0)
        ]
        assert endpoint.stats.rtcp_sent >= 3
        assert rtp_side.inbox.qsize() == 1  # only the RTP packet went to the RTP port
    finally:
        endpoint.close()
        rtp_side.close()
        rtcp_side.close()


async def test_multiplexed_reports_go_to_the_rtp_port_and_bye_on_close(handset: Phone) -> None:
    endpoint = RtpEndpoint(lambda _: None, rtcp_interval=0.2)
    await endpoint.open(HOST, PortAllocator(*RANGE))
    closed = False
    try:
        endpoint.set_remote(HOST, handset.port, rtcp_mux=True)
        endpoint.start_rtcp(48000, 0xB0B0)
        (report,) = await reports(handset, 1)
        assert isinstance(report[0], ReceiverReport)
        endpoint.close()
        closed = True
        (last,) = await reports(handset, 1)
        assert last[-1] == Goodbye((0xB0B0,))
        await handset.nothing(0.4)  # and nothing after the BYE
    finally:
        if not closed:
            endpoint.close()


async def test_no_bye_when_the_box_never_sent(handset: Phone) -> None:
    endpoint = RtpEndpoint(lambda _: None, rtcp_interval=60.0)
    await endpoint.open(HOST, PortAllocator(*RANGE))
    endpoint.set_remote(HOST, handset.port, rtcp_mux=True)
    endpoint.start_rtcp(8000, 0xB0B0)
    endpoint.close()
    await handset.nothing()


async def test_reports_are_srtcp_protected_and_answer_the_phones_sr(handset: Phone) -> None:
    ours, theirs = (
        new_crypto(1, "AES_CM_128_HMAC_SHA1_80"),
        new_crypto(1, "AES_CM_128_HMAC_SHA1_80"),
    )
    phone_srtp = SrtpContext(theirs, ours)
    endpoint = RtpEndpoint(lambda _: None, rtcp_interval=0.3)
    await endpoint.open(HOST, PortAllocator(*RANGE))
    try:
        endpoint.srtp = SrtpContext(ours, theirs)
        endpoint.set_remote(HOST, handset.port, rtcp_mux=True)
        endpoint.start_rtcp(8000, 0xB0B0)
        handset.send(phone_srtp.protect(rtp(1).serialize()), endpoint.port)
        phone_sr = serialize(SenderReport(0x5EED, SenderInfo(0x0000_1234_5678_0000, 160, 1, 160)))
        handset.send(phone_srtp.protect_rtcp(phone_sr), endpoint.port)
        await until(lambda: endpoint.stats.rtcp_received == 1, 2, "the phone's SR")
        (report,) = await reports(handset, 1, phone_srtp)
        assert isinstance(report[0], ReceiverReport)
        assert report[0].reports[0].ssrc == 0x5EED
        assert report[0].reports[0].lsr == 0x12345678
        assert report[0].reports[0].dlsr > 0
    finally:
        endpoint.close()


async def test_invalid_rtcp_from_the_phone_is_counted_not_passed_on(
    opened: tuple[RtpEndpoint, Collected], handset: Phone
) -> None:
    endpoint, got = opened
    endpoint.set_remote(HOST, handset.port)
    endpoint.start_rtcp(8000, 0xB0B0)
    handset.send(
        bytes.fromhex("81ca0003 b0b0b0b0 0103626f 78000000"), endpoint.port + 1
    )  # SDES first
    handset.send(bytes.fromhex("80c90005 00005eed"), endpoint.port + 1)  # length beyond
    handset.send(RR, endpoint.port + 1)
    await until(lambda: endpoint.stats.rtcp_received == 1, 2, "the valid report")
    assert endpoint.stats.rtcp_malformed == 2
    assert got.rtcp == [RR]
