"""Audio relay benchmark: N bridged G.711 calls through the box beside a bare UDP forwarder.

Every part is real and runs in its own process on loopback:

* **the box**: ``python -m appliance run`` with N operators. Its CPU time over the
  measuring window is read from the kernel: the process's CPU-time clock (all threads, to
  the nanosecond), the runtime /proc/PID/stat reports as utime + stime in clock ticks.
* **the browsers**: one load-generator process (``relay.py browsers``) acting as N
  call-takers' browsers with aiortc. Each logs in over HTTPS (``POST /login``), opens the
  WebSocket API (``/api/v1/ws`` with the box's Origin) and places a ``call`` with its own
  RTCPeerConnection offer (PCMU only, DTLS-SRTP): the messages the page sends. A browser
  sends one 160-byte PCMU payload every 20 ms through aiortc's encoded path (its track
  returns ``av.Packet``; ``Encoder.pack`` passes the bytes through) and reads the box's
  packets through the receiver tap the box itself uses
  (:func:`appliance.webrtc.hooks.tap_receiver`): right after SRTP, before aiortc's
  jitter buffer and decoder. Streams are spread evenly over the 20 ms period, as
  independent browsers would be. Their RTCP reports come every 5 s on average, as a
  browser's audio reports do (libwebrtc's default interval for audio), rather than
  aiortc's 1 s (:func:`appliance.webrtc.hooks.set_rtcp_interval`).
* **the phone**: sipp as UAS (``relay_phone.xml``) answering with PCMU on its RTP echo
  port (``-rtp_echo``), which reflects every datagram to its sender. The audio path is
  browser -> box -> phone echo -> box -> browser.
* **the bare forwarder** (``relay.py forwarder``): per call, a pair of asyncio
  ``DatagramProtocol`` sockets forwarding each datagram to a fixed peer (the echo; and
  back to the sender), on the standard library's event loop: the reference the goal's
  ratio is taken against. A plain UDP generator (``relay.py udp``) drives it with N
  streams of 172-byte RTP packets (12-byte header + 160-byte payload) every 20 ms: the
  same packet rate as the box, 50 packets/s per call each way through the relay.
* **the same forwarder on uvloop** (``relay.py forwarder N ECHO uvloop``), the event
  loop the box runs on (:mod:`appliance.runtime.eventloop`), with its own generator: how
  much of the box's cost is the loop and the sockets alone, on its own loop.
* **the direct path**: a second UDP generator sends N more such streams straight to an
  echo, with no relay: the reference round trip. Each path has its own sipp echo.

All four paths run at once, in the same measuring window, so the load other programs put
on the machine falls on them alike. Each payload carries a magic, its stream, its
sequence number and the sender's CLOCK_MONOTONIC time in ns; relays must pass payloads
untouched (checked byte for byte), so every returning packet gives its own round-trip
time. Each relay's CPU time is also split into user space and kernel (proc(5) utime and
stime): on loopback the kernel's share includes delivering every sent datagram to its
receiver. **Loss** counts the packets sent inside the window that did not come back within a
second after it.

**Added latency** of a packet is its round-trip time minus the median round-trip time of
the direct path in the same window: what putting the relay in the path costs, both
directions together. For the box it includes the browser side's own aiortc work (SRTP
protect and unprotect, RTP packing and parsing in the load generator), which a real
browser does too: it is an upper bound of the box's share.

    .venv/bin/python bench/relay.py [--calls 10] [--seconds 30] [--warmup 3] [--dump DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import os
import queue
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import aiohttp
import av
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcrtpsender import RTCRtpSender

from appliance.auth.passwords import hash_password
from appliance.runtime import eventloop
from appliance.webrtc.hooks import set_host_addresses, set_rtcp_interval, tap_receiver

GOAL_CPU_PCT_PER_CALL = 0.5
GOAL_RATIO_VS_BARE = 2.0
PTIME = 0.02
PAYLOAD_BYTES = 160  # 20 ms of G.711 at 8000 Hz
BROWSER_RTCP_INTERVAL = 5.0  # libwebrtc's default report interval for audio streams
CLOCK_RATE = 8000
DRAIN_S = 1.0
MAGIC = b"RLY1"
STAMP = struct.Struct("!4sHIQ")  # magic, stream, sequence, CLOCK_MONOTONIC ns
RTP_HEADER = struct.Struct("!BBHII")
SCENARIO = Path(__file__).resolve().parent / "relay_phone.xml"
PASSWORD = "relay-bench-password"
ROLES = ("udp", "forwarder", "browsers")


# ----- stamped payloads and what came back ----------------------------------------------


def stamped_payload(stream: int, sequence: int, sent_ns: int) -> bytes:
    """A 160-byte PCMU payload: the stamp, then µ-law silence (0xFF)."""
    head = STAMP.pack(MAGIC, stream, sequence, sent_ns)
    return head + b"\xff" * (PAYLOAD_BYTES - len(head))


def percentile(ordered: list[int], pct: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = -(-len(ordered) * pct // 100)  # ceil
    return float(ordered[max(0, min(len(ordered), int(rank)) - 1)])


class Recorder:
    """Packets sent in the measuring window and the round trips of those that returned."""

    def __init__(self, streams: int) -> None:
        self.streams = streams
        self.all_heard = asyncio.Event()
        self.measuring = False
        self.sent_at: dict[tuple[int, int], int] = {}
        self.returned: set[tuple[int, int]] = set()
        self.rtt_ns: list[int] = []
        self.log: list[tuple[int, int, int, int]] = []
        self.altered = 0
        self.duplicates = 0
        self.foreign = 0
        self.streams_heard: set[int] = set()

    def sent(self, stream: int, sequence: int, sent_ns: int) -> None:
        """Note one packet just handed to the sending stack."""
        if self.measuring:
            self.sent_at[(stream, sequence)] = sent_ns

    def received(self, payload: bytes, now_ns: int) -> None:
        """One returning payload."""
        if len(payload) < STAMP.size or payload[:4] != MAGIC:
            self.foreign += 1
            return
        _, stream, sequence, sent_ns = STAMP.unpack_from(payload)
        if stream not in self.streams_heard:
            self.streams_heard.add(stream)
            if len(self.streams_heard) == self.streams:
                self.all_heard.set()
        key = (stream, sequence)
        if key not in self.sent_at:
            return  # sent outside the window
        if key in self.returned:
            self.duplicates += 1
            return
        if payload != stamped_payload(stream, sequence, self.sent_at[key]):
            self.altered += 1
            return
        self.returned.add(key)
        self.rtt_ns.append(now_ns - sent_ns)
        self.log.append((stream, sequence, sent_ns, now_ns - sent_ns))

    def summary(self) -> dict[str, Any]:
        """Counts and round-trip percentiles (µs) of the window."""
        sent = len(self.sent_at)
        lost = sent - len(self.returned)
        rtts = sorted(self.rtt_ns)
        return {
            "sent": sent,
            "returned": len(self.returned),
            "lost": lost,
            "loss_pct": round(100.0 * lost / sent, 3) if sent else None,
            "altered": self.altered,
            "duplicates": self.duplicates,
            "foreign": self.foreign,
            "rtt_us_p50": percentile(rtts, 50) / 1000 if rtts else None,
            "rtt_us_p99": percentile(rtts, 99) / 1000 if rtts else None,
            "rtt_us_max": rtts[-1] / 1000 if rtts else None,
        }


def emit(**message: Any) -> None:
    """One JSON line to the orchestrator."""
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def follow_orders(
    recorder: Recorder,
    extra: dict[str, Any],
    on_edge: Callable[[str], Awaitable[None]] | None = None,
) -> None:
    """Open the window on ``start``, close it on ``stop``, report after the drain."""
    while True:
        line = (await asyncio.to_thread(sys.stdin.readline)).strip()
        if line in ("start", "stop"):
            recorder.measuring = line == "start"
            if on_edge is not None:
                await on_edge(line)
        if line == "stop":
            await asyncio.sleep(DRAIN_S)
            dump = os.environ.get("RELAY_DUMP")
            if dump:
                await asyncio.to_thread(Path(dump).write_text, json.dumps(recorder.log))
            emit(result={**recorder.summary(), **extra})
            return
        if not line:
            raise SystemExit("the orchestrator went away")


async def paced(offset: float, send: Callable[[int], None]) -> None:
    """Call ``send(n)`` every 20 ms from ``offset`` on, on an absolute schedule."""
    loop = asyncio.get_running_loop()
    start = loop.time() + offset
    n = 0
    while True:
        delay = start + n * PTIME - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        send(n)
        n += 1


# ----- role: plain UDP streams (direct to the echo, or through the bare forwarder) --------


class UdpStream(asyncio.DatagramProtocol):
    """One connected UDP socket sending stamped RTP and timing what returns."""

    def __init__(self, stream: int, recorder: Recorder) -> None:
        self.stream = stream
        self.recorder = recorder
        self.ssrc = secrets.randbits(32)
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.recorder.received(data[RTP_HEADER.size :], time.monotonic_ns())

    def send(self, n: int) -> None:
        if self.transport is None:
            return
        header = RTP_HEADER.pack(0x80, 0, n & 0xFFFF, (n * 160) & 0xFFFFFFFF, self.ssrc)
        now = time.monotonic_ns()
        payload = stamped_payload(self.stream, n, now)
        self.recorder.sent(self.stream, n, now)
        self.transport.sendto(header + payload)


async def udp_role(targets: list[str]) -> None:
    loop = asyncio.get_running_loop()
    recorder = Recorder(len(targets))
    streams = []
    for index, target in enumerate(targets):
        host, port = target.rsplit(":", 1)
        _, stream = await loop.create_datagram_endpoint(
            lambda index=index: UdpStream(index, recorder),  # type: ignore[misc]
            remote_addr=(host, int(port)),
        )
        streams.append(stream)
    senders = [
        loop.create_task(paced(i * PTIME / len(streams), s.send)) for i, s in enumerate(streams)
    ]
    await recorder.all_heard.wait()
    emit(ready=len(streams))
    await follow_orders(recorder, {})
    for task in senders:
        task.cancel()


# ----- role: the bare forwarder -----------------------------------------------------------


class Front(asyncio.DatagramProtocol):
    """Faces the sender: each datagram goes on to the echo through ``back``."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.back: Back | None = None
        self.sender: tuple[str | int, ...] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.sender = addr
        if self.back is not None and self.back.transport is not None:
            self.back.transport.sendto(data)


