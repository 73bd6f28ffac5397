"""The SIP service against sipp, a real SIP peer, over UDP and TCP on loopback.

The box's side is driven by a small test UA subscribed to the service's call API;
sipp plays a LAN phone (UAC scenarios) or the phone being called (UAS scenarios).
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from appliance.config.schema import (
    Operator,
    RegistrarConfig,
    SipAccount,
    SipConfig,
    UpstreamConfig,
)
from appliance.runtime.health import Health
from appliance.runtime.metrics import Metrics
from appliance.sip.events import (
    CallAnswered,
    CallConfirmed,
    CallEnded,
    CallProgress,
    EndCause,
    IncomingCall,
    RegistrationState,
    SipEvent,
)
from appliance.sip.service import SipService
from tests.sip.lossy import LossyRelay

SCENARIOS = Path(__file__).parent / "scenarios"
SDP = (
    b"v=0\r\no=box 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="needs sipp (Debian: sip-tester)"),
]


def free_udp_tcp_port() -> int:
    """A port free for both UDP and TCP on loopback."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


class CallLayerStandIn:
    """Stands in for the call layer: records events, rings and answers as told."""

    def __init__(self, service: SipService, *, answer_after: float | None = 0.1) -> None:
        self.service = service
        self.answer_after = answer_after
        self.events: list[SipEvent] = []
        self.changed = asyncio.Event()
        service.subscribe(self.on_event)

    def on_event(self, event: SipEvent) -> bool:
        self.events.append(event)
        self.changed.set()
        if isinstance(event, IncomingCall) and event.target_user == "alice":
            self.service.ringing(event.leg)
            if self.answer_after is not None:
                asyncio.get_running_loop().call_later(
                    self.answer_after, self.service.answer, event.leg, SDP
                )
            return True
        return False

    async def wait_for(self, kind: type[SipEvent], timeout: float = 15.0) -> SipEvent:
        async def find() -> SipEvent:
            while True:
                for event in self.events:
                    if isinstance(event, kind):
                        return event
                self.changed.clear()
                await self.changed.wait()

        return await asyncio.wait_for(find(), timeout)

    def of(self, kind: type[SipEvent]) -> list[SipEvent]:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
