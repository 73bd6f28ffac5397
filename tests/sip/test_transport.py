"""Transports over real loopback sockets: CRLF keepalive, framing errors, TLS, defaults."""

from __future__ import annotations

import asyncio
import socket
import ssl
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from appliance.config.schema import RegistrarConfig, SipAccount, SipConfig
from appliance.runtime.health import Health
from appliance.runtime.metrics import Metrics
from appliance.sip.events import BindingsChanged, SipEvent
from appliance.sip.message import Request, Response, parse_message
from appliance.sip.service import SipService
from appliance.web.tls import ensure_certificate
from tests.sip.scripted import Phone
from tests.sip.test_sipp import free_udp_tcp_port


@pytest.fixture
async def open_box() -> AsyncIterator[SipService]:
    """A box that asks no credentials (so raw requests get real answers), with TLS."""
    port = free_udp_tcp_port()
    tls_port = free_udp_tcp_port()
    with tempfile.TemporaryDirectory() as state:
        files = ensure_certificate("", "", Path(state), "box")
        config = SipConfig(
            addresses=["127.0.0.1"],
            udp_port=port,
            tcp_port=port,
            tls_port=tls_port,
            registrar=RegistrarConfig(require_auth=False),
        )
        service = SipService(
            config,
            [],
            box_name="box",
            state_dir=Path(state),
            tls=files,
            health=Health(),
            metrics=Metrics(),
        )
        await service.start()
        service.cert = files.certificate  # type: ignore[attr-defined]
        try:
            yield service
        finally:
            await service.stop()


def options(transport: str, port: int, branch: str = "z9hG4bKopt1") -> bytes:
    return (
        f"OPTIONS sip:box@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} 127.0.0.1:9;branch={branch}\r\n"
        "From: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:box@127.0.0.1>\r\nCall-ID: o1\r\n"
        "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()


async def read_response(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)


async def test_tcp_keepalive_and_options_on_one_connection(open_box: SipService) -> None:
    port = open_box.config.tcp_port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"\r\n\r\n")  # RFC 5626 §3.5.1 ping
    assert await asyncio.wait_for(reader.readexactly(2), 5) == b"\r\n"
    writer.write(options("TCP", port))
    head = await read_response(reader)
    assert head.startswith(b"SIP/2.0 200 OK\r\n")
    assert b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, MESSAGE, INFO, UPDATE" in head
    writer.close()


async def test_tcp_framing_error_closes_the_connection(open_box: SipService) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", open_box.config.tcp_port)
    writer.write(b"OPTIONS sip:box SIP/2.0\r\nVia: SIP/2.0/TCP x;branch=z9hG4bKq\r\n\r\n")
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, no Content-Length
    writer.close()
    # The service is still serving.
    reader, writer = await asyncio.open_connection("127.0.0.1", open_box.config.tcp_port)
    writer.write(options("TCP", open_box.config.tcp_port, "z9hG4bKafter"))
    assert (await read_response(reader)).startswith(b"SIP/2.0 200")
    writer.close()


async def test_tls(open_box: SipService) -> None:
    context = ssl.create_default_context(cafile=str(open_box.cert))  # type: ignore[attr-defined]
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", open_box.config.tls_port, ssl=context, server_hostname="localhost"
    )
    writer.write(options("TLS", open_box.config.tls_port))
    assert (await read_response(reader)).startswith(b"SIP/2.0 200")
    writer.close()


async def test_unclaimed_incoming_call_gets_480(open_box: SipService) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    local = sock.getsockname()[1]
    invite = (
        f"INVITE sip:alice@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bKinv;rport\r\n"
        "From: <sip:p@127.0.0.1>;tag=9\r\nTo: <sip:alice@127.0.0.1>\r\nCall-ID: i1\r\n"
        f"CSeq: 1 INVITE\r\nContact: <sip:p@127.0.0.1:{local}>\r\nMax-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    sock.sendto(invite, ("127.0.0.1", open_box.config.udp_port))  # a datagram: never blocks
    statuses = []
    for _ in range(2):
        data = await asyncio.wait_for(loop.sock_recv(sock, 65536), 5)
        statuses.append(data.split(b"\r\n")[0])
    sock.close()
    assert statuses == [b"SIP/2.0 100 Trying", b"SIP/2.0 480 Temporarily Unavailable"]


async def test_calls_reach_a_tcp_phone_on_its_registration_connection() -> None:
    """A phone registers over TCP; the box's INVITE comes back on that connection."""
    port = free_udp_tcp_port()
    config = SipConfig(
        addresses=["127.0.0.1"],
        udp_port=port,
        tcp_port=port,
        tls_port=0,
        accounts=[SipAccount(user="1001", password="secret-1001")],
    )
    with tempfile.TemporaryDirectory() as state:
        service = SipService(
            config,
            [],
            box_name="box",
            state_dir=Path(state),
            tls=None,
            health=Health(),
            metrics=Metrics(),
        )
        events: list[SipEvent] = []
        service.subscribe(events.append)
        await service.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            local_port = writer.get_extra_info("sockname")[1]
            phone = Phone(host="127.0.0.1", port=local_port, transport="tcp")
            first = phone.request(
                "REGISTER", f"sip:127.0.0.1:{port}", to="<sip:1001@127.0.0.1>", call_id="tcp-reg"
            )
            writer.write(first)
            challenge = parse_message(await read_message(reader), stream=True)
            assert isinstance(challenge, Response) and challenge.status == 401
            writer.write(phone.authorize(first, challenge))
            ok = parse_message(await read_message(reader), stream=True)
            assert isinstance(ok, Response) and ok.status == 200
            connections = set(service.transports.connections)  # type: ignore[union-attr]

            leg = service.invite("1001", from_user="alice", sdp=b"v=0\r\n")
            invite = parse_message(await read_message(reader), stream=True)
            assert isinstance(invite, Request) and invite.method == "INVITE"
            assert invite.top_via.transport == "TCP"
            writer.write(phone.answer(invite, 200, body=b"v=0\r\n"))
            ack = parse_message(await read_message(reader), stream=True)
            assert isinstance(ack, Request) and ack.method == "ACK"
            service.hangup(leg)
            bye = parse_message(await read_message(reader), stream=True)
            assert isinstance(bye, Request) and bye.method == "BYE"
            writer.write(phone.answer(bye, 200))
            assert set(service.transports.connections) == connections  # type: ignore[union-attr]
            writer.close()
        finally:
            await service.stop()
    assert [type(e).__name__ for e in events if not isinstance(e, BindingsChanged)] == [
        "CallAnswered",
        "CallEnded",
    ]


async def read_message(reader: asyncio.StreamReader) -> bytes:
    """One whole message from a stream (header block plus Content-Length body)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() in (b"content-length", b"l"):
            length = int(value)
    return head + (await reader.readexactly(length) if length else b"")