class Back(asyncio.DatagramProtocol):
    """Faces the echo (connected): each datagram goes back to the front's sender."""

    def __init__(self, front: Front) -> None:
        self.front = front
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        front = self.front
        if front.sender is not None and front.transport is not None:
            front.transport.sendto(data, front.sender)


async def forwarder_role(calls: int, echo: str) -> None:
    """Forward ``calls`` streams to ``echo`` and back; print the ports to send to."""
    loop = asyncio.get_running_loop()
    host, port = echo.rsplit(":", 1)
    ports = []
    for _ in range(calls):
        _, front = await loop.create_datagram_endpoint(Front, local_addr=("127.0.0.1", 0))
        _, back = await loop.create_datagram_endpoint(
            lambda front=front: Back(front),  # type: ignore[misc]
            remote_addr=(host, int(port)),
        )
        front.back = back
        assert front.transport is not None
        ports.append(int(front.transport.get_extra_info("sockname")[1]))
    emit(ports=ports)
    await asyncio.to_thread(sys.stdin.readline)  # runs until its stdin closes


# ----- role: the browsers (aiortc) --------------------------------------------------------


class StampedTrack(MediaStreamTrack):
    """A microphone whose samples come already encoded: stamped PCMU payloads, paced."""

    kind = "audio"
    time_base = fractions.Fraction(1, CLOCK_RATE)

    def __init__(self, stream: int, offset: float, recorder: Recorder) -> None:
        super().__init__()
        self.stream = stream
        self.offset = offset
        self.recorder = recorder
        self.sequence = 0
        self.start: float | None = None

    async def recv(self) -> av.Packet[Any]:
        """The next payload, due 20 ms after the previous one (aiortc packs it as is)."""
        loop = asyncio.get_running_loop()
        if self.start is None:
            self.start = loop.time() + self.offset
        delay = self.start + self.sequence * PTIME - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        n = self.sequence
        self.sequence += 1
        now = time.monotonic_ns()
        packet = av.Packet(stamped_payload(self.stream, n, now))
        packet.pts = n * PAYLOAD_BYTES
        packet.time_base = self.time_base
        self.recorder.sent(self.stream, n, now)
        return packet


