"""A scripted SIP phone and a fake clock for driving the sans-I/O core message by message."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from appliance.sip.address import Peer
from appliance.sip.auth import Challenge, DigestClient
from appliance.sip.core import CoreConfig, SipCore
from appliance.sip.events import SipEvent
from appliance.sip.message import Request, Response, make_response, parse_message
from appliance.sip.transaction import TimerValues

BOX = "192.0.2.1"


def core_config(**overrides: Any) -> CoreConfig:
    values: dict[str, Any] = {
        "domain": "box.example",
        "ports": {"udp": 5060, "tcp": 5060, "tls": 5061},
        "timers": TimerValues(),
        "accounts": {"1001": "secret-1001", "1002": "secret-1002"},
        "local_address": lambda peer: BOX,
        "local_hosts": frozenset({BOX}),
        "date": lambda: "Sat, 13 Nov 2010 23:29:00 GMT",
    }
    values.update(overrides)
    return CoreConfig(**values)


@dataclass
class Harness:
    """A core, a clock, and everything it sent and reported."""

    core: SipCore
    now: float = 0.0
    sent: list[tuple[Request | Response, Peer]] = field(default_factory=list)
    events: list[SipEvent] = field(default_factory=list)

    def collect(self) -> None:
        for data, peer in self.core.datagrams_to_send():
            message = parse_message(data, stream=peer.transport != "udp")
            self.sent.append((message, peer))
        while (event := self.core.next_event()) is not None:
            self.events.append(event)

    def deliver(self, data: bytes, source: Peer) -> None:
        self.core.receive(data, source, self.now)
        self.collect()

    def advance(self, until: float) -> None:
        """Run the clock forward, firing every timer on the way."""
        while (deadline := self.core.get_timer()) is not None and deadline <= until:
            self.now = max(self.now, deadline)
            self.core.handle_timer(self.now)
            self.collect()
        self.now = until

    def take(self) -> list[tuple[Request | Response, Peer]]:
        self.collect()
        out, self.sent = self.sent, []
        return out

    def take_events(self) -> list[SipEvent]:
        self.collect()
        out, self.events = self.events, []
        return out

    def responses(self) -> list[Response]:
        return [m for m, _ in self.take() if isinstance(m, Response)]


def harness(**overrides: Any) -> Harness:
    h = Harness(SipCore(core_config(**overrides)))
    h.core.start(0.0)
    h.collect()
    return h


@dataclass
class Phone:
    """Builds the messages a LAN phone would send."""

    user: str = "1001"
    password: str = "secret-1001"
    host: str = "192.0.2.10"
    port: int = 5062
    transport: str = "udp"
    connection: int | None = None
    cseq: int = 0

    @property
    def peer(self) -> Peer:
        return Peer(self.transport, self.host, self.port, self.connection)

    def request(
        self,
        method: str,
        uri: str = f"sip:alice@{BOX}",
        *,
        call_id: str | None = None,
        from_tag: str = "ph1",
        to_tag: str | None = None,
        to: str | None = None,
        branch: str | None = None,
        cseq: int | None = None,
        cseq_method: str | None = None,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        content_type: str = "application/sdp",
        contact: bool = True,
    ) -> bytes:
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        to_value = to or f"<{uri}>"
        if to_tag:
            to_value += f";tag={to_tag}"
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/{self.transport.upper()} {self.host}:{self.port};"
            f"branch={branch or 'z9hG4bK' + secrets.token_hex(6)};rport",
            "Max-Forwards: 70",
            f"From: <sip:{self.user}@box.example>;tag={from_tag}",
            f"To: {to_value}",
            f"Call-ID: {call_id or 'call-' + secrets.token_hex(4)}",
            f"CSeq: {cseq} {cseq_method or method}",
        ]
        if contact:
            lines.append(f"Contact: <sip:{self.user}@{self.host}:{self.port}>")
        for name, value in headers or []:
            lines.append(f"{name}: {value}")
        if body:
            lines.append(f"Content-Type: {content_type}")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def authorize(self, data: bytes, challenge: Response, *, password: str | None = None) -> bytes:
        """The same request with credentials for ``challenge`` and the next CSeq."""
        request = parse_message(data)
        assert isinstance(request, Request)
        parsed = Challenge.parse(challenge.headers.lines("WWW-Authenticate")[0], proxy=False)
        assert parsed is not None
        client = DigestClient(self.user, password or self.password)
        name, value = client.authorization(parsed, request.method, str(request.uri))
        self.cseq += 1
        request.headers.set("CSeq", f"{self.cseq} {request.cseq.method}")
        via = request.headers.values("Via")[0].split(";branch=")[0]
        request.headers.set("Via", f"{via};branch=z9hG4bK{secrets.token_hex(6)};rport")
        request.headers.add(name, value)
        return request.encode()

    def ack(self, data: bytes, final: Response) -> bytes:
        """The ACK for a non-2xx final response: same branch and CSeq number (§17.1.1.3)."""
        request = parse_message(data)
        assert isinstance(request, Request)
        ack = Request("ACK", request.uri)
        ack.headers.add("Via", request.headers.values("Via")[0])
        for name in ("Max-Forwards", "From", "Call-ID"):
            ack.headers.add(name, request.headers.get(name) or "")
        ack.headers.add("To", final.headers.get("To") or "")
        ack.headers.add("CSeq", f"{request.cseq.number} ACK")
        return ack.encode()

    def answer(
        self,
        request: Request,
        status: int,
        *,
        to_tag: str = "phone-tag",
        body: bytes = b"",
        headers: list[tuple[str, str]] | None = None,
    ) -> bytes:
        response = make_response(request, status, "Phone says", to_tag=to_tag)
        if status < 300 or status in (180, 183):
            response.headers.add("Contact", f"<sip:{self.user}@{self.host}:{self.port}>")
        for name, value in headers or []:
            response.headers.add(name, value)
        if body:
            response.headers.add("Content-Type", "application/sdp")
            response.body = body
        return response.encode()
