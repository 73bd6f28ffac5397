"""Upstream registration (RFC 3261 §10.2): digest, refresh, backoff, 423, network change."""

from __future__ import annotations

from appliance.sip.address import Peer
from appliance.sip.auth import DigestServer
from appliance.sip.core import UpstreamSettings
from appliance.sip.events import RegistrationState
from appliance.sip.message import Request, Response, make_response
from appliance.sip.uri import SipUri
from tests.sip.scripted import Harness, harness

PBX = Peer("udp", "192.0.2.50", 5060)


def upstream_harness(**overrides: object) -> Harness:
    settings = UpstreamSettings(
        registrar=SipUri.parse("sip:192.0.2.50"), outbound_proxy=None, username="box",
        password="pbx-secret", expires=600, keepalive_interval=0, identities=("alice",),
    )  # fmt: skip
    return harness(upstream=settings, **overrides)


def sent_registers(h: Harness) -> list[Request]:
    return [
        m
        for m, peer in h.take()
        if isinstance(m, Request) and m.method == "REGISTER" and peer == PBX
    ]


def reply(h: Harness, request: Request, status: int, **headers: str) -> None:
    response: Response = make_response(request, status, "PBX", to_tag="pbx")
    for name, value in headers.items():
        response.headers.add(name.replace("_", "-"), value)
    h.deliver(response.encode(), PBX)


def test_register_challenge_refresh_and_network_change() -> None:
    h = upstream_harness()
    first = sent_registers(h)
    assert len(first) == 1 and first[0].headers.get("Expires") == "600"
    assert str(first[0].to.uri) == "sip:alice@192.0.2.50"
    pbx = DigestServer("pbx.example")
    reply(h, first[0], 401, WWW_Authenticate=pbx.challenges(h.now)[0])
    second = sent_registers(h)
    assert len(second) == 1
    assert second[0].call_id == first[0].call_id  # one Call-ID, rising CSeq (§10.2)
    assert second[0].cseq.number == first[0].cseq.number + 1
    verdict = pbx.verify(
        second[0].headers.get("Authorization") or "", "REGISTER", {"box": "pbx-secret"}.get, h.now
    )
    assert verdict.ok
    contact = second[0].headers.get("Contact") or ""
    reply(h, second[0], 200, Contact=f"{contact};expires=300")
    states = [e for e in h.take_events() if isinstance(e, RegistrationState)]
    assert states == [RegistrationState("alice", "registered", "registered for 300 s", 300)]
    h.advance(239)
    assert sent_registers(h) == []
    h.advance(241)  # refreshed at 80 % of the granted 300 s
    refresh = sent_registers(h)
    assert len({r.top_via.branch for r in refresh}) == 1  # one transaction, maybe repeated
    assert refresh[0].call_id == first[0].call_id
    h.core.network_changed(h.now)
    assert len(sent_registers(h)) == 1  # at once, with a fresh Contact


def test_backoff_grows_and_423_raises_the_interval() -> None:
    h = upstream_harness()
    request = sent_registers(h)[0]
    reply(h, request, 423, Min_Expires="1200")
    retry = sent_registers(h)
    assert len(retry) == 1 and retry[0].headers.get("Expires") == "1200"
    reply(h, retry[0], 503)
    failures = [e for e in h.take_events() if isinstance(e, RegistrationState)]
    assert failures[-1].state == "failed" and "503" in failures[-1].detail
    times = []
    for _ in range(4):
        start = h.now
        while not (sent := sent_registers(h)):
            h.advance(h.now + 1)
        times.append(h.now - start)
        reply(h, sent[0], 503)
    # Jittered exponential backoff: 15-30 s, then 30-60, 60-120, 120-240 (RFC 5626 §4.5).
    for step, delay in enumerate(times):
        base = 30 * 2**step
        assert base / 2 - 1 <= delay <= base + 1, times


def test_timeout_is_a_failure_with_backoff() -> None:
    h = upstream_harness()
    sent_registers(h)
    h.advance(33)  # Timer F
    states = [e for e in h.take_events() if isinstance(e, RegistrationState)]
    assert states and states[-1].state == "failed"
    assert "no answer from the registrar" in states[-1].detail