@dataclass
class Browser:
    """One call-taker's browser: its HTTP session, API socket and peer connection."""

    stream: int
    session: aiohttp.ClientSession
    ws: aiohttp.ClientWebSocketResponse
    pc: RTCPeerConnection
    call: str = ""
    failures: list[str] = field(default_factory=list)
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    async def signalling(self) -> None:
        """Follow the API's messages as the page does (docs/api.md)."""
        async for frame in self.ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                break
            message = json.loads(frame.data)
            kind = message.get("type")
            if kind == "result" and message.get("for") == "call":
                self.call = message["call"]
            elif kind == "error":
                self.failures.append(f"{message.get('code')}: {message.get('message')}")
                self.answered.set()
            elif kind == "sdp" and message.get("kind") == "answer":
                answer = RTCSessionDescription(message["sdp"], "answer")
                await self.pc.setRemoteDescription(answer)
                self.answered.set()
            elif kind == "call" and message.get("state") == "ended":
                self.failures.append(f"ended: {message.get('cause')}")
                self.answered.set()

    async def relayed(self, origin: str) -> dict[str, float]:
        """The box's relay counters (``appliance_relay_packets_total``) from /metrics."""
        async with self.session.get(f"{origin}/metrics") as response:
            text = await response.text()
        out = {}
        for line in text.splitlines():
            if line.startswith("appliance_relay_packets_total{"):
                name = line.split('direction="', 1)[1].split('"', 1)[0]
                out[name] = float(line.rsplit(" ", 1)[1])
        return out

    async def close(self) -> None:
        """Hang up and go away."""
        with contextlib.suppress(Exception):
            await self.ws.send_json({"type": "hangup", "call": self.call})
        await self.pc.close()
        await self.ws.close()
        await self.session.close()
        if self.task is not None:
            self.task.cancel()


