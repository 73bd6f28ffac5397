"""Real-time text benchmark: the sans-I/O RFC 4103 path, throughput and loss recovery.

1. Throughput and CPU: an :class:`RttSender` framed by :class:`RtpTextStream` makes RED
   packets (2 generations) as datagrams; a receiver parses them, reassembles the stream and
   turns it into data-channel text (:class:`ChannelText`). Measured separately, in CPU
   time per packet, at a typing load (3 characters per packet) and a bulk load (500).
2. Latency inside the cores: seconds from a key press to delivery on the receiving side,
   over a path with 20 ms delay and no loss (the 300 ms buffering interval dominates).
   And through the box's text gateway (:class:`TextBridge`, the code a call runs) on
   loopback UDP, both directions at once: phone → browser from the phone's packet leaving
   to the character reaching the data-channel callback; browser → phone from the channel
   message to the packet carrying the character reaching the phone's socket (this
   includes the box's own buffering interval).
3. Loss sweep: human-paced typing (backspaces and new lines included) over a path losing
   each packet independently with probability p, for RED generations g; every sent block
   is matched by sequence number with what the receiver delivered. Reports characters
   delivered, recovered from redundancy, marked with U+FFFD and silently lost (the goal is
   0 everywhere), and the rate of text blocks marked next to the floor p^(g+1) with its
   z-score (with independent loss a block is unrecoverable only when its packet and the
   next g are all lost).

    .venv/bin/python bench/rtt.py [--chars 10000] [--quick]

Prints tables and, last, one line of JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import statistics
import time

from appliance.media.endpoint import PortAllocator
from appliance.media.rtp import RtpPacket
from appliance.rtt.bridge import TextBridge, TextSettings
from appliance.rtt.channel import ChannelText
from appliance.rtt.receiver import RttReceiver
from appliance.rtt.red import decode_red
from appliance.rtt.sdp import PhoneText
from appliance.rtt.sender import RttSender
from appliance.rtt.sim import latencies, simulate, simulate_loss
from appliance.rtt.stream import RtpTextStream, feed_datagram
from appliance.rtt.t140 import BS, NEW_LINE, T140Writer

T140_PT = 98
RED_PT = 100
LOSSES = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)
GENERATIONS = (0, 1, 2, 3)
WORDS = [
    *("help", "fire", "smoke", "at", "12", "main", "street", "second", "floor", "my"),
    *("husband", "is", "not", "breathing", "ambulance", "police", "door", "locked"),
    *("can", "you", "hear", "me", "yes", "no", "911", "élan", "señor", "日本", "ok"),
]


def typed_text(chars: int, seed: int) -> str:
    """Words with typos corrected by backspace and some new lines, ``chars`` long."""
    rng = random.Random(seed)
    out: list[str] = []
    size = 0
    while size < chars:
        word = rng.choice(WORDS)
        if rng.random() < 0.15:
            word = word + rng.choice("xqz") + BS
        word += NEW_LINE if rng.random() < 0.05 else " "
        out.append(word)
        size += len(word)
    return "".join(out)[:chars]


def throughput(chars_per_packet: int, packets: int) -> dict[str, float]:
    """CPU per packet for the sender side and the receiver side, and characters/s."""
    sender = RttSender(T140_PT, RED_PT, generations=2, cps=None)
    stream = RtpTextStream(sender, ssrc=0x1234, first_seq=1)
    chunk = ("abcdefghij" * (chars_per_packet // 10 + 1))[:chars_per_packet]
    datagrams: list[tuple[float, bytes]] = []
    now = 0.0
    begin = time.process_time()
    sender.write(T140Writer().start(), now)
    for _ in range(packets):
        sender.write(chunk, now)
        for packet in stream.poll(now):
            datagrams.append((now, packet.serialize()))
        now += 0.3
    send_cpu = time.process_time() - begin
    receiver = RttReceiver(T140_PT, RED_PT, generations=2, started=0.0)
    text = ChannelText()
    text.channel_opened()
    delivered = 0
    begin = time.process_time()
    for at, data in datagrams:
        feed_datagram(receiver, data, at)
        for block in receiver.poll(at):
            for message in text.from_rtp(block):
                delivered += len(message)
    receive_cpu = time.process_time() - begin
    sent_chars = chars_per_packet * packets
    assert delivered == sent_chars, (delivered, sent_chars)
    return {
        "packets": len(datagrams),
        "send_us_per_packet": send_cpu / len(datagrams) * 1e6,
        "receive_us_per_packet": receive_cpu / len(datagrams) * 1e6,
        "chars_per_s": sent_chars / (send_cpu + receive_cpu),
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1)]


def core_latency(chars: int) -> dict[str, float]:
    text = typed_text(chars, seed=5)
    run = simulate(text, 2, seed=5, drop=lambda _: False, delay=lambda _: 0.02)
    values = latencies(run)
    assert len(values) == len(text), (len(values), len(text))
    return {
        "p50_ms": statistics.median(values) * 1000,
        "p99_ms": percentile(values, 99) * 1000,
        "max_ms": max(values) * 1000,
    }


class _Phone(asyncio.DatagramProtocol):
    """The phone's socket: records when each character of the box's text arrives."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.arrivals: list[tuple[float, str]] = []
        self.seen: set[int] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        now = time.monotonic()
        try:
            packet = RtpPacket.parse(data)
        except ValueError:
            return
        if packet.payload_type != RED_PT or packet.sequence in self.seen:
            return
        self.seen.add(packet.sequence)
        text = decode_red(packet.payload, T140_PT).primary.decode().replace("\ufeff", "")
        self.arrivals.extend((now, char) for char in text)


