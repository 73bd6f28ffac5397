"""The SIP user agent core of the box, sans-I/O (RFC 3261 §8, §10, §12-§17, RFC 4028).

Bytes and a clock go in (:meth:`SipCore.receive`, :meth:`SipCore.handle_timer`);
messages to send (:meth:`SipCore.datagrams_to_send`) and events for the call layer
(:meth:`SipCore.next_event`) come out. Actions (invite, answer, bye, ...) are methods.
The core is a user agent for the browsers' call legs, the registrar of the LAN phones,
and a registering client toward an optional upstream PBX. It never reads a clock,
opens a socket or sleeps; :meth:`SipCore.get_timer` says when it next needs time.

Nothing a peer sends may raise out of :meth:`SipCore.receive`: malformed requests get a
400 with the reason when they can be answered, and are dropped (and counted) otherwise.
"""

from __future__ import annotations

import enum
import heapq
import ipaddress
import itertools
import logging
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from appliance.sip.address import DEFAULT_PORTS, Peer, bracket, next_hop
from appliance.sip.auth import DigestClient, DigestServer, best_challenge
from appliance.sip.dialog import Dialog
from appliance.sip.events import (
    BindingsChanged,
    CallAnswered,
    CallConfirmed,
    CallEnded,
    CallProgress,
    DtmfReceived,
    EndCause,
    IncomingCall,
    MessageReceived,
    OfferAnswered,
    OfferFailed,
    OfferReceived,
    RegistrationState,
    RequestCompleted,
    SipEvent,
    UpstreamReachability,
)
from appliance.sip.grammar import SipSyntaxError
from appliance.sip.headers import NameAddr, Via, parse_int, parse_tokens
from appliance.sip.message import (
    DEFAULT_LIMITS,
    Limits,
    ParseError,
    Request,
    Response,
    parse_message,
)
from appliance.sip.message import make_response as _make_response
from appliance.sip.registrar import Registrar
from appliance.sip.registration import Attempt, RegistrationClient, RegState
from appliance.sip.transaction import (
    MAGIC_COOKIE,
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    ClientTransaction,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    State,
    TimerValues,
    TxEvent,
    TxEventKind,
    is_reliable,
    server_key,
)
from appliance.sip.uri import SipUri, TelUri, Uri, parse_uri

log = logging.getLogger(__name__)

ALLOW = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER", "MESSAGE", "INFO", "UPDATE")
KNOWN_UNSUPPORTED = ("SUBSCRIBE", "NOTIFY", "PUBLISH", "REFER", "PRACK")  # 405 (§8.2.1)
SUPPORTED = ("timer",)  # RFC 4028
MESSAGE_TYPES = ("text/plain", "message/cpim", "text/html", "application/im-iscomposing+xml")
DTMF_TYPES = ("application/dtmf-relay", "application/dtmf")
DTMF_DIGITS = frozenset("0123456789*#ABCD")
REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 400: "Bad Request", 401: "Unauthorized",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
    406: "Not Acceptable", 415: "Unsupported Media Type", 416: "Unsupported URI Scheme",
    420: "Bad Extension",
    422: "Session Interval Too Small", 423: "Interval Too Brief",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 491: "Request Pending", 500: "Server Internal Error",
    501: "Not Implemented", 503: "Service Unavailable", 505: "Version Not Supported",
    513: "Message Too Large", 603: "Decline",
}  # fmt: skip


def reason_phrase(status: int) -> str:
    """The usual reason phrase for a status code (§21)."""
    return REASONS.get(status, "Unknown")


def new_tag() -> str:
    """A tag with at least 32 bits of randomness (§19.3)."""
    return secrets.token_hex(6)


def new_branch() -> str:
    """A branch starting with the magic cookie, unique in space and time (§8.1.1.7)."""
    return MAGIC_COOKIE + secrets.token_hex(10)


@dataclass(frozen=True)
class UpstreamSettings:
    """The optional upstream registrar/PBX."""

    registrar: SipUri
    outbound_proxy: SipUri | None
    username: str
    password: str
    expires: int
    keepalive_interval: int
    identities: tuple[str, ...]


@dataclass(frozen=True)
class CoreConfig:
    """Everything the core needs to know about the box."""

    domain: str
    ports: dict[str, int]
    user_agent: str = "appliance"
    timers: TimerValues = field(default_factory=TimerValues)
    limits: Limits = DEFAULT_LIMITS
    accounts: dict[str, str] = field(default_factory=dict)
    require_auth: bool = True
    trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600
    digest_algorithms: tuple[str, ...] = ("SHA-256", "MD5")
    session_expires: int = 1800
    min_se: int = 90
    upstream: UpstreamSettings | None = None
    local_address: Callable[[Peer], str] = lambda peer: "127.0.0.1"
    local_hosts: frozenset[str] = frozenset()
    date: Callable[[], str] | None = None  # the Date header value (§20.17), from the adapter


class Scheduled(Protocol):
    """Anything with a deadline the core schedules."""

    def deadline(self) -> float | None: ...


class LegState(enum.Enum):
    """Where a call leg stands."""

    CALLING = "calling"  # UAC: INVITE sent, nothing back yet
    EARLY = "early"  # UAC: provisional received; UAS: ringing
    INCOMING = "incoming"  # UAS: INVITE received, no final answer yet
    ANSWERED = "answered"  # UAS: 2xx sent, waiting for the ACK
    CONFIRMED = "confirmed"
    ENDED = "ended"


@dataclass(eq=False)
class Leg:
    """One call leg: an INVITE dialog with the box as UAC or UAS."""

    id: str
    role: str
    invite: Request
    peer: Peer
    state: LegState
    tx: ClientInviteTransaction | ServerInviteTransaction | None = None
    dialog: Dialog | None = None
    local_sdp: bytes | None = None
    contact: str = ""
    credentials: DigestClient | None = None
    auth_nonces: set[str] = field(default_factory=set)
    hidden: bool = False  # ended for the user; SIP cleanup may still run
    cancel_pending: bool = False
    bye_pending: bool = False
    ack: Request | None = None
    ack_peer: Peer | None = None
    ok: Response | None = None
    ok_interval: float = 0.0
    ok_next: float | None = None
    ok_giveup: float | None = None
    offer_tx: AnyServer | None = None
    offer_method: str = ""
    reoffer_key: tuple[str, ...] | None = None
    reoffer_sdp: bytes | None = None
    reoffer_retry: float | None = None
    reoffer_is_refresh: bool = False
    remote_sdp: bytes | None = None
    session_expires: int | None = None
    refresher_local: bool = False
    session_due: float | None = None

    def deadline(self) -> float | None:
        """The earliest of this leg's own timers."""
        times = [
            t
            for t in (self.ok_next, self.ok_giveup, self.reoffer_retry, self.session_due)
            if t is not None
        ]
        return min(times) if times else None


@dataclass(eq=False)
class Upstream:
    """Registration clients and keepalive state for the upstream."""

    settings: UpstreamSettings
    clients: dict[str, RegistrationClient]
    credentials: DigestClient
    keepalive_at: float | None = None
    reachable: bool | None = None

    def deadline(self) -> float | None:
        """The earliest registration or keepalive deadline."""
        times = [c.deadline for c in self.clients.values() if c.deadline is not None]
        if self.keepalive_at is not None:
            times.append(self.keepalive_at)
        return min(times) if times else None


ClientHandler = Callable[[TxEvent, float], None]
AnyServer = ServerInviteTransaction | ServerNonInviteTransaction