async def place_call(
    origin: str, operator: str, target: str, track: StampedTrack, recorder: Recorder
) -> Browser:
    """Log in, open the API socket and call ``target`` as the page would."""
    session = aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True),  # the box is reached by IP address
        connector=aiohttp.TCPConnector(ssl=False),  # with its self-signed certificate
    )
    form = {"name": operator, "password": PASSWORD, "next": "/"}
    async with session.post(
        f"{origin}/login", data=form, headers={"Origin": origin}, allow_redirects=False
    ) as response:
        if response.status != 303:
            await session.close()
            raise RuntimeError(f"login of {operator} answered {response.status}")
    ws = await session.ws_connect(f"{origin}/api/v1/ws", origin=origin)
    welcome = await ws.receive_json(timeout=10)
    if welcome.get("type") != "welcome":
        raise RuntimeError(f"expected a welcome, got {welcome}")
    pc = RTCPeerConnection()
    transceiver = pc.addTransceiver(track, direction="sendrecv")
    codecs = RTCRtpSender.getCapabilities("audio").codecs
    transceiver.setCodecPreferences([c for c in codecs if c.mimeType == "audio/PCMU"])
    tap_receiver(transceiver.receiver, lambda p: recorder.received(p.payload, time.monotonic_ns()))
    await pc.setLocalDescription(await pc.createOffer())
    browser = Browser(track.stream, session, ws, pc)
    browser.task = asyncio.get_running_loop().create_task(browser.signalling())
    offer = pc.localDescription.sdp
    await ws.send_json({"type": "call", "id": 1, "target": target, "sdp": offer})
    await asyncio.wait_for(browser.answered.wait(), 30)
    if browser.failures:
        raise RuntimeError(f"call of {operator} failed: {browser.failures}")
    return browser


async def browsers_role(url: str, target: str, operators: list[str]) -> None:
    set_host_addresses(["127.0.0.1"])  # aioice leaves loopback out by itself
    set_rtcp_interval(BROWSER_RTCP_INTERVAL)
    count = len(operators)
    recorder = Recorder(count)
    origin = url.rstrip("/")
    browsers = await asyncio.gather(*(
        place_call(origin, name, target, StampedTrack(i, i * PTIME / count, recorder), recorder)
        for i, name in enumerate(operators)
    ))  # fmt: skip
    try:
        await asyncio.wait_for(recorder.all_heard.wait(), 30)
    except TimeoutError:
        states = [b.pc.connectionState for b in browsers]
        raise RuntimeError(
            f"no audio back in 30 s: ICE {states}, {recorder.streams_heard}"
        ) from None
    emit(ready=count)
    extra: dict[str, Any] = {}
    counters: dict[str, dict[str, float]] = {}

    async def edge(name: str) -> None:
        counters[name] = await browsers[0].relayed(origin)
        if name == "stop":
            start, stop = counters["start"], counters["stop"]
            extra["box_relayed"] = {k: stop[k] - start.get(k, 0.0) for k in stop}
            extra["ended_early"] = [b.failures for b in browsers if b.failures]

    await follow_orders(recorder, extra, edge)
    await asyncio.gather(*(b.close() for b in browsers))