async def gateway_latency(chars: int, seed: int = 9) -> dict[str, float]:
    """Per-character latency through :class:`TextBridge` on loopback UDP, both ways."""
    rng = random.Random(seed)
    low = 40000 + (os.getpid() % 200) * 50
    bridge = TextBridge(TextSettings())
    await bridge.open("127.0.0.1", PortAllocator(low, low + 48))
    loop = asyncio.get_running_loop()
    transport, phone = await loop.create_datagram_endpoint(_Phone, local_addr=("127.0.0.1", 0))
    port = int(transport.get_extra_info("sockname")[1])
    bridge.start(
        PhoneText(
            index=1,
            address="127.0.0.1",
            port=port,
            t140_pt=T140_PT,
            red_pt=RED_PT,
            generations=2,
            cps=1000,
            direction="sendrecv",
            secure_profile=False,
        )
    )
    to_browser: list[tuple[float, str]] = []
    bridge.channel_opened(lambda m: to_browser.extend((time.monotonic(), c) for c in m))
    sender = RttSender(T140_PT, RED_PT, generations=2, cps=None)
    stream = RtpTextStream(sender, ssrc=0xBEEF, first_seq=7)
    sent_at: list[float] = []  # when the packet carrying each phone character left
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    phone_text = "".join(rng.choice(alphabet) for _ in range(chars))
    box_text = "".join(rng.choice(alphabet) for _ in range(chars))
    typed_at: list[float] = []

    def pump(now: float) -> None:
        for packet in stream.poll(now):
            primary = decode_red(packet.payload, T140_PT).primary.decode()
            sent_at.extend(now for _ in primary.replace("\ufeff", ""))
            transport.sendto(packet.serialize(), ("127.0.0.1", bridge.port))

    async def phone_side() -> None:
        sender.write(T140Writer().start(), time.monotonic())
        for char in phone_text:
            sender.write(char, time.monotonic())
            end = time.monotonic() + rng.uniform(0.02, 0.2)
            while (now := time.monotonic()) < end:
                pump(now)
                deadline = stream.next_deadline()
                await asyncio.sleep(max(0.0, min(end, deadline or end) - now))
        while (deadline := stream.next_deadline()) is not None:
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))
            pump(time.monotonic())

    async def browser_side() -> None:
        for char in box_text:
            typed_at.append(time.monotonic())
            bridge.channel_message(char)
            await asyncio.sleep(rng.uniform(0.02, 0.2))

    await asyncio.gather(phone_side(), browser_side())
    await asyncio.sleep(1.5)
    bridge.close()
    transport.close()
    got_browser = [c for _, c in to_browser[1:]]  # after the opening BOM
    assert "".join(got_browser) == phone_text, "phone → browser text differs"
    assert "".join(c for _, c in phone.arrivals) == box_text, "browser → phone text differs"
    up = [at - sent for (at, _), sent in zip(to_browser[1:], sent_at, strict=True)]
    down = [at - typed for (at, _), typed in zip(phone.arrivals, typed_at, strict=True)]
    return {
        "phone_to_browser_p50_ms": statistics.median(up) * 1000,
        "phone_to_browser_p99_ms": percentile(up, 99) * 1000,
        "browser_to_phone_p50_ms": statistics.median(down) * 1000,
        "browser_to_phone_p99_ms": percentile(down, 99) * 1000,
        "browser_to_phone_max_ms": max(down) * 1000,
    }


