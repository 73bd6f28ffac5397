"""asyncio transports for SIP: UDP, TCP and TLS (RFC 3261 §18), with connection reuse.

The transports own sockets and nothing else: received bytes go to a callback with the
:class:`~appliance.sip.address.Peer` they came from; :meth:`Transports.send` delivers
bytes to a peer. Stream connections are numbered; a response or in-dialog request names
the connection to reuse (§18.2.2). Connections this side opened send RFC 5626 §4.4.1
CRLF keepalives; pings from the other side are answered with a single CRLF.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import itertools
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

from appliance.sip.address import Peer
from appliance.sip.framing import Framed, FramingError, Ping, StreamFramer
from appliance.sip.message import Limits

log = logging.getLogger(__name__)

Receiver = Callable[[bytes, Peer], None]
ErrorHandler = Callable[[Peer], None]
KEEPALIVE_INTERVAL = 30.0
CONNECT_TIMEOUT = 10.0


@dataclass(eq=False)
class Connection:
    """One TCP or TLS connection."""

    id: int
    transport: str
    host: str
    port: int
    writer: asyncio.StreamWriter
    outbound: bool
    framer: StreamFramer
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def closed(self) -> bool:
        return self.writer.is_closing()


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, owner: Transports) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        host, port = str(addr[0]), int(addr[1])
        if data.strip(b"\r\n") == b"":
            return  # a UDP keepalive (CRLF or empty): nothing to parse
        self.owner.receiver(data, Peer("udp", host, port))

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %s", exc)


class Transports:
    """Every SIP socket of the box."""

    def __init__(
        self,
        receiver: Receiver,
        on_error: ErrorHandler,
        *,
        limits: Limits,
        server_tls: ssl.SSLContext | None = None,
        client_tls: ssl.SSLContext | None = None,
    ) -> None:
        self.receiver = receiver
        self.on_error = on_error
        self.limits = limits
        self.server_tls = server_tls
        self.client_tls = client_tls or ssl.create_default_context()
        self.udp: list[asyncio.DatagramTransport] = []
        self.servers: list[asyncio.Server] = []
        self.connections: dict[int, Connection] = {}
        self._ids = itertools.count(1)
        self._connecting: dict[tuple[str, str, int], asyncio.Task[Connection | None]] = {}
        self.bound: dict[str, list[tuple[str, int]]] = {"udp": [], "tcp": [], "tls": []}

    async def listen(self, addresses: list[str], ports: dict[str, int]) -> None:
        """Bind every configured transport; raises OSError if a port is taken."""
        loop = asyncio.get_running_loop()
        hosts: list[str | None] = list(addresses) or [None]
        for host in hosts:
            if ports.get("udp"):
                for family in _families(host):
                    try:
                        sock = _udp_socket(family, host or _any(family), ports["udp"])
                    except OSError:
                        if host is None and family == socket.AF_INET6:
                            log.info("no IPv6 on this host: SIP over UDP on IPv4 only")
                            continue
                        raise
                    transport, _ = await loop.create_datagram_endpoint(
                        lambda: _Datagrams(self), sock=sock
                    )
                    self.udp.append(transport)
                    sockname = transport.get_extra_info("sockname")
                    self.bound["udp"].append((sockname[0], sockname[1]))
            for name in ("tcp", "tls"):
                port = ports.get(name)
                if not port or (name == "tls" and self.server_tls is None):
                    continue
                server = await asyncio.start_server(
                    functools.partial(self._accepted, transport=name), host, port,
                    ssl=self.server_tls if name == "tls" else None, reuse_address=True,
                    limit=self.limits.max_size,
                )  # fmt: skip
                self.servers.append(server)
                for sock in server.sockets:
                    sockname = sock.getsockname()
                    self.bound[name].append((sockname[0], sockname[1]))

    def _udp_for(self, host: str) -> asyncio.DatagramTransport | None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for transport in self.udp:
            sock = transport.get_extra_info("socket")
            if sock is not None and sock.family == family:
                return transport
        return self.udp[0] if self.udp else None

    async def _accepted(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, transport: str
    ) -> None:
        peer = writer.get_extra_info("peername") or ("", 0)
        conn = self._register(transport, str(peer[0]), int(peer[1]), writer, outbound=False)
        await self._read(conn, reader)

    def _register(
        self, transport: str, host: str, port: int, writer: asyncio.StreamWriter, *, outbound: bool
    ) -> Connection:
        conn = Connection(
            next(self._ids), transport, host, port, writer, outbound, StreamFramer(self.limits)
        )
        self.connections[conn.id] = conn
        return conn

    async def _read(self, conn: Connection, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                for event in conn.framer.feed(data):
                    if isinstance(event, Framed):
                        self.receiver(
                            event.data, Peer(conn.transport, conn.host, conn.port, conn.id)
                        )
                    elif isinstance(event, Ping):
                        conn.writer.write(b"\r\n")  # RFC 5626 §4.4.1 pong
                    elif isinstance(event, FramingError):
                        log.info(
                            "closing %s connection from %s: %s",
                            conn.transport,
                            conn.host,
                            event.reason,
                        )
                        return
        except (ConnectionError, OSError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
            log.debug("%s connection %s:%s ended: %s", conn.transport, conn.host, conn.port, exc)
        finally:
            self._drop(conn)

    def _drop(self, conn: Connection) -> None:
        self.connections.pop(conn.id, None)
        for task in conn.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        with contextlib.suppress(Exception):
            conn.writer.close()

    def send(self, data: bytes, peer: Peer) -> None:
        """Deliver ``data`` to ``peer``; failures are reported through ``on_error``."""
        if peer.transport == "udp":
            if not _is_ip(peer.host):
                asyncio.get_running_loop().create_task(self._send_resolved(data, peer))
                return
            transport = self._udp_for(peer.host)
            if transport is None:
                self.on_error(peer)
                return
            transport.sendto(data, (peer.host, peer.port))
            return
        conn = self.connections.get(peer.connection) if peer.connection is not None else None
        if conn is None or conn.closed:
            conn = self._find(peer)
        if conn is not None and not conn.closed:
            conn.writer.write(data)
            return
        asyncio.get_running_loop().create_task(self._connect_and_send(data, peer))

    def _find(self, peer: Peer) -> Connection | None:
        """An open connection to the same transport address (connection reuse, §18.1.1)."""
        for conn in self.connections.values():
            if (conn.transport, conn.host, conn.port) == (
                peer.transport,
                peer.host,
                peer.port,
            ) and not conn.closed:
                return conn
        return None

    async def _send_resolved(self, data: bytes, peer: Peer) -> None:
        host = await self._resolve(peer.host)
        if host is None:
            self.on_error(peer)
            return
        self.send(data, Peer(peer.transport, host, peer.port, peer.connection))

    async def _resolve(self, host: str) -> str | None:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_DGRAM)
        except OSError as exc:
            log.info("cannot resolve %s: %s", host, exc)
            return None
        return str(infos[0][4][0]) if infos else None

    async def _connect_and_send(self, data: bytes, peer: Peer) -> None:
        key = (peer.transport, peer.host, peer.port)
        task = self._connecting.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._connect(peer))
            self._connecting[key] = task
            task.add_done_callback(lambda _: self._connecting.pop(key, None))
        conn = await task
        if conn is None or conn.closed:
            self.on_error(peer)
            return
        conn.writer.write(data)

    async def _connect(self, peer: Peer) -> Connection | None:
        context = self.client_tls if peer.transport == "tls" else None
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    peer.host, peer.port, ssl=context, limit=self.limits.max_size
                ),
                CONNECT_TIMEOUT,
            )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            log.info("cannot connect to %s: %s", peer, exc)
            return None
        conn = self._register(peer.transport, peer.host, peer.port, writer, outbound=True)
        loop = asyncio.get_running_loop()
        conn.tasks.append(loop.create_task(self._read(conn, reader)))
        conn.tasks.append(loop.create_task(self._keepalive(conn)))
        return conn

    async def _keepalive(self, conn: Connection) -> None:
        """RFC 5626 §4.4.1: a CRLFCRLF ping on connections we opened."""
        while not conn.closed:
            await asyncio.sleep(KEEPALIVE_INTERVAL)
            try:
                conn.writer.write(b"\r\n\r\n")
                await conn.writer.drain()
            except (ConnectionError, OSError):
                return

    async def close(self) -> None:
        """Close every socket."""
        for transport in self.udp:
            transport.close()
        for server in self.servers:
            server.close()
        for conn in list(self.connections.values()):
            self._drop(conn)
        for server in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)
        self.udp.clear()
        self.servers.clear()


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _families(host: str | None) -> list[socket.AddressFamily]:
    if host is None:
        return [socket.AF_INET, socket.AF_INET6] if socket.has_ipv6 else [socket.AF_INET]
    return [socket.AF_INET6 if ":" in host else socket.AF_INET]


def _udp_socket(family: socket.AddressFamily, host: str, port: int) -> socket.socket:
    """A bound UDP socket; IPv6 sockets are v6-only so IPv4 can bind the same port."""
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _any(family: socket.AddressFamily) -> str:
    return "::" if family == socket.AF_INET6 else "0.0.0.0"  # noqa: S104 - listen everywhere


def local_address_toward(host: str) -> str | None:
    """The source address the kernel would use toward ``host`` (no packet is sent)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((host, 9))
            return str(probe.getsockname()[0])
    except OSError:
        return None