# ----- the orchestrator -------------------------------------------------------------------


_HANDED_OUT: set[int] = set()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A loopback port free now, never one handed out before in this run."""
    while True:
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def cpu_seconds(pid: int) -> float:
    """CPU time of a process, all its threads, to the nanosecond.

    The process's CPU-time clock, as clock_getcpuclockid(3) names it on Linux
    (``(~pid << 3) | CPUCLOCK_SCHED``): the runtime that /proc/PID/stat reports as
    utime + stime in clock ticks (proc(5), fields 14-15), which is the fallback.
    """
    with contextlib.suppress(OSError):
        return time.clock_gettime_ns(((~pid) << 3) | 2) / 1e9
    return sum(user_system_ticks(pid)) / os.sysconf("SC_CLK_TCK")


def user_system_ticks(pid: int) -> tuple[int, int]:
    """A process's user and system CPU time in clock ticks (proc(5), utime and stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs (proc(5), /proc/stat ``cpu`` line)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


class Child:
    """A process that speaks JSON lines on stdout and takes orders on stdin."""

    def __init__(self, name: str, args: list[str], directory: Path, dump: Path | None) -> None:
        self.name = name
        self.log = directory / f"{name}.log"
        self._log_file = self.log.open("w")
        env = dict(os.environ)
        if dump is not None:
            env["RELAY_DUMP"] = str(dump / f"{name}.json")
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log_file, text=True,
            env=env,
        )  # fmt: skip
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def expect(self, key: str, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(
                    f"{self.name}: no {key!r} in {timeout} s\n{self.tail()}"
                ) from None
            if line is None:
                self.proc.wait(timeout=5)
                raise RuntimeError(
                    f"{self.name} exited ({self.proc.returncode}) before {key!r}\n{self.tail()}"
                )
            with contextlib.suppress(ValueError):
                message = json.loads(line)
                if isinstance(message, dict) and key in message:
                    return message[key]

    def order(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def tail(self, lines: int = 30) -> str:
        self._log_file.flush()
        text = self.log.read_text(errors="replace").splitlines()[-lines:]
        return f"--- {self.log.name}:\n" + "\n".join(text)

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()


class Box:
    """The appliance service on a loopback config with N operators."""

    def __init__(self, directory: Path, operators: int) -> None:
        password_hash = hash_password(PASSWORD)
        self.web_port = free_port()
        low = 21000 + (os.getpid() % 90) * 400
        accounts = "".join(
            f'\n[[operators]]\nname = "taker{i}"\npassword_hash = "{password_hash}"\n'
            for i in range(operators)
        )
        config = directory / "appliance.toml"
        config.write_text(
            f'[service]\nstate_dir = "{directory / "state"}"\nname = "relay-bench"\n'
            f'[web]\naddresses = ["127.0.0.1"]\nport = {self.web_port}\n'
            f'[sip]\naddresses = ["127.0.0.1"]\nudp_port = {free_port(socket.SOCK_DGRAM)}\n'
            f"tcp_port = {free_port()}\ntls_port = 0\n"
            f"[msrp]\nport = {free_port()}\n"
            f"[media]\nrtp_port_min = {low}\nrtp_port_max = {low + 398}\n"
            f'[webrtc]\nice_addresses = ["127.0.0.1"]\n{accounts}'
        )
        self.log = directory / "box.log"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(directory / "notify"))
        self.notify.settimeout(0.5)
        env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHDOG")}
        env["NOTIFY_SOCKET"] = str(directory / "notify")
        with self.log.open("w") as log_file:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "appliance", "run", "--config", str(config)],
                env=env, stdout=subprocess.DEVNULL, stderr=log_file,
            )  # fmt: skip
        self._ready = threading.Event()
        self._listening = True
        threading.Thread(target=self._listen, daemon=True).start()

    def _listen(self) -> None:
        """Take the box's sd_notify messages for as long as it runs (sd_notify(3))."""
        while self._listening:
            try:
                data = self.notify.recv(4096).decode(errors="replace")
            except TimeoutError:
                continue
            except OSError:
                return
            if "READY=1" in data.split("\n"):
                self._ready.set()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the box did not become ready:\n" + self.tail())

    def tail(self) -> str:
        return "--- box.log:\n" + self.log.read_text(errors="replace")[-3000:]

    def problems(self) -> list[str]:
        """WARNING/ERROR lines and tracebacks the box logged."""
        return [
            line for line in self.log.read_text(errors="replace").splitlines()
            if " WARNING " in line or " ERROR " in line or "Traceback" in line
        ]  # fmt: skip

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._listening = False
        self.notify.close()