def sweep(chars: int, losses: tuple[float, ...], gens: tuple[int, ...]) -> list[dict[str, float]]:
    rows = []
    text = typed_text(chars, seed=1)
    for generations in gens:
        for loss in losses:
            counts = simulate_loss(text, loss, generations, seed=1000 + int(loss * 100))
            floor = loss ** (generations + 1)
            rate = counts.blocks_marked / counts.blocks if counts.blocks else 0.0
            sigma = math.sqrt(floor * (1 - floor) / counts.blocks) if counts.blocks else 0.0
            z = (rate - floor) / sigma if sigma else 0.0
            rows.append(
                {
                    "loss": loss,
                    "generations": generations,
                    **counts.as_dict(),
                    "marked_block_rate": rate,
                    "z": z,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chars", type=int, default=10_000, help="characters per sweep cell")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "--gateway-chars", type=int, default=500, help="characters each way through the gateway"
    )
    args = parser.parse_args()
    chars = 1000 if args.quick else args.chars
    packets = 2000 if args.quick else 20_000

    typing = throughput(3, packets)
    bulk = throughput(500, packets // 4)
    print("throughput (CPU time, one core)")
    print(f"{'load':<22}{'packets':>9}{'send µs/pkt':>13}{'recv µs/pkt':>13}{'chars/s':>12}")
    for name, row in (("typing, 3 chars/pkt", typing), ("bulk, 500 chars/pkt", bulk)):
        print(
            f"{name:<22}{row['packets']:>9.0f}{row['send_us_per_packet']:>13.1f}"
            f"{row['receive_us_per_packet']:>13.1f}{row['chars_per_s']:>12.0f}"
        )

    latency = core_latency(chars)
    print(
        f"\nkey press to delivery in the cores (300 ms interval, 20 ms path): "
        f"p50 {latency['p50_ms']:.0f} ms, p99 {latency['p99_ms']:.0f} ms,"
        f" max {latency['max_ms']:.0f} ms"
    )

    gateway = asyncio.run(gateway_latency(50 if args.quick else args.gateway_chars))
    print(
        "through the box's text gateway (TextBridge, loopback UDP, 300 ms interval):\n"
        "  phone → browser (packet in to channel):"
        f" p50 {gateway['phone_to_browser_p50_ms']:.1f} ms,"
        f" p99 {gateway['phone_to_browser_p99_ms']:.1f} ms\n"
        f"  browser → phone (channel to packet out, incl. buffering):"
        f" p50 {gateway['browser_to_phone_p50_ms']:.0f} ms,"
        f" p99 {gateway['browser_to_phone_p99_ms']:.0f} ms,"
        f" max {gateway['browser_to_phone_max_ms']:.0f} ms (goal p99 <= 320 ms)"
    )

    rows = sweep(chars, LOSSES, GENERATIONS)
    print(f"\nloss sweep, {chars} typed characters per cell (U+FFFD = marked)")
    print(
        f"{'g':>2}{'loss':>6}{'chars':>7}{'direct':>8}{'recov.':>8}{'marked':>8}"
        f"{'silent':>8}{'marks':>7}{'blocks':>8}{'marked':>8}{'rate':>9}{'floor':>9}{'z':>7}"
    )
    for row in rows:
        print(
            f"{row['generations']:>2}{row['loss']:>6.2f}{row['characters']:>7}"
            f"{row['delivered']:>8}{row['recovered']:>8}{row['marked']:>8}"
            f"{row['silently_lost']:>8}{row['marks']:>7}{row['blocks']:>8}"
            f"{row['blocks_marked']:>8}{row['marked_block_rate']:>9.5f}{row['floor']:>9.5f}"
            f"{row['z']:>7.2f}"
        )
    silent = sum(int(row["silently_lost"]) for row in rows)
    duplicated = sum(int(row["duplicated"]) for row in rows)
    worst_z = max(abs(row["z"]) for row in rows)
    print(
        f"\ncharacters silently lost, all cells: {silent}; blocks delivered twice: {duplicated};"
        f" largest |z| against the floor: {worst_z:.2f}"
    )

    def cell(loss: float, generations: int) -> dict[str, float]:
        return next(r for r in rows if r["loss"] == loss and r["generations"] == generations)

    summary = {
        "typing_send_us_per_packet": round(typing["send_us_per_packet"], 2),
        "typing_receive_us_per_packet": round(typing["receive_us_per_packet"], 2),
        "typing_chars_per_s": round(typing["chars_per_s"]),
        "bulk_chars_per_s": round(bulk["chars_per_s"]),
        "core_latency_p50_ms": round(latency["p50_ms"], 1),
        "core_latency_p99_ms": round(latency["p99_ms"], 1),
        "gateway_phone_to_browser_p99_ms": round(gateway["phone_to_browser_p99_ms"], 2),
        "gateway_browser_to_phone_p50_ms": round(gateway["browser_to_phone_p50_ms"], 1),
        "gateway_browser_to_phone_p99_ms": round(gateway["browser_to_phone_p99_ms"], 1),
        "chars_per_cell": chars,
        "silently_lost_total": silent,
        "duplicated_total": duplicated,
        "max_abs_z_vs_floor": round(worst_z, 2),
        **{
            f"marked_chars_g2_loss{int(loss * 100)}": int(cell(loss, 2)["marked"])
            for loss in (0.05, 0.1, 0.2)
        },
        **{
            f"recovered_chars_g2_loss{int(loss * 100)}": int(cell(loss, 2)["recovered"])
            for loss in (0.05, 0.1, 0.2)
        },
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