class SipCore:
    """The box's SIP user agent, registrar and registration client."""

    def __init__(self, config: CoreConfig, now: float = 0.0) -> None:
        self.config = config
        self.registrar = Registrar(config.min_expires, config.max_expires, config.default_expires)
        self.digest = DigestServer(
            config.domain or "appliance", algorithms=config.digest_algorithms
        )
        self.legs: dict[str, Leg] = {}
        self.stats: dict[str, int] = {"received": 0, "malformed": 0, "sent": 0, "bad_requests": 0}
        self._out: list[tuple[bytes, Peer]] = []
        self._events: deque[SipEvent] = deque()
        self._client: dict[tuple[str, ...], ClientTransaction] = {}
        self._client_handler: dict[tuple[str, ...], ClientHandler] = {}
        self._client_peer: dict[tuple[str, ...], Peer] = {}
        self._server: dict[tuple[str, ...], AnyServer] = {}
        self._server_peer: dict[tuple[str, ...], Peer] = {}
        self._merge: dict[tuple[str, str, int, str], str] = {}  # §8.2.2.2 -> branch
        self._dialogs: dict[tuple[str, str, str], Leg] = {}
        self._uac_early: dict[tuple[str, str], Leg] = {}  # (Call-ID, local tag) before a To tag
        self._pending_messages: dict[str, tuple[AnyServer, Peer]] = {}
        self._heap: list[tuple[float, int, Any]] = []
        self._counter = itertools.count()
        self.upstream: Upstream | None = None
        if config.upstream is not None:
            settings = config.upstream
            credentials = DigestClient(settings.username, settings.password)
            clients = {
                aor: RegistrationClient(aor, settings.expires, credentials, str(settings.registrar))
                for aor in settings.identities
            }
            self.upstream = Upstream(settings, clients, credentials)

    # ----- I/O surface ---------------------------------------------------------------

    def start(self, now: float) -> None:
        """Begin upstream registration and keepalives."""
        if self.upstream is None:
            return
        for client in self.upstream.clients.values():
            self._register_upstream(client, client.start(now), now)
        if self.upstream.settings.keepalive_interval:
            self.upstream.keepalive_at = now + self.upstream.settings.keepalive_interval
        self._schedule(self.upstream)

    def datagrams_to_send(self) -> list[tuple[bytes, Peer]]:
        """Messages queued for the transports since the last call."""
        out, self._out = self._out, []
        self.stats["sent"] += len(out)
        return out

    def next_event(self) -> SipEvent | None:
        """The next event for the layer above, or None."""
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must next be called."""
        heap = self._heap
        while heap:
            when, _, owner = heap[0]
            current = owner.deadline()
            if current is None or current > when + 1e-9:
                heapq.heappop(heap)  # stale entry; a fresh one exists if still needed
                if current is not None:
                    heapq.heappush(heap, (current, next(self._counter), owner))
                continue
            return when
        return None

    def handle_timer(self, now: float) -> None:
        """Fire everything due at ``now``."""
        while self._heap and self._heap[0][0] <= now:
            _, _, owner = heapq.heappop(self._heap)
            current = owner.deadline()
            if current is None or current > now:
                if current is not None:
                    self._schedule(owner)
                continue
            if isinstance(owner, ClientTransaction):
                self._client_events(owner, owner.handle_timer(now), now)
            elif isinstance(owner, ServerInviteTransaction | ServerNonInviteTransaction):
                self._server_events(owner, owner.handle_timer(now), now)
            elif isinstance(owner, Leg):
                self._leg_timer(owner, now)
            elif isinstance(owner, Upstream):
                self._upstream_timer(owner, now)
            elif owner is self.registrar:
                self._expire_bindings(now)

    def _schedule(self, owner: Any) -> None:
        when = owner.deadline()
        if when is not None:
            heapq.heappush(self._heap, (when, next(self._counter), owner))

    def receive(self, data: bytes, source: Peer, now: float) -> None:
        """One datagram or one stream-framed message from ``source``."""
        self.stats["received"] += 1
        try:
            message = parse_message(
                data, limits=self.config.limits, stream=source.transport != "udp"
            )
        except ParseError as exc:
            self.stats["malformed"] += 1
            self._answer_unparsable(exc, source, now)
            return
        try:
            if isinstance(message, Request):
                self._receive_request(message, source, now)
            else:
                self._receive_response(message, source, now)
        except SipSyntaxError as exc:
            # Before a transaction exists (no usable Via, Call-ID, CSeq...).
            self.stats["malformed"] += 1
            if isinstance(message, Request) and message.method != "ACK":
                self._reply_stateless(message, source, 400, f"Bad Request ({exc})")
            else:
                log.info("dropped a malformed message from %s: %s", source, exc)
        except Exception:
            # A defect here must not take the service down with it; it is logged loudly.
            self.stats["errors"] = self.stats.get("errors", 0) + 1
            log.exception("error while handling a message from %s", source)

    def transport_error(self, peer: Peer, now: float) -> None:
        """The transport could not reach ``peer``: fail the transactions sending there."""
        for key, tx_peer in list(self._client_peer.items()):
            if _same_peer(tx_peer, peer):
                tx = self._client.get(key)
                if tx is not None:
                    self._client_events(tx, tx.transport_error(), now)
        for key, tx_peer in list(self._server_peer.items()):
            if _same_peer(tx_peer, peer):
                server = self._server.get(key)
                if server is not None:
                    self._server_events(server, server.transport_error(), now)

    # ----- parse failures and stateless answers -------------------------------------

    def _answer_unparsable(self, exc: ParseError, source: Peer, now: float) -> None:
        head = exc.head
        if head is None or head.method == "ACK":
            log.info("dropped an unparsable message from %s: %s", source, exc.reason)
            return
        reason = reason_phrase(exc.status)
        if exc.status == 400:
            reason = f"Bad Request ({exc.reason})"
        self._reply_stateless(head, source, exc.status, reason)

    def _reply_stateless(self, request: Request, source: Peer, status: int, reason: str) -> None:
        """Answer without a transaction when the request cannot be handled (§8.2).

        With a usable top Via the response follows §18.2.2; with a broken one it goes back
        to the address the request came from, its header fields copied as received.
        """
        if not request.headers.lines("Via"):
            log.info("cannot answer a request without Via from %s", source)
            return
        try:
            self._stamp_via(request, source)
            peer = self._response_peer(request, source)
        except SipSyntaxError:
            peer = source
        response = _make_response(request, status, _one_line(reason), to_tag=new_tag())
        self.stats["bad_requests"] += 1
        self._out.append((response.encode(), peer))

    # ----- requests -----------------------------------------------------------------

    def _stamp_via(self, request: Request, source: Peer) -> None:
        """Add received/rport to the top Via (§18.2.1, RFC 3581 §4)."""
        values = request.headers.values("Via")
        if not values:
            raise SipSyntaxError("missing Via")
        top = Via.parse(values[0])
        params: dict[str, str | None] = {}
        if top.host.strip("[]") != source.host:
            params["received"] = source.host
        if "rport" in top.params:
            params["received"] = source.host
            params["rport"] = str(source.port)
        if params:
            rest = values[1:]
            request.headers.remove("Via")
            for value in [str(top.with_params(**params)), *rest]:
                request.headers.add("Via", value)

    def _response_peer(self, request: Request, source: Peer) -> Peer:
        """Where responses go (§18.2.2, RFC 3581 §4)."""
        via = request.top_via
        if is_reliable(source.transport):
            return Peer(
                source.transport,
                source.host,
                via.port or DEFAULT_PORTS.get(source.transport, 5060),
                source.connection,
            )
        rport = via.params.get("rport")
        if rport and rport.isdigit():
            return Peer("udp", source.host, int(rport))
        return Peer("udp", via.params.get("received") or source.host, via.port or 5060)

    def _receive_request(self, request: Request, source: Peer, now: float) -> None:
        self._stamp_via(request, source)
        key = server_key(request)
        existing = self._server.get(key)
        if existing is not None:
            if (
                request.method == "ACK"
                and isinstance(existing, ServerInviteTransaction)
                and existing.state is State.ACCEPTED
            ):
                self._ack_for_2xx(request, now)  # an ACK for 2xx reusing the INVITE's branch
                return
            self._server_events(existing, existing.receive_request(request, now), now)
            return
        if request.method == "ACK":
            self._ack_for_2xx(request, now)
            return
        peer = self._response_peer(request, source)
        reliable = is_reliable(source.transport)
        tx: AnyServer
        if request.method == "INVITE":
            tx = ServerInviteTransaction(request, reliable, self.config.timers)
        else:
            tx = ServerNonInviteTransaction(request, reliable, self.config.timers)
        self._server[tx.key] = tx
        self._server_peer[tx.key] = peer
        if request.method == "INVITE":
            self._respond(tx, 100, now)  # §17.2.1: absorb retransmissions at once
        try:
            problem = self._check_request(request)
            if problem is not None:
                status, reason, extra = problem
                self._respond(tx, status, now, reason=reason, headers=extra)
                return
            handler = {
                "INVITE": self._on_invite, "CANCEL": self._on_cancel, "BYE": self._on_bye,
                "OPTIONS": self._on_options, "REGISTER": self._on_register,
                "MESSAGE": self._on_message, "INFO": self._on_info, "UPDATE": self._on_update,
            }[request.method]  # fmt: skip
            handler(request, tx, source, now)
        except SipSyntaxError as exc:
            self.stats["malformed"] += 1
            if tx.state in (State.TRYING, State.PROCEEDING):
                self._respond(tx, 400, now, reason=f"Bad Request ({_one_line(str(exc))})")

    def _check_request(self, request: Request) -> tuple[int, str, list[tuple[str, str]]] | None:
        """UAS request checks in the order of §8.2; None when the request may proceed."""
        method = request.method
        if method not in ALLOW:
            if method in KNOWN_UNSUPPORTED:
                return 405, "Method Not Allowed", [("Allow", ", ".join(ALLOW))]
            return 501, "Not Implemented", [("Allow", ", ".join(ALLOW))]
        cseq = request.cseq
        _ = (request.from_, request.to, request.call_id)  # mandatory (§8.1.1)
        if cseq.method != method:
            return 400, "Bad Request (CSeq method does not match)", []
        if not isinstance(request.uri, SipUri):  # §8.2.2.1
            return 416, "Unsupported URI Scheme", []
        if request.to.tag is None and method != "CANCEL":  # §8.2.2.2 merged requests
            branch = request.top_via.branch or ""
            merge_key = (request.from_.tag or "", request.call_id, cseq.number, method)
            seen = self._merge.get(merge_key)
            if seen is not None and seen != branch:
                return 482, "Loop Detected", []
            self._merge[merge_key] = branch
        required = parse_tokens(request.headers.values("Require"))
        unsupported = [o for o in required if o not in SUPPORTED]
        if unsupported and method not in ("CANCEL",):  # §8.2.2.3
            return 420, "Bad Extension", [("Unsupported", ", ".join(unsupported))]
        if method == "INVITE" and "Accept" in request.headers:
            # §21.4.7: the answer is SDP; a UAC that accepts none of it gets 406.
            accepts = [a.split(";")[0].strip().lower() for a in request.headers.values("Accept")]
            if not {"application/sdp", "application/*", "*/*"} & set(accepts):
                return 406, "Not Acceptable", [("Accept", "application/sdp")]
        if request.body:
            encodings = [e.lower() for e in request.headers.values("Content-Encoding")]
            if any(e != "identity" for e in encodings):  # §8.2.3
                return 415, "Unsupported Media Type", [("Accept-Encoding", "identity")]
            accepted = self._accepted_types(method)
            if accepted and request.content_type not in accepted:
                return 415, "Unsupported Media Type", [("Accept", ", ".join(accepted))]
        return None

    @staticmethod
    def _accepted_types(method: str) -> tuple[str, ...]:
        if method in ("INVITE", "UPDATE", "ACK", "BYE"):
            return ("application/sdp",) if method != "BYE" else ()
        if method == "MESSAGE":
            return MESSAGE_TYPES
        if method == "INFO":
            return DTMF_TYPES
        return ()

    def _respond(
        self,
        tx: AnyServer,
        status: int,
        now: float,
        *,
        reason: str | None = None,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        content_type: str | None = None,
        to_tag: str | None = None,
    ) -> Response:
        response = _make_response(
            tx.request,
            status,
            reason or reason_phrase(status),
            to_tag=to_tag or (new_tag() if status > 100 else None),
        )
        for name, value in headers or []:
            response.headers.add(name, value)
        response.headers.add("Server", self.config.user_agent)
        if body:
            response.headers.add("Content-Type", content_type or "application/sdp")
            response.body = body
        events = tx.send_response(response, now)
        self._server_events(tx, events, now)
        return response

    def _server_events(self, tx: AnyServer, events: list[TxEvent], now: float) -> None:
        peer = self._server_peer.get(tx.key)
        if peer is not None:
            for data in tx.outbox:
                self._out.append((data, peer))
        tx.outbox.clear()
        for event in events:
            if event.kind is TxEventKind.TIMEOUT and isinstance(tx, ServerInviteTransaction):
                log.info("no ACK for a final response to %s", tx.request.call_id)
            if event.kind is TxEventKind.TRANSPORT_ERROR:
                self._leg_transport_error(tx.request, now)
        if tx.terminated:
            self._server.pop(tx.key, None)
            self._server_peer.pop(tx.key, None)
            self._forget_merge(tx.request)
        else:
            self._schedule(tx)

    def _forget_merge(self, request: Request) -> None:
        try:
            key = (request.from_.tag or "", request.call_id, request.cseq.number, request.method)
        except SipSyntaxError:
            return
        self._merge.pop(key, None)

    # ----- INVITE as UAS ---------------------------------------------------------------

    def _authenticate(
        self, request: Request, tx: AnyServer, source: Peer, now: float
    ) -> tuple[bool, str | None]:
        """Digest-check a request from a LAN phone (§22.1).

        Returns (True, user or None when no check applies), or (False, None) after
        answering with a challenge, 403 or 400.
        """
        if not self.config.require_auth or self._trusted(source.host):
            return True, None
        header = request.headers.get("Authorization")
        if header is None:
            self._challenge(tx, now)
            return False, None
        verdict = self.digest.verify(header, request.method, self.config.accounts.get, now)
        if verdict.ok:
            return True, verdict.username
        log.info("refused %s from %s: %s", request.method, source, verdict.reason)
        if verdict.stale:
            self._challenge(tx, now, stale=True)
        elif verdict.reason in ("nonce not issued here", "not Digest credentials"):
            self._challenge(tx, now)  # a nonce from before a restart; an unknown scheme
        elif verdict.reason in (
            "wrong password",
            "unknown user",
            "replayed nonce count",
            "wrong realm or algorithm",
        ):
            self._respond(tx, 403, now, reason=f"Forbidden ({verdict.reason})")
        else:
            self._respond(tx, 400, now, reason=f"Bad Request ({verdict.reason})")
        return False, None

    def _challenge(self, tx: AnyServer, now: float, *, stale: bool = False) -> None:
        headers = [("WWW-Authenticate", c) for c in self.digest.challenges(now, stale=stale)]
        self._respond(tx, 401, now, headers=headers)

    def _trusted(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in net for net in self.config.trusted)

    def _on_invite(self, request: Request, tx: AnyServer, source: Peer, now: float) -> None:
        assert isinstance(tx, ServerInviteTransaction)
        if request.to.tag is not None:
            self._on_reinvite(request, tx, now)
            return
        authenticated, account = self._authenticate(request, tx, source, now)
        if not authenticated:
            return
        contacts = request.contacts
        if contacts is None or len(contacts) > 1:  # §8.1.1.8; none is tolerated (RFC 2543)
            self._respond(tx, 400, now, reason="Bad Request (INVITE needs one Contact)")
            return
        timer = self._session_timer_for(request)
        if isinstance(timer, tuple) and timer[0] == 422:
            self._respond(tx, 422, now, headers=[("Min-SE", str(self.config.min_se))])
            return
        leg_id = secrets.token_hex(8)
        local_tag = new_tag()
        leg = Leg(leg_id, "uas", request, self._server_peer[tx.key], LegState.INCOMING, tx=tx)
        leg.dialog = Dialog.as_uas(request, local_tag, self._server_peer[tx.key])
        leg.contact = self._contact(
            request.uri.user if isinstance(request.uri, SipUri) else None, source
        )
        if isinstance(timer, tuple):
            leg.session_expires, leg.refresher_local = timer[1], timer[2]
        self.legs[leg_id] = leg
        self._dialogs[leg.dialog.id] = leg
        uri = request.uri
        user = uri.user_unescaped if isinstance(uri, SipUri) and uri.user else ""
        sdp = request.body if request.content_type == "application/sdp" else None
        leg.remote_sdp = sdp or None
        self._events.append(
            IncomingCall(
                leg_id,
                request.from_,
                request.to,
                user or "",
                sdp or None,
                request.headers.copy(),
                source,
                account,
            )
        )

    def _session_timer_for(self, request: Request) -> tuple[int, int, bool] | None:
        """RFC 4028 §9 as UAS: (200, interval, we refresh) or (422, 0, False) or None."""
        if not self.config.session_expires:
            return None
        value = request.headers.get("Session-Expires")
        supported = "timer" in [t.lower() for t in request.headers.values("Supported")]
        if value is None:
            if not supported:
                return None
            return (200, self.config.session_expires, False)
        parts = value.split(";")
        try:
            interval = parse_int(parts[0], maximum=2**31, what="Session-Expires") or 0
        except SipSyntaxError:
            return None
        if interval < self.config.min_se:
            return (422, 0, False)
        interval = (
            min(interval, self.config.session_expires)
            if interval
            else (self.config.session_expires)
        )
        interval = max(interval, self.config.min_se)
        refresher = next(
            (
                p.split("=", 1)[1].strip().lower()
                for p in parts[1:]
                if p.strip().lower().startswith("refresher=")
            ),
            None,
        )
        if refresher is None:
            refresher = "uac" if supported else "uas"
        return (200, interval, refresher == "uas")

    def _session_headers(self, leg: Leg, request: Request) -> list[tuple[str, str]]:
        if leg.session_expires is None:
            return []
        supported = "timer" in [t.lower() for t in request.headers.values("Supported")]
        us_role = leg.role  # our role in the dialog
        refresher = us_role if leg.refresher_local else ("uas" if us_role == "uac" else "uac")
        headers = [("Session-Expires", f"{leg.session_expires};refresher={refresher}")]
        if supported:
            headers.append(("Require", "timer"))
        return headers

    def _arm_session_timer(self, leg: Leg, now: float) -> None:
        """Refresh at half the interval, or BYE before expiry (RFC 4028 §10)."""
        if leg.session_expires is None:
            leg.session_due = None
            return
        interval = leg.session_expires
        if leg.refresher_local:
            leg.session_due = now + interval / 2
        else:
            leg.session_due = now + interval - min(32, interval / 3)
        self._schedule(leg)

    def ringing(self, leg_id: str, now: float, sdp: bytes | None = None) -> None:
        """Send 180 Ringing (or 183 with early media SDP) for an incoming call."""
        leg = self.legs.get(leg_id)
        if leg is None or leg.role != "uas" or leg.state not in (LegState.INCOMING, LegState.EARLY):
            return
        assert isinstance(leg.tx, ServerInviteTransaction) and leg.dialog is not None
        status = 183 if sdp else 180
        headers = [("Contact", leg.contact)]
        self._respond(
            leg.tx, status, now, headers=headers, body=sdp or b"", to_tag=leg.dialog.local_tag
        )
        leg.state = LegState.EARLY

    def answer(self, leg_id: str, sdp: bytes, now: float) -> None:
        """Answer an incoming call with 200 and our SDP; retransmit until ACK (§13.3.1.4)."""
        leg = self.legs.get(leg_id)
        if leg is None or leg.role != "uas" or leg.state not in (LegState.INCOMING, LegState.EARLY):
            return
        assert isinstance(leg.tx, ServerInviteTransaction) and leg.dialog is not None
        headers = [
            ("Contact", leg.contact),
            ("Allow", ", ".join(ALLOW)),
            ("Supported", ", ".join(SUPPORTED)),
            *self._session_headers(leg, leg.invite),
        ]
        response = self._respond(
            leg.tx, 200, now, headers=headers, body=sdp, to_tag=leg.dialog.local_tag
        )
        leg.local_sdp = sdp
        leg.state = LegState.ANSWERED
        self._start_2xx_retransmission(leg, response, now)

    def _start_2xx_retransmission(self, leg: Leg, response: Response, now: float) -> None:
        leg.ok = response
        t1 = self.config.timers.t1
        leg.ok_interval = t1
        leg.ok_next = None if is_reliable(leg.peer.transport) else now + t1
        leg.ok_giveup = now + 64 * t1
        self._schedule(leg)

    def reject(self, leg_id: str, status: int, now: float, reason: str | None = None) -> None:
        """Refuse an incoming call with a final non-2xx response."""
        leg = self.legs.get(leg_id)
        if leg is None or leg.role != "uas" or leg.state not in (LegState.INCOMING, LegState.EARLY):
            return
        assert isinstance(leg.tx, ServerInviteTransaction) and leg.dialog is not None
        self._respond(leg.tx, status, now, reason=reason, to_tag=leg.dialog.local_tag)
        self._end(leg, EndCause.REJECTED, status, reason or reason_phrase(status))

    def _ack_for_2xx(self, request: Request, now: float) -> None:
        """The ACK of a 2xx is its own transaction; match it to the dialog (§13.3.1.4)."""
        leg = self._dialogs.get((request.call_id, request.to.tag or "", request.from_.tag or ""))
        if leg is None or leg.ok is None:
            return
        if request.cseq.number != leg.ok.cseq.number:
            return
        leg.ok = None
        leg.ok_next = leg.ok_giveup = None
        sdp = request.body if request.body and request.content_type == "application/sdp" else None
        if leg.state is LegState.ANSWERED:
            leg.state = LegState.CONFIRMED
            self._arm_session_timer(leg, now)
            if not leg.hidden:
                self._events.append(CallConfirmed(leg.id, sdp))
            if leg.bye_pending:
                self._send_bye(leg, now)
        elif sdp is not None and not leg.hidden:
            self._events.append(CallConfirmed(leg.id, sdp))

    def _on_cancel(self, request: Request, tx: AnyServer, source: Peer, now: float) -> None:
        """CANCEL of a pending INVITE (§9.2): 200 to CANCEL, 487 to the INVITE."""
        invite_tx = self._server.get(server_key(request, "INVITE"))
        if not isinstance(invite_tx, ServerInviteTransaction):
            self._respond(tx, 481, now)
            return
        self._respond(tx, 200, now)
        leg = next((lg for lg in self.legs.values() if lg.tx is invite_tx), None)
        if invite_tx.state is State.PROCEEDING:
            tag = leg.dialog.local_tag if leg is not None and leg.dialog else None
            self._respond(invite_tx, 487, now, to_tag=tag)
            if leg is not None:
                self._end(leg, EndCause.REMOTE_CANCELLED, 487, "Request Terminated")

    def _in_dialog(self, request: Request, tx: AnyServer, now: float) -> Leg | None:
        """The leg of an in-dialog request, or None after answering 481/500 (§12.2.2)."""
        leg = self._dialogs.get((request.call_id, request.to.tag or "", request.from_.tag or ""))
        if leg is None or leg.dialog is None or leg.state is LegState.ENDED:
            self._respond(tx, 481, now)
            return None
        if not leg.dialog.accept_remote_cseq(request.cseq.number):
            self._respond(
                tx,
                500,
                now,
                reason="Server Internal Error (CSeq out of order)",
                headers=[("Retry-After", "1")],
            )
            return None
        return leg

    def _on_bye(self, request: Request, tx: AnyServer, source: Peer, now: float) -> None:
        leg = self._in_dialog(request, tx, now)
        if leg is None:
            return
        self._respond(tx, 200, now)
        if isinstance(leg.tx, ServerInviteTransaction) and leg.tx.state is State.PROCEEDING:
            self._respond(leg.tx, 487, now, to_tag=leg.dialog.local_tag if leg.dialog else None)
        self._end(leg, EndCause.REMOTE_HANGUP)

    def _on_reinvite(self, request: Request, tx: ServerInviteTransaction, now: float) -> None:
        leg = self._in_dialog(request, tx, now)
        if leg is None:
            return
        if leg.reoffer_key is not None or leg.offer_tx is not None or leg.ok is not None:
            self._respond(tx, 491, now)  # §14.2: glare
            return
        assert leg.dialog is not None
        leg.dialog.refresh_target(request)
        self._refresh_session(leg, request, now)
        sdp = request.body if request.content_type == "application/sdp" else b""
        if sdp and sdp != leg.remote_sdp:
            leg.remote_sdp = sdp
            leg.offer_tx = tx
            leg.offer_method = "INVITE"
            self._events.append(OfferReceived(leg.id, sdp, "INVITE"))
            return
        # A refresh without change, or an offerless re-INVITE: offer the current session.
        self._answer_in_dialog(leg, tx, request, leg.local_sdp or b"", now)

    def _refresh_session(self, leg: Leg, request: Request, now: float) -> None:
        if leg.session_expires is None:
            return
        timer = self._session_timer_for(request)
        if isinstance(timer, tuple) and timer[0] == 200:
            leg.session_expires = timer[1]
            leg.refresher_local = timer[2] if leg.role == "uas" else not timer[2]
        self._arm_session_timer(leg, now)

    def _answer_in_dialog(
        self, leg: Leg, tx: AnyServer, request: Request, sdp: bytes, now: float
    ) -> None:
        headers = [("Contact", leg.contact), *self._session_headers(leg, request)]
        if isinstance(tx, ServerInviteTransaction):
            assert leg.dialog is not None
            response = self._respond(
                tx, 200, now, headers=headers, body=sdp, to_tag=leg.dialog.local_tag
            )
            self._start_2xx_retransmission(leg, response, now)
        else:
            self._respond(tx, 200, now, headers=headers, body=sdp)

    def answer_offer(self, leg_id: str, sdp: bytes, now: float) -> None:
        """Accept a re-INVITE/UPDATE offer with our answer."""
        leg = self.legs.get(leg_id)
        if leg is None or leg.offer_tx is None:
            return
        tx, leg.offer_tx = leg.offer_tx, None
        leg.local_sdp = sdp
        self._answer_in_dialog(leg, tx, tx.request, sdp, now)

    def reject_offer(self, leg_id: str, now: float, status: int = 488) -> None:
        """Refuse a re-INVITE/UPDATE offer; the session continues unchanged (§14.2)."""
        leg = self.legs.get(leg_id)
        if leg is None or leg.offer_tx is None:
            return
        tx, leg.offer_tx = leg.offer_tx, None
        self._respond(tx, status, now)

    def _on_update(self, request: Request, tx: AnyServer, source: Peer, now: float) -> None:
        """UPDATE (RFC 3311): a session refresh or an offer inside the dialog."""
        leg = self._in_dialog(request, tx, now)
        if leg is None:
            return
        if request.body:
            if leg.offer_tx is not None or leg.reoffer_key is not None:
                self._respond(tx, 491, now)
                return
            leg.remote_sdp = request.body
            leg.offer_tx = tx
            leg.offer_method = "UPDATE"
            self._refresh_session(leg, request, now)
            self._events.append(OfferReceived(leg.id, request.body, "UPDATE"))
            return
        self._refresh_session(leg, request, now)
        self._respond(
            tx, 200, now, headers=[("Contact", leg.contact), *self._session_headers(leg, request)]
        )

    def _on_info(self, request: Request, tx: AnyServer, source: Peer, now: float) -> None:
        """INFO carrying DTMF (application/dtmf-relay "Signal=5", or application/dtmf)."""
        leg = self._in_dialog(request, tx, now)
        if leg is None:
            return
        digit, duration = _dtmf(request)
        if request.body and digit is None:
            self._respond(tx, 400, now, reason="Bad Request (no DTMF signal in the body)")
            return
        self._respond(tx, 200, now)
        if digit is not None and not leg.hidden:
            self._events.append(DtmfReceived(leg.id, digit, duration))

    def _on_options(self, request: Request, tx: AnyServer, source: Peer, now: float) -> None:
        """OPTIONS (§11.2): capabilities, answered without authentication."""
        self._respond(tx, 200, now, headers=[
            ("Allow", ", ".join(ALLOW)), ("Accept", "application/sdp"),
            ("Accept-Encoding", "identity"), ("Supported", ", ".join(SUPPORTED)),
        ])  # fmt: skip

    def _on_message(self, request: Request, tx: AnyServer, source: Peer, now: float) -> None:
        """MESSAGE (RFC 3428): in a dialog answered at once, outside it by the upper layer."""
        leg: Leg | None = None
        if request.to.tag is not None:
            leg = self._in_dialog(request, tx, now)
            if leg is None:
                return
        elif not self._authenticate(request, tx, source, now)[0]:
            return
        uri = request.uri
        user = uri.user_unescaped if isinstance(uri, SipUri) and uri.user else ""
        request_id: str | None = None
        if leg is None:
            request_id = secrets.token_hex(8)
            self._pending_messages[request_id] = (tx, source)
        else:
            self._respond(tx, 200, now)
        self._events.append(
            MessageReceived(
                request_id,
                leg.id if leg else None,
                request.from_,
                request.to,
                user or "",
                request.content_type or "",
                request.body,
            )
        )

    def respond(self, request_id: str, status: int, now: float, reason: str | None = None) -> None:
        """The final answer to an out-of-dialog MESSAGE reported by MessageReceived."""
        pending = self._pending_messages.pop(request_id, None)
        if pending is None:
            return
        tx, _ = pending
        if tx.state in (State.TRYING, State.PROCEEDING):
            self._respond(tx, status, now, reason=reason)

    # ----- REGISTER (the registrar, §10.3) ----------------------------------------------

    def _on_register(self, request: Request, tx: AnyServer, source: Peer, now: float) -> None:
        to = request.to
        if not isinstance(to.uri, SipUri):  # RFC 4475 §3.3.4: 400 from a registrar
            self._respond(tx, 400, now, reason="Bad Request (To is not a SIP address)")
            return
        if not to.uri.user:
            self._respond(tx, 404, now, reason="Not Found (no user in To)")
            return
        aor = to.uri.user_unescaped or ""
        if aor not in self.config.accounts:
            # §10.3 step 5: with authentication on, do not reveal which users exist.
            if self.config.require_auth and request.headers.get("Authorization") is None:
                self._challenge(tx, now)
            else:
                self._respond(tx, 404, now)
            return
        if self.config.require_auth:
            ok, user = self._authenticate(request, tx, source, now)
            if not ok:
                return
            if user is not None and user != aor:  # §10.3 step 4
                self._respond(tx, 403, now, reason="Forbidden (may not register this user)")
                return
        result = self.registrar.register(request, aor, source, now)
        headers = [*result.headers]
        if result.status == 200 and self.config.date is not None:
            headers.append(("Date", self.config.date()))  # §10.3 step 8
        self._respond(tx, result.status, now, reason=result.reason, headers=headers)
        if result.changed:
            self._bindings_changed(aor, now)

    def _bindings_changed(self, aor: str, now: float) -> None:
        contacts = tuple(str(b.contact.uri) for b in self.registrar.lookup(aor, now))
        self._events.append(BindingsChanged(aor, contacts))
        self._schedule(self.registrar)

    def _expire_bindings(self, now: float) -> None:
        gone = self.registrar.expire(now)
        for aor in sorted({b.aor for b in gone}):
            self._bindings_changed(aor, now)
        self._schedule(self.registrar)

    def restore_bindings(self, records: list[dict[str, Any]], now: float, wall: float) -> int:
        """Load registrar bindings saved by ``registrar.dump``."""
        count = self.registrar.load(records, now, wall)
        self._schedule(self.registrar)
        return count

    # ----- responses ---------------------------------------------------------------------

    def _receive_response(self, response: Response, source: Peer, now: float) -> None:
        via = response.top_via
        key = (via.branch or "", response.cseq.method)
        tx = self._client.get(key)
        if tx is None:
            if response.cseq.method == "INVITE" and 200 <= response.status < 300:
                self._stray_2xx(response, now)
            return
        if isinstance(tx, ClientInviteTransaction | ClientNonInviteTransaction):
            self._client_events(tx, tx.receive_response(response, now), now)

    def _client_events(self, tx: ClientTransaction, events: list[TxEvent], now: float) -> None:
        peer = self._client_peer.get(tx.key)
        if peer is not None:
            for data in tx.outbox:
                self._out.append((data, peer))
        tx.outbox.clear()
        handler = self._client_handler.get(tx.key)
        for event in events:
            if handler is not None and event.kind is not TxEventKind.TERMINATED:
                handler(event, now)
        if tx.terminated:
            self._client.pop(tx.key, None)
            self._client_handler.pop(tx.key, None)
            self._client_peer.pop(tx.key, None)
        else:
            self._schedule(tx)

    def _send_request(
        self, request: Request, peer: Peer, now: float, handler: ClientHandler | None
    ) -> ClientTransaction:
        """Stamp a Via and start a client transaction toward ``peer`` (§8.1.1.7, §18.1.1)."""
        local = bracket(self.config.local_address(peer))
        port = self.config.ports.get(peer.transport) or DEFAULT_PORTS[peer.transport]
        via = f"SIP/2.0/{peer.transport.upper()} {local}:{port};branch={new_branch()};rport"
        request.headers.prepend("Via", via)
        if "User-Agent" not in request.headers:
            request.headers.add("User-Agent", self.config.user_agent)
        reliable = is_reliable(peer.transport)
        tx: ClientTransaction
        if request.method == "INVITE":
            tx = ClientInviteTransaction(request, reliable, self.config.timers)
            tx.start(now)
        else:
            tx = ClientNonInviteTransaction(request, reliable, self.config.timers)
            tx.start(now)
        self._client[tx.key] = tx
        self._client_peer[tx.key] = peer
        if handler is not None:
            self._client_handler[tx.key] = handler
        self._client_events(tx, [], now)
        return tx

    def _contact(self, user: str | None, peer: Peer) -> str:
        """Our Contact toward ``peer`` (§8.1.1.8)."""
        host = bracket(self.config.local_address(peer))
        port = self.config.ports.get(peer.transport) or DEFAULT_PORTS[peer.transport]
        params = "" if peer.transport == "udp" else f";transport={peer.transport}"
        userpart = f"{user}@" if user else ""
        scheme = "sips" if peer.transport == "tls" else "sip"
        return f"<{scheme}:{userpart}{host}:{port}{params}>"

    # ----- INVITE as UAC -------------------------------------------------------------------

    def route(self, target: str, now: float) -> tuple[Uri, Peer, bool] | None:
        """Request-URI, next hop, and whether the upstream is used, for a call target."""
        text = target.strip()
        try:
            uri = parse_uri(text) if ":" in text else None
        except SipSyntaxError:
            return None
        if uri is None:
            if not text or any(c.isspace() for c in text):
                return None
            uri = SipUri("sip", self.config.domain or "localhost", user=text)
        if isinstance(uri, SipUri):
            local = uri.host.lower() in (self.config.domain.lower(), "localhost")
            user = uri.user_unescaped or ""
            if local or self._is_local_address(uri.host):
                bindings = self.registrar.lookup(user, now)
                if bindings:
                    best = bindings[0]
                    contact = best.contact.uri
                    if not isinstance(contact, SipUri):
                        return None
                    if best.flow.transport == "udp":
                        return contact, best.flow, False
                    # A stream flow: its connection while open, else a new connection to
                    # the Contact's address over the transport the phone registered with.
                    hop = next_hop(contact)
                    flow = best.flow
                    return contact, Peer(flow.transport, hop.host, hop.port, flow.connection), False
                if local:
                    return self._via_upstream(user)
            if self.upstream is not None and self.upstream.settings.outbound_proxy is not None:
                return uri, next_hop(self.upstream.settings.outbound_proxy), True
            return uri, next_hop(uri), False
        if isinstance(uri, TelUri):
            return self._via_upstream(uri.digits)
        return None

    def _is_local_address(self, host: str) -> bool:
        return host.strip("[]") in self.config.local_hosts

    def _via_upstream(self, user: str) -> tuple[Uri, Peer, bool] | None:
        if self.upstream is None or not user:
            return None
        registrar = self.upstream.settings.registrar
        uri = SipUri(registrar.scheme, registrar.host, user=user, port=registrar.port)
        proxy = self.upstream.settings.outbound_proxy or registrar
        return uri, next_hop(proxy), True

    def invite(
        self,
        target: str,
        now: float,
        *,
        from_user: str,
        sdp: bytes,
        display_name: str | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> str:
        """Call ``target`` (a user, number or SIP URI); returns the leg id (§13.2.1)."""
        leg_id = secrets.token_hex(8)
        routed = self.route(target, now)
        if routed is None:
            self._events.append(CallEnded(leg_id, EndCause.NOT_FOUND, 404, "Not Found"))
            return leg_id
        uri, peer, upstream = routed
        domain = (
            self.upstream.settings.registrar.host
            if upstream and self.upstream
            else self.config.domain
        )
        request = Request("INVITE", uri)
        local = NameAddr(SipUri("sip", domain, user=from_user), display_name)
        to_uri = (
            uri
            if not isinstance(uri, SipUri)
            else uri.without_params("transport", "lr", "maddr", "method", "ttl")
        )
        request.headers.add("Max-Forwards", "70")
        request.headers.add("From", str(local.with_tag(new_tag())))
        request.headers.add("To", str(NameAddr(to_uri)))
        request.headers.add("Call-ID", f"{secrets.token_hex(12)}@{domain}")
        request.headers.add("CSeq", "1 INVITE")
        if upstream and self.upstream and self.upstream.settings.outbound_proxy is not None:
            request.headers.add("Route", f"<{self.upstream.settings.outbound_proxy};lr>")
        contact = self._contact(from_user, peer)
        request.headers.add("Contact", contact)
        request.headers.add("Allow", ", ".join(ALLOW))
        request.headers.add("Supported", ", ".join(SUPPORTED))
        if self.config.session_expires:
            request.headers.add("Session-Expires", str(self.config.session_expires))
        for name, value in headers or []:
            request.headers.add(name, value)
        request.headers.add("Content-Type", "application/sdp")
        request.body = sdp
        leg = Leg(leg_id, "uac", request, peer, LegState.CALLING, contact=contact, local_sdp=sdp)
        if upstream and self.upstream is not None:
            leg.credentials = self.upstream.credentials
        self.legs[leg_id] = leg
        self._uac_early[(request.call_id, request.from_.tag or "")] = leg
        self._send_invite(leg, now)
        return leg_id

    def _send_invite(self, leg: Leg, now: float) -> None:
        tx = self._send_request(
            leg.invite, leg.peer, now, lambda event, t: self._invite_event(leg, event, t)
        )
        assert isinstance(tx, ClientInviteTransaction)
        leg.tx = tx

    def _invite_event(self, leg: Leg, event: TxEvent, now: float) -> None:
        if event.kind is TxEventKind.RESPONSE and event.response is not None:
            self._invite_response(leg, event.response, now)
            return
        pending = leg.state in (LegState.CALLING, LegState.EARLY)
        if event.kind is TxEventKind.TIMEOUT and pending:
            self._end(leg, EndCause.TIMEOUT, 408, reason_phrase(408))
        elif event.kind is TxEventKind.TRANSPORT_ERROR and pending:
            self._end(leg, EndCause.TRANSPORT_ERROR, 503, reason_phrase(503))

    def _invite_response(self, leg: Leg, response: Response, now: float) -> None:
        status = response.status
        to_tag = response.to.tag
        if status < 200:
            if leg.state is LegState.CALLING:
                leg.state = LegState.EARLY
            if leg.cancel_pending:
                leg.cancel_pending = False
                self._send_cancel(leg, now)
                return
            if to_tag and leg.dialog is None:
                try:
                    leg.dialog = Dialog.as_uac(leg.invite, response, leg.peer)
                except SipSyntaxError:
                    leg.dialog = None
            if status > 100 and not leg.hidden:
                sdp = response.body if response.content_type == "application/sdp" else None
                self._events.append(CallProgress(leg.id, status, response.reason, sdp or None))
            return
        if status < 300:
            self._invite_2xx(leg, response, now)
            return
        if status in (401, 407) and self._retry_with_credentials(leg, response, now):
            return
        if leg.state in (LegState.CALLING, LegState.EARLY):
            cause = EndCause.CANCELLED if leg.hidden else EndCause.REJECTED
            if status in (404, 604):
                cause = EndCause.NOT_FOUND
            elif status in (408, 480) and not leg.hidden:
                cause = EndCause.NO_ANSWER
            self._end(leg, cause, status, response.reason)

    def _retry_with_credentials(self, leg: Leg, response: Response, now: float) -> bool:
        """Answer a challenge to our INVITE once per nonce (§22.2)."""
        if leg.credentials is None or leg.hidden:
            return False
        proxy = response.status == 407
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        challenge = best_challenge(response.headers.lines(name), proxy=proxy)
        if challenge is None or (challenge.nonce in leg.auth_nonces and not challenge.stale):
            return False
        leg.auth_nonces.add(challenge.nonce)
        invite = leg.invite
        retry = Request("INVITE", invite.uri, invite.headers.copy(), invite.body)
        retry.headers.remove("Via")
        retry.headers.remove("Authorization")
        retry.headers.remove("Proxy-Authorization")
        retry.headers.set("CSeq", f"{invite.cseq.number + 1} INVITE")
        header_name, value = leg.credentials.authorization(challenge, "INVITE", str(invite.uri))
        retry.headers.add(header_name, value)
        leg.invite = retry
        leg.state = LegState.CALLING
        self._send_invite(leg, now)
        return True

    def _invite_2xx(self, leg: Leg, response: Response, now: float) -> None:
        """§13.2.2.4: ACK every 2xx; the first confirms the dialog, later forks get a BYE."""
        to_tag = response.to.tag or ""
        if leg.dialog is not None and leg.dialog.remote_tag == to_tag and leg.ack is not None:
            self._out.append((leg.ack.encode(), leg.ack_peer or leg.peer))  # retransmitted 2xx
            return
        try:
            dialog = Dialog.as_uac(leg.invite, response, leg.peer)
        except SipSyntaxError as exc:
            log.info("unusable 2xx for %s: %s", leg.invite.call_id, exc)
            return
        if leg.state is LegState.CONFIRMED or leg.hidden or leg.state is LegState.ENDED:
            # A second fork answered, or we cancelled meanwhile: ACK it, then end it.
            self._send_ack(dialog, leg.invite.cseq.number, leg.peer, now, leg)
            bye = dialog.request("BYE")
            self._send_request(bye, dialog.destination() or leg.peer, now, None)
            if leg.state is not LegState.CONFIRMED:
                self._end(leg, EndCause.CANCELLED)
            return
        leg.dialog = dialog
        self._dialogs[dialog.id] = leg
        leg.ack = self._send_ack(dialog, leg.invite.cseq.number, leg.peer, now, leg)
        leg.state = LegState.CONFIRMED
        self._uac_session_timer(leg, response, now)
        sdp = response.body if response.content_type == "application/sdp" else None
        leg.remote_sdp = sdp or None
        self._events.append(CallAnswered(leg.id, sdp or None))
        if leg.bye_pending:
            self._send_bye(leg, now)

    def _uac_session_timer(self, leg: Leg, response: Response, now: float) -> None:
        value = response.headers.get("Session-Expires")
        if value is None:
            return
        parts = value.split(";")
        try:
            interval = parse_int(parts[0], maximum=2**31, what="Session-Expires")
        except SipSyntaxError:
            return
        if not interval:
            return
        refresher = next(
            (
                p.split("=", 1)[1].strip().lower()
                for p in parts[1:]
                if p.strip().lower().startswith("refresher=")
            ),
            "uac",
        )
        leg.session_expires = interval
        leg.refresher_local = refresher == "uac"
        self._arm_session_timer(leg, now)

    def _send_ack(self, dialog: Dialog, cseq: int, peer: Peer, now: float, leg: Leg) -> Request:
        """The ACK for a 2xx: a new branch, the INVITE's CSeq number (§13.2.2.4)."""
        ack = dialog.request("ACK", cseq=cseq)
        destination = dialog.destination() or peer
        local = bracket(self.config.local_address(destination))
        port = self.config.ports.get(destination.transport) or DEFAULT_PORTS[destination.transport]
        ack.headers.prepend(
            "Via",
            f"SIP/2.0/{destination.transport.upper()} {local}:{port};branch={new_branch()};rport",
        )
        for name in ("Authorization", "Proxy-Authorization"):
            value = leg.invite.headers.get(name)
            if value is not None:
                ack.headers.add(name, value)
        self._out.append((ack.encode(), destination))
        leg.ack_peer = destination
        return ack

    def _stray_2xx(self, response: Response, now: float) -> None:
        """A 2xx after the INVITE transaction ended: re-ACK a known dialog (§13.2.2.4)."""
        leg = self._dialogs.get((response.call_id, response.from_.tag or "", response.to.tag or ""))
        if leg is not None and leg.ack is not None:
            self._out.append((leg.ack.encode(), leg.ack_peer or leg.peer))

    def cancel(self, leg_id: str, now: float) -> None:
        """Give up an outgoing call before it is answered (§9.1)."""
        leg = self.legs.get(leg_id)
        if leg is None or leg.role != "uac" or leg.state not in (LegState.CALLING, LegState.EARLY):
            return
        self._report_end(leg, EndCause.CANCELLED)
        leg.hidden = True
        if leg.state is LegState.CALLING:
            leg.cancel_pending = True  # CANCEL only after a provisional (§9.1)
        else:
            self._send_cancel(leg, now)

    def _send_cancel(self, leg: Leg, now: float) -> None:
        invite = leg.invite
        cancel = Request("CANCEL", invite.uri)
        cancel.headers.add("Via", invite.headers.values("Via")[0])
        for name in ("Max-Forwards", "From", "To", "Call-ID"):
            value = invite.headers.get(name)
            if value is not None:
                cancel.headers.add(name, value)
        cancel.headers.add("CSeq", f"{invite.cseq.number} CANCEL")
        for value in invite.headers.lines("Route"):
            cancel.headers.add("Route", value)
        tx = ClientNonInviteTransaction(cancel, is_reliable(leg.peer.transport), self.config.timers)
        tx.start(now)
        self._client[tx.key] = tx
        self._client_peer[tx.key] = leg.peer
        self._client_events(tx, [], now)

    def bye(self, leg_id: str, now: float) -> None:
        """Hang up an established call (§15.1.1)."""
        leg = self.legs.get(leg_id)
        if leg is None or leg.state is LegState.ENDED:
            return
        if leg.state is LegState.ANSWERED:
            leg.bye_pending = True  # §15: not before the ACK (or its timeout)
            self._report_end(leg, EndCause.LOCAL_HANGUP)
            leg.hidden = True
            return
        if leg.state is not LegState.CONFIRMED:
            return
        self._send_bye(leg, now)
        self._end(leg, EndCause.LOCAL_HANGUP)

    def hangup(self, leg_id: str, now: float) -> None:
        """End a leg whatever its state: CANCEL, reject (480 / 603) or BYE."""
        leg = self.legs.get(leg_id)
        if leg is None:
            return
        if leg.role == "uac" and leg.state in (LegState.CALLING, LegState.EARLY):
            self.cancel(leg_id, now)
        elif leg.role == "uas" and leg.state in (LegState.INCOMING, LegState.EARLY):
            self.reject(leg_id, 603, now, "Decline")
        else:
            self.bye(leg_id, now)

    def _send_bye(self, leg: Leg, now: float) -> None:
        if leg.dialog is None:
            return
        leg.bye_pending = False
        bye = leg.dialog.request("BYE")
        self._send_request(bye, leg.dialog.destination() or leg.peer, now, None)

    # ----- re-INVITE as UAC (hold/resume, session refresh) ---------------------------------

    def reoffer(self, leg_id: str, sdp: bytes, now: float) -> bool:
        """Send a re-INVITE with a new offer (§14.1); False if one is pending already."""
        leg = self.legs.get(leg_id)
        if leg is None or leg.state is not LegState.CONFIRMED or leg.dialog is None:
            return False
        if leg.reoffer_key is not None or leg.offer_tx is not None or leg.ok is not None:
            return False
        self._send_reinvite(leg, sdp, now, refresh=False)
        return True

    def _send_reinvite(self, leg: Leg, sdp: bytes, now: float, *, refresh: bool) -> None:
        assert leg.dialog is not None
        request = leg.dialog.request("INVITE")
        request.headers.add("Contact", leg.contact)
        request.headers.add("Allow", ", ".join(ALLOW))
        request.headers.add("Supported", ", ".join(SUPPORTED))
        if leg.session_expires is not None:
            us = leg.role
            request.headers.add("Session-Expires", f"{leg.session_expires};refresher={us}")
        request.headers.add("Content-Type", "application/sdp")
        request.body = sdp
        leg.reoffer_sdp = sdp
        leg.reoffer_is_refresh = refresh
        tx = self._send_request(
            request,
            leg.dialog.destination() or leg.peer,
            now,
            lambda event, t: self._reinvite_event(leg, event, t),
        )
        leg.reoffer_key = tx.key

    def _reinvite_event(self, leg: Leg, event: TxEvent, now: float) -> None:
        response = event.response
        if event.kind is TxEventKind.RESPONSE and response is not None:
            if response.status < 200:
                return
            leg.reoffer_key = None
            if response.status < 300:
                assert leg.dialog is not None
                ack = self._send_ack(leg.dialog, response.cseq.number, leg.peer, now, leg)
                leg.ack = ack
                leg.dialog.refresh_target(response)
                if leg.reoffer_sdp is not None:
                    leg.local_sdp = leg.reoffer_sdp
                self._arm_session_timer(leg, now)
                if not leg.reoffer_is_refresh and not leg.hidden:
                    sdp = response.body if response.content_type == "application/sdp" else None
                    self._events.append(OfferAnswered(leg.id, sdp or None))
                return
            if response.status == 491:  # §14.1: retry after 2.1-4 s (we chose the Call-ID)
                owner = leg.role == "uac"
                base = 2.1 if owner else 0.0
                leg.reoffer_retry = now + base + secrets.randbelow(2000) / 1000
                self._schedule(leg)
                return
            if response.status in (408, 481):  # §12.2.1.2: the dialog is gone
                self._send_bye(leg, now)
                self._end(leg, EndCause.DIALOG_GONE, response.status, response.reason)
                return
            if not leg.reoffer_is_refresh and not leg.hidden:
                self._events.append(OfferFailed(leg.id, response.status, response.reason))
        elif event.kind in (TxEventKind.TIMEOUT, TxEventKind.TRANSPORT_ERROR):
            leg.reoffer_key = None
            self._send_bye(leg, now)
            self._end(leg, EndCause.TIMEOUT, 408, "Request Timeout")

    # ----- leg timers and endings --------------------------------------------------------

    def _leg_timer(self, leg: Leg, now: float) -> None:
        if leg.ok_giveup is not None and now >= leg.ok_giveup:
            leg.ok = None
            leg.ok_next = leg.ok_giveup = None
            if leg.state is LegState.ANSWERED:  # §13.3.1.4: no ACK, so BYE
                leg.state = LegState.CONFIRMED
                self._send_bye(leg, now)
                self._end(leg, EndCause.NO_ACK)
                return
        if leg.ok_next is not None and now >= leg.ok_next and leg.ok is not None:
            self._out.append((leg.ok.encode(), leg.peer))
            leg.ok_interval = min(2 * leg.ok_interval, self.config.timers.t2)
            leg.ok_next = now + leg.ok_interval
        if leg.reoffer_retry is not None and now >= leg.reoffer_retry:
            leg.reoffer_retry = None
            if leg.reoffer_sdp is not None and leg.state is LegState.CONFIRMED:
                self._send_reinvite(leg, leg.reoffer_sdp, now, refresh=leg.reoffer_is_refresh)
        if leg.session_due is not None and now >= leg.session_due:
            leg.session_due = None
            if leg.refresher_local:
                if leg.reoffer_key is None and leg.state is LegState.CONFIRMED:
                    self._send_reinvite(leg, leg.local_sdp or b"", now, refresh=True)
            else:
                self._send_bye(leg, now)
                self._end(leg, EndCause.SESSION_EXPIRED)
                return
        self._schedule(leg)

    def _leg_transport_error(self, request: Request, now: float) -> None:
        leg = next(
            (lg for lg in self.legs.values() if lg.tx is not None and lg.tx.request is request),
            None,
        )
        if leg is not None:
            self._end(leg, EndCause.TRANSPORT_ERROR, 503, "Service Unavailable")

    def _report_end(
        self, leg: Leg, cause: EndCause, status: int | None = None, reason: str = ""
    ) -> None:
        if not leg.hidden:
            leg.hidden = True
            self._events.append(CallEnded(leg.id, cause, status, reason))

    def _end(self, leg: Leg, cause: EndCause, status: int | None = None, reason: str = "") -> None:
        """The leg is over: report it once and forget it."""
        self._report_end(leg, cause, status, reason)
        leg.state = LegState.ENDED
        leg.ok = None
        leg.ok_next = leg.ok_giveup = leg.reoffer_retry = leg.session_due = None
        self.legs.pop(leg.id, None)
        if leg.dialog is not None:
            self._dialogs.pop(leg.dialog.id, None)
        self._uac_early.pop((leg.invite.call_id, leg.invite.from_.tag or ""), None)

    # ----- MESSAGE and INFO as UAC ------------------------------------------------------

    def send_message(
        self,
        target: str,
        now: float,
        *,
        from_user: str,
        content_type: str,
        body: bytes,
        leg_id: str | None = None,
    ) -> str:
        """Send a MESSAGE (RFC 3428) in a call's dialog or to a target; returns a request id."""
        request_id = secrets.token_hex(8)
        leg = self.legs.get(leg_id) if leg_id else None
        if leg is not None and leg.dialog is not None and leg.state is LegState.CONFIRMED:
            request = leg.dialog.request("MESSAGE")
            peer = leg.dialog.destination() or leg.peer
        else:
            routed = self.route(target, now)
            if routed is None:
                self._events.append(RequestCompleted(request_id, 404, "Not Found"))
                return request_id
            uri, peer, upstream = routed
            domain = (
                self.upstream.settings.registrar.host
                if upstream and self.upstream
                else self.config.domain
            )
            request = Request("MESSAGE", uri)
            request.headers.add("Max-Forwards", "70")
            request.headers.add(
                "From",
                str(NameAddr(SipUri("sip", domain, user=from_user), None, {"tag": new_tag()})),
            )
            request.headers.add("To", str(NameAddr(uri)))
            request.headers.add("Call-ID", f"{secrets.token_hex(12)}@{domain}")
            request.headers.add("CSeq", "1 MESSAGE")
        request.headers.add("Content-Type", content_type)
        request.body = body

        def done(event: TxEvent, t: float) -> None:
            if event.kind is TxEventKind.RESPONSE and event.response is not None:
                if event.response.status >= 200:
                    self._events.append(
                        RequestCompleted(request_id, event.response.status, event.response.reason)
                    )
            elif event.kind in (TxEventKind.TIMEOUT, TxEventKind.TRANSPORT_ERROR):
                self._events.append(RequestCompleted(request_id, 408, "Request Timeout"))

        self._send_request(request, peer, now, done)
        return request_id

    def send_dtmf(self, leg_id: str, digit: str, now: float, duration_ms: int = 160) -> bool:
        """Signal a DTMF digit with INFO application/dtmf-relay; False if not possible."""
        leg = self.legs.get(leg_id)
        if (
            leg is None
            or leg.dialog is None
            or leg.state is not LegState.CONFIRMED
            or digit.upper() not in DTMF_DIGITS
        ):
            return False
        request = leg.dialog.request("INFO")
        request.headers.add("Contact", leg.contact)
        request.headers.add("Content-Type", "application/dtmf-relay")
        request.body = f"Signal={digit.upper()}\r\nDuration={duration_ms}\r\n".encode()
        self._send_request(request, leg.dialog.destination() or leg.peer, now, None)
        return True

    # ----- upstream registration and keepalive ------------------------------------------

    def _register_upstream(self, client: RegistrationClient, attempt: Attempt, now: float) -> None:
        assert self.upstream is not None
        settings = self.upstream.settings
        registrar = settings.registrar
        peer = next_hop(settings.outbound_proxy or registrar)
        request = Request("REGISTER", SipUri(registrar.scheme, registrar.host, port=registrar.port))
        aor = NameAddr(SipUri("sip", registrar.host, user=client.aor))
        request.headers.add("Max-Forwards", "70")
        request.headers.add("From", str(aor.with_tag(new_tag())))
        request.headers.add("To", str(aor))
        if client.call_id is None:
            client.call_id = f"{secrets.token_hex(12)}@{registrar.host}"
        client.cseq += 1
        request.headers.add("Call-ID", client.call_id)
        request.headers.add("CSeq", f"{client.cseq} REGISTER")
        if settings.outbound_proxy is not None:
            request.headers.add("Route", f"<{settings.outbound_proxy};lr>")
        contact = self._contact(client.aor, peer)
        client.contact = SipUri.parse(contact[1:-1])
        request.headers.add("Contact", contact)
        request.headers.add("Expires", str(attempt.expires))
        if attempt.authorization is not None:
            request.headers.add(*attempt.authorization)

        def on_event(event: TxEvent, t: float) -> None:
            if event.kind is TxEventKind.RESPONSE and event.response is not None:
                if event.response.status < 200:
                    return
                follow = client.on_response(event.response, t, str(request.uri))
                if follow is not None:
                    self._register_upstream(client, follow, t)
                    return
            elif event.kind in (TxEventKind.TIMEOUT, TxEventKind.TRANSPORT_ERROR):
                client.on_timeout(
                    t,
                    "no answer from the registrar"
                    if event.kind is TxEventKind.TIMEOUT
                    else "registrar unreachable",
                )
            else:
                return
            self._report_registration(client)
            if self.upstream is not None:
                self._schedule(self.upstream)

        self._send_request(request, peer, now, on_event)

    def _report_registration(self, client: RegistrationClient) -> None:
        state = {
            RegState.REGISTERED: "registered",
            RegState.FAILED: "failed",
            RegState.UNREGISTERED: "unregistered",
        }.get(client.state)
        if state is not None:
            self._events.append(RegistrationState(client.aor, state, client.detail, client.granted))

    def _upstream_timer(self, upstream: Upstream, now: float) -> None:
        for client in upstream.clients.values():
            attempt = client.due(now)
            if attempt is not None:
                self._register_upstream(client, attempt, now)
        if upstream.keepalive_at is not None and now >= upstream.keepalive_at:
            upstream.keepalive_at = now + upstream.settings.keepalive_interval
            self._send_keepalive(upstream, now)
        self._schedule(upstream)

    def _send_keepalive(self, upstream: Upstream, now: float) -> None:
        """OPTIONS toward the upstream (§11): any response means it is alive."""
        settings = upstream.settings
        peer = next_hop(settings.outbound_proxy or settings.registrar)
        target = SipUri(
            settings.registrar.scheme, settings.registrar.host, port=settings.registrar.port
        )
        request = Request("OPTIONS", target)
        request.headers.add("Max-Forwards", "70")
        me = NameAddr(SipUri("sip", settings.registrar.host, user=settings.username or "gateway"))
        request.headers.add("From", str(me.with_tag(new_tag())))
        request.headers.add("To", str(NameAddr(target)))
        request.headers.add("Call-ID", f"{secrets.token_hex(12)}@{settings.registrar.host}")
        request.headers.add("CSeq", "1 OPTIONS")

        def on_event(event: TxEvent, t: float) -> None:
            if event.kind is TxEventKind.RESPONSE:
                reachable, detail = True, "answering OPTIONS"
            elif event.kind in (TxEventKind.TIMEOUT, TxEventKind.TRANSPORT_ERROR):
                reachable, detail = False, "not answering OPTIONS"
            else:
                return
            if upstream.reachable != reachable:
                upstream.reachable = reachable
                self._events.append(UpstreamReachability(reachable, detail))

        self._send_request(request, peer, now, on_event)

    def network_changed(self, now: float) -> None:
        """Addresses changed: register again at once with fresh Contacts."""
        if self.upstream is None:
            return
        for client in self.upstream.clients.values():
            self._register_upstream(client, client.start(now), now)
        self._schedule(self.upstream)

    def shutdown(self, now: float) -> None:
        """Hang up every call (BYE/CANCEL/480) and unregister from the upstream."""
        for leg_id in list(self.legs):
            leg = self.legs[leg_id]
            if leg.role == "uas" and leg.state in (LegState.INCOMING, LegState.EARLY):
                self.reject(leg_id, 480, now, "Temporarily Unavailable (gateway shutting down)")
            elif leg.role == "uac" and leg.state in (LegState.CALLING, LegState.EARLY):
                self.cancel(leg_id, now)
            elif leg.state in (LegState.CONFIRMED, LegState.ANSWERED):
                if leg.dialog is not None:
                    self._send_bye(leg, now)
                self._end(leg, EndCause.SHUTDOWN)
        if self.upstream is not None:
            for client in self.upstream.clients.values():
                attempt = client.stop()
                if attempt is not None:
                    self._register_upstream(client, attempt, now)
            self.upstream.keepalive_at = None

    @property
    def busy(self) -> bool:
        """Whether a request of ours still waits for its final response."""
        waiting = (State.CALLING, State.TRYING, State.PROCEEDING)
        return any(tx.state in waiting for tx in self._client.values())


def _same_peer(a: Peer, b: Peer) -> bool:
    if a.connection is not None and b.connection is not None:
        return a.connection == b.connection
    return (a.transport, a.host, a.port) == (b.transport, b.host, b.port)


def _one_line(text: str) -> str:
    """Reason phrases are one line of text (§25.1)."""
    return " ".join(text.split())[:200]


def _dtmf(request: Request) -> tuple[str | None, int]:
    """The digit and duration of a DTMF INFO body."""
    body = request.body.decode("utf-8", "replace").strip()
    if request.content_type == "application/dtmf":
        first = body[:1].upper()
        return (first if first in DTMF_DIGITS else None), 250
    digit: str | None = None
    duration = 250
    for line in body.splitlines():
        name, _, value = line.partition("=")
        name = name.strip().lower()
        value = value.strip()
        if name == "signal" and value[:1].upper() in DTMF_DIGITS and len(value) == 1:
            digit = value.upper()
        elif name == "duration" and value.isdigit():
            duration = int(value)
    return digit, duration