class EchoPhone:
    """sipp as a phone: a UAS on one port (``relay_phone.xml``), an RTP echo on another."""

    def __init__(self, directory: Path) -> None:
        sipp = shutil.which("sipp")
        if sipp is None:
            raise SystemExit("bench/relay.py needs sipp (Debian package sip-tester)")
        self.sip_port = free_port(socket.SOCK_DGRAM)
        self.echo_port = free_port(socket.SOCK_DGRAM)
        self.proc = subprocess.Popen(
            [sipp, "-sf", str(SCENARIO), "-i", "127.0.0.1", "-p", str(self.sip_port),
             "-mi", "127.0.0.1", "-mp", str(self.echo_port), "-rtp_echo", "-nostdin",
             "-t", "u1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=directory,
        )  # fmt: skip

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"sipp exited with {self.proc.returncode}")

    @property
    def echo(self) -> str:
        return f"127.0.0.1:{self.echo_port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class Window:
    """What one measuring window saw."""

    results: dict[str, dict[str, Any]]
    cpu_pct: dict[str, float]
    user_share: dict[str, float | None]  # of a relay's CPU time, the part in user space
    machine_busy_pct: float
    seconds: float


def measure(generators: dict[str, Child], watched: dict[str, int], seconds: float) -> Window:
    """Open the window in every generator, read CPU times, close it, collect the results."""
    pids = {**watched, **{f"loadgen_{name}": g.pid for name, g in generators.items()}}
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    split0 = {name: user_system_ticks(pid) for name, pid in watched.items()}
    busy0, total0 = machine_ticks()
    started = time.monotonic()
    for generator in generators.values():
        generator.order("start")
    time.sleep(seconds)
    for generator in generators.values():
        generator.order("stop")
    after = {name: cpu_seconds(pid) for name, pid in pids.items()}
    split1 = {name: user_system_ticks(pid) for name, pid in watched.items()}
    busy1, total1 = machine_ticks()
    window = time.monotonic() - started
    results = {name: g.expect("result", timeout=30) for name, g in generators.items()}
    cpu = {name: 100.0 * (after[name] - before[name]) / window for name in pids}
    busy = 100.0 * (busy1 - busy0) / max(1, total1 - total0) * (os.cpu_count() or 1)
    share: dict[str, float | None] = {}
    for name in watched:
        user = split1[name][0] - split0[name][0]
        system = split1[name][1] - split0[name][1]
        share[name] = round(user / (user + system), 3) if user + system else None
    return Window(results, cpu, share, busy, window)


def minus(value_us: float | None, base_us: float) -> float | None:
    """A round trip less the direct path's median, in ms."""
    return None if value_us is None else round((value_us - base_us) / 1000, 3)


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 2)


def fmt(value: float | None, width: int = 12) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:{width}.3f}"