async def box() -> AsyncIterator[SipService]:
    port = free_udp_tcp_port()
    config = SipConfig(
        addresses=["127.0.0.1"], udp_port=port, tcp_port=port, tls_port=0,
        accounts=[SipAccount(user="1001", password="secret-1001")],
        registrar=RegistrarConfig(digest_algorithms=["MD5", "SHA-256"]),
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as state:
        service = SipService(
            config,
            [],
            box_name="test-box",
            state_dir=Path(state),
            tls=None,
            health=Health(),
            metrics=Metrics(),
        )
        await service.start()
        try:
            yield service
        finally:
            await service.stop()


async def sipp(
    scenario: str,
    target: str | None,
    *,
    transport: str,
    port: int | None = None,
    extra: tuple[str, ...] = (),
    timeout: float = 30.0,
) -> tuple[int, str]:
    """Run one sipp call; return its exit status and its error/message traces."""
    with tempfile.TemporaryDirectory() as tmp:
        errors, messages = Path(tmp) / "errors.log", Path(tmp) / "messages.log"
        args = [
            "sipp", "-sf", str(SCENARIOS / scenario), "-m", "1", "-i", "127.0.0.1",
            "-p", str(port or free_udp_tcp_port()), "-t", "u1" if transport == "udp" else "t1",
            "-s", "1001", "-au", "1001", "-ap", "secret-1001", "-nostdin",
            "-timeout", f"{int(timeout)}s", "-timeout_error", "-max_retrans", "10",
            "-trace_err", "-error_file", str(errors),
            "-trace_msg", "-message_file", str(messages), *extra,
        ]  # fmt: skip
        if target is not None:
            args.append(target)
        proc = await asyncio.create_subprocess_exec(
            *args, cwd=tmp, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        _, stderr = await asyncio.wait_for(proc.communicate(), timeout + 15)
        trace = "\n".join(f.read_text(errors="replace") for f in (errors, messages) if f.exists())
        return proc.returncode or 0, stderr.decode(errors="replace") + trace


def box_port(service: SipService) -> int:
    return service.config.udp_port


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_phone_registers_with_digest(box: SipService, transport: str) -> None:
    code, trace = await sipp("register_auth.xml", f"127.0.0.1:{box_port(box)}", transport=transport)
    assert code == 0, trace
    bindings = box.core.registrar.lookup("1001", box._now())
    assert len(bindings) == 1
    assert bindings[0].flow.transport == transport
    assert bindings[0].remaining(box._now()) > 290
    assert "Authorization: Digest" in trace and "algorithm=MD5" in trace


@pytest.mark.parametrize(
    "scenario", ["register_wrong_password.xml", "register_without_credentials.xml"]
)
async def test_unauthenticated_phone_is_refused(box: SipService, scenario: str) -> None:
    code, trace = await sipp(
        scenario, f"127.0.0.1:{box_port(box)}", transport="udp", extra=("-ap", "not-the-password")
    )
    assert code == 0, trace
    assert box.core.registrar.lookup("1001", box._now()) == []


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_phone_calls_an_operator(box: SipService, transport: str) -> None:
    ua = CallLayerStandIn(box)
    code, trace = await sipp("phone_calls.xml", f"127.0.0.1:{box_port(box)}", transport=transport)
    assert code == 0, trace
    ended = await ua.wait_for(CallEnded)
    call = ua.of(IncomingCall)[0]
    assert isinstance(call, IncomingCall) and call.caller.display_name == "Phone 1001"
    assert call.sdp is not None and b"m=audio" in call.sdp
    assert ua.of(CallConfirmed) == [CallConfirmed(call.leg, None)]
    assert ended == CallEnded(call.leg, EndCause.REMOTE_HANGUP)
    assert "SIP/2.0 180" in trace and "SIP/2.0 200 OK" in trace


async def test_phone_cancels_while_ringing(box: SipService) -> None:
    ua = CallLayerStandIn(box, answer_after=None)
    code, trace = await sipp("phone_cancels.xml", f"127.0.0.1:{box_port(box)}", transport="udp")
    assert code == 0, trace
    ended = await ua.wait_for(CallEnded)
    assert isinstance(ended, CallEnded) and ended.cause is EndCause.REMOTE_CANCELLED
    assert "SIP/2.0 487" in trace


async def start_uas(scenario: str, transport: str) -> tuple[asyncio.Task[tuple[int, str]], int]:
    port = free_udp_tcp_port()
    task = asyncio.get_running_loop().create_task(
        sipp(scenario, None, transport=transport, port=port)
    )
    await asyncio.sleep(0.5)  # let sipp bind
    return task, port


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_box_calls_a_phone(box: SipService, transport: str) -> None:
    ua = CallLayerStandIn(box)
    uas, port = await start_uas("uas_answers.xml", transport)
    suffix = ";transport=tcp" if transport == "tcp" else ""
    leg = box.invite(
        f"sip:1001@127.0.0.1:{port}{suffix}", from_user="alice", sdp=SDP, display_name="Alice"
    )
    progress = await ua.wait_for(CallProgress)
    assert progress == CallProgress(leg, 180, "Ringing", None)
    answered = await ua.wait_for(CallAnswered)
    assert isinstance(answered, CallAnswered) and answered.sdp and b"m=audio" in answered.sdp
    await asyncio.sleep(0.2)
    box.hangup(leg)
    code, trace = await uas
    assert code == 0, trace
    assert ua.of(CallEnded) == [CallEnded(leg, EndCause.LOCAL_HANGUP)]


async def test_box_cancels_a_ringing_phone(box: SipService) -> None:
    ua = CallLayerStandIn(box)
    uas, port = await start_uas("uas_is_cancelled.xml", "udp")
    leg = box.invite(f"sip:1001@127.0.0.1:{port}", from_user="alice", sdp=SDP)
    await ua.wait_for(CallProgress)
    box.hangup(leg)
    code, trace = await uas
    assert code == 0, trace
    assert ua.of(CallEnded) == [CallEnded(leg, EndCause.CANCELLED)]
    assert "CANCEL sip:" in trace and "SIP/2.0 487" in trace


async def test_phone_call_survives_losing_every_first_copy(box: SipService) -> None:
    """Every message is lost once, both ways: the call completes on retransmissions."""
    ua = CallLayerStandIn(box)
    relay = LossyRelay(("127.0.0.1", box_port(box)))
    port = await relay.start()
    try:
        code, trace = await sipp(
            "phone_calls.xml", f"127.0.0.1:{port}", transport="udp", timeout=40
        )
    finally:
        relay.close()
    assert code == 0, trace
    ended = await ua.wait_for(CallEnded)
    assert isinstance(ended, CallEnded) and ended.cause is EndCause.REMOTE_HANGUP
    assert {"INVITE", "ACK", "BYE"} <= relay.kinds("outer")  # lost on the way to the box
    # Lost on the way to the phone: the 401 came again by Timer G, the 200 to the INVITE
    # by the box's 2xx retransmission (§13.3.1.4), the 200 to the BYE on the BYE's repeat.
    assert {"401", "200"} <= relay.kinds("inner")
    oks = [k for k in relay.forwarded if k.startswith(b"inner|SIP/2.0 200") and b"INVITE" in k]
    assert oks, "the 200 to the INVITE never got through"


async def test_box_call_survives_losing_every_first_copy(box: SipService) -> None:
    ua = CallLayerStandIn(box)
    uas_port = free_udp_tcp_port()
    relay = LossyRelay(("127.0.0.1", uas_port))
    port = await relay.start()
    uas = asyncio.get_running_loop().create_task(
        sipp("uas_answers.xml", None, transport="udp", port=uas_port, timeout=40)
    )
    await asyncio.sleep(0.5)
    try:
        leg = box.invite(f"sip:1001@127.0.0.1:{port}", from_user="alice", sdp=SDP)
        await ua.wait_for(CallAnswered, timeout=20)
        await asyncio.sleep(1.5)  # the lost ACK is re-sent when sipp repeats its 200
        box.hangup(leg)
        code, trace = await uas
    finally:
        relay.close()
    assert code == 0, trace
    assert {"INVITE", "ACK", "BYE"} <= relay.kinds("outer")
    assert {"180", "200"} <= relay.kinds("inner")


async def test_upstream_registration_with_digest() -> None:
    """The box registers an operator identity with a PBX that challenges it."""
    pbx_port = free_udp_tcp_port()
    pbx = asyncio.get_running_loop().create_task(
        sipp("upstream_registrar.xml", None, transport="udp", port=pbx_port)
    )
    await asyncio.sleep(0.5)
    port = free_udp_tcp_port()
    config = SipConfig(
        addresses=["127.0.0.1"], udp_port=port, tcp_port=0, tls_port=0,
        upstream=UpstreamConfig(enabled=True, registrar=f"sip:127.0.0.1:{pbx_port}",
                                username="box", password="pbx-secret", expires=120,
                                keepalive_interval=0),
    )  # fmt: skip
    operator = Operator(name="alice", password_hash="scrypt$1$1$1$" + "00" * 16 + "$" + "00" * 32)
    with tempfile.TemporaryDirectory() as state:
        health = Health()
        service = SipService(
            config,
            [operator],
            box_name="box",
            state_dir=Path(state),
            tls=None,
            health=health,
            metrics=Metrics(),
        )
        states: list[RegistrationState] = []
        service.subscribe(lambda e: states.append(e) if isinstance(e, RegistrationState) else None)
        await service.start()
        try:
            code, trace = await pbx
            assert code == 0, trace
            assert states and states[-1].state == "registered"
            assert (states[-1].aor, states[-1].expires) == ("alice", 120)
            assert "credentials seen" in trace or "Authorization: Digest" in trace
            assert health.snapshot().components[0].status.value == "ok"
        finally:
            await service.stop()