def run(calls: int, seconds: float, warmup: float, dump: Path | None) -> dict[str, Any]:
    """Set everything up, measure one window, tear down; the figures."""
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp:
        directory = Path(tmp)
        # One echo per path, so that no path's packets queue behind another's at the echo.
        phones = {path: EchoPhone(directory) for path in ("direct", "bare", "uvloop", "box")}
        children: list[Child] = []
        box: Box | None = None
        try:
            box = Box(directory, calls)
            box.wait_ready()
            for phone in phones.values():
                phone.check()
            idle0, idle_t0 = cpu_seconds(box.proc.pid), time.monotonic()
            time.sleep(2.0)
            idle_pct = 100.0 * (cpu_seconds(box.proc.pid) - idle0) / (time.monotonic() - idle_t0)
            forwarder = Child("forwarder", ["forwarder", str(calls), phones["bare"].echo],
                              directory, dump)  # fmt: skip
            on_uvloop = Child("forwarder-uvloop",
                              ["forwarder", str(calls), phones["uvloop"].echo, "uvloop"],
                              directory, dump)  # fmt: skip
            children.extend((forwarder, on_uvloop))
            ports = forwarder.expect("ports", timeout=15)
            uvloop_ports = on_uvloop.expect("ports", timeout=15)
            generators = {
                "direct": Child("direct", ["udp", *[phones["direct"].echo] * calls], directory,
                                dump),
                "bare": Child("bare", ["udp", *[f"127.0.0.1:{p}" for p in ports]], directory,
                              dump),
                "uvloop": Child("uvloop", ["udp", *[f"127.0.0.1:{p}" for p in uvloop_ports]],
                                directory, dump),
                "box": Child("browsers", ["browsers", f"https://127.0.0.1:{box.web_port}",
                                          f"sip:echo@127.0.0.1:{phones['box'].sip_port}",
                                          *[f"taker{i}" for i in range(calls)]],
                             directory, dump),
            }  # fmt: skip
            children.extend(generators.values())
            try:
                for generator in generators.values():
                    generator.expect("ready", timeout=120)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}\n{box.tail()}") from None
            time.sleep(warmup)
            watched = {"box": box.proc.pid, "bare": forwarder.pid, "uvloop": on_uvloop.pid}
            window = measure(generators, watched, seconds)
            problems = box.problems()
            if dump is not None:
                shutil.copy(box.log, dump / "box.log")
        finally:
            for child in children:
                child.stop()
            if box is not None:
                box.stop()
            for phone in phones.values():
                phone.stop()
    return report(calls, window, idle_pct, problems)


def report(calls: int, window: Window, idle_pct: float, problems: list[str]) -> dict[str, Any]:
    """Print the table; the summary for the JSON line."""
    direct, bare, uv, boxed = (window.results[k] for k in ("direct", "bare", "uvloop", "box"))
    base = direct["rtt_us_p50"] or 0.0
    box_cpu = window.cpu_pct["box"] / calls
    bare_cpu = window.cpu_pct["bare"] / calls
    uvloop_cpu = window.cpu_pct["uvloop"] / calls
    summary: dict[str, Any] = {
        "calls": calls,
        "seconds": round(window.seconds, 2),
        "packets_per_s_each_way": calls * round(1 / PTIME),
        "cpu_pct_per_call": round(box_cpu, 3),
        "ratio_vs_udp_forwarder": ratio(box_cpu, bare_cpu),
        "box_cpu_pct_total": round(window.cpu_pct["box"], 2),
        "box_user_share": window.user_share["box"],
        "box_idle_cpu_pct": round(idle_pct, 2),
        "box_cpu_pct_per_call_less_idle": round(
            max(0.0, window.cpu_pct["box"] - idle_pct) / calls, 3
        ),
        "box_sent": boxed["sent"],
        "box_lost": boxed["lost"],
        "box_loss_pct": boxed["loss_pct"],
        "box_altered": boxed["altered"],
        "box_added_latency_ms_p50": minus(boxed["rtt_us_p50"], base),
        "box_added_latency_ms_p99": minus(boxed["rtt_us_p99"], base),
        "box_relayed_in_window": boxed.get("box_relayed"),
        "box_calls_ended_early": len(boxed.get("ended_early", [])),
        "box_log_problems": len(problems),
        "bare_cpu_pct_per_call": round(bare_cpu, 3),
        "bare_sent": bare["sent"],
        "bare_lost": bare["lost"],
        "bare_loss_pct": bare["loss_pct"],
        "bare_added_latency_ms_p50": minus(bare["rtt_us_p50"], base),
        "bare_added_latency_ms_p99": minus(bare["rtt_us_p99"], base),
        "uvloop_cpu_pct_per_call": round(uvloop_cpu, 3),
        "uvloop_user_share": window.user_share["uvloop"],
        "bare_user_share": window.user_share["bare"],
        "ratio_vs_uvloop_forwarder": ratio(box_cpu, uvloop_cpu),
        "uvloop_sent": uv["sent"],
        "uvloop_lost": uv["lost"],
        "uvloop_added_latency_ms_p50": minus(uv["rtt_us_p50"], base),
        "uvloop_added_latency_ms_p99": minus(uv["rtt_us_p99"], base),
        "direct_rtt_ms_p50": round(base / 1000, 3),
        "direct_rtt_ms_p99": round((direct["rtt_us_p99"] or 0.0) / 1000, 3),
        "direct_loss_pct": direct["loss_pct"],
        "loadgen_cpu_pct": {
            name.removeprefix("loadgen_"): round(pct, 2)
            for name, pct in window.cpu_pct.items()
            if name.startswith("loadgen_")
        },
        "machine_busy_pct_of_one_core": round(window.machine_busy_pct, 1),
        "cpu_count": os.cpu_count(),
    }
    summary["ratio_latency_p50_vs_udp_forwarder"] = ratio(
        summary["box_added_latency_ms_p50"], summary["bare_added_latency_ms_p50"]
    )
    summary["goal_cpu_met"] = box_cpu <= GOAL_CPU_PCT_PER_CALL
    summary["goal_ratio_met"] = (summary["ratio_vs_udp_forwarder"] or 0) <= GOAL_RATIO_VS_BARE
    summary["goal_loss_met"] = boxed["lost"] == 0 and boxed["sent"] > 0

    for line in problems[:10]:
        print(f"box log: {line}")
    for name in ("direct", "bare", "uvloop", "box"):
        print(f"{name:7} {window.results[name]}")

    def met(key: str) -> str:
        return "met" if summary[key] else "NOT met"

    print(
        f"\n{calls} calls, {summary['seconds']} s window, {summary['packets_per_s_each_way']} "
        f"packets/s each way through each relay; machine busy "
        f"{summary['machine_busy_pct_of_one_core']} % of one core ({os.cpu_count()} cores)\n"
        f"{'':24}{'box':>12}{'bare fwd':>12}{'ratio':>8}{'on uvloop':>12}{'ratio':>8}\n"
        f"{'CPU % of a core per call':24}{fmt(box_cpu)}{fmt(bare_cpu)}"
        f"{fmt(summary['ratio_vs_udp_forwarder'], 8)}{fmt(uvloop_cpu)}"
        f"{fmt(summary['ratio_vs_uvloop_forwarder'], 8)}\n"
        f"{'  of it in user space':24}{fmt(window.user_share['box'])}"
        f"{fmt(window.user_share['bare'])}{'':8}{fmt(window.user_share['uvloop'])}\n"
        f"{'loss %':24}{fmt(boxed['loss_pct'])}{fmt(bare['loss_pct'])}{'':8}"
        f"{fmt(uv['loss_pct'])}\n"
        f"{'added latency p50 ms':24}{fmt(summary['box_added_latency_ms_p50'])}"
        f"{fmt(summary['bare_added_latency_ms_p50'])}{'':8}"
        f"{fmt(summary['uvloop_added_latency_ms_p50'])}\n"
        f"{'added latency p99 ms':24}{fmt(summary['box_added_latency_ms_p99'])}"
        f"{fmt(summary['bare_added_latency_ms_p99'])}{'':8}"
        f"{fmt(summary['uvloop_added_latency_ms_p99'])}\n"
        f"direct echo round trip p50 {summary['direct_rtt_ms_p50']} ms, "
        f"p99 {summary['direct_rtt_ms_p99']} ms; box idle before the calls "
        f"{summary['box_idle_cpu_pct']} % of a core\n"
        f"goal: <= {GOAL_CPU_PCT_PER_CALL} % of a core per call ({met('goal_cpu_met')}), "
        f"<= {GOAL_RATIO_VS_BARE}x the bare forwarder ({met('goal_ratio_met')}), "
        f"0 loss ({met('goal_loss_met')})"
    )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=10, help="concurrent calls (default 10)")
    parser.add_argument("--seconds", type=float, default=30.0, help="measuring window")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before the window")
    parser.add_argument(
        "--dump", type=Path, help="write every packet's round trip and the box's log here"
    )
    args = parser.parse_args()
    if not 1 <= args.calls <= 150 or args.seconds <= 0 or args.warmup < 0:
        parser.error("expected 1 <= --calls <= 150, --seconds > 0, --warmup >= 0")
    if args.dump is not None:
        args.dump.mkdir(parents=True, exist_ok=True)
    summary = run(args.calls, args.seconds, args.warmup, args.dump)
    print(json.dumps(summary))


def child_main(role: str, rest: list[str]) -> None:
    if role == "udp":
        asyncio.run(udp_role(rest))
    elif role == "forwarder":
        if rest[2:] == ["uvloop"]:
            eventloop.run(forwarder_role(int(rest[0]), rest[1]))
        else:
            asyncio.run(forwarder_role(int(rest[0]), rest[1]))
    else:
        asyncio.run(browsers_role(rest[0], rest[1], rest[2:]))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ROLES:
        child_main(sys.argv[1], sys.argv[2:])
    else:
        main()
