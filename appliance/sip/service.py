"""The SIP subsystem: the sans-I/O core driven by asyncio transports and the loop clock.

It turns the configuration into a :class:`~appliance.sip.core.CoreConfig`, feeds the
core with received bytes and timer expiries (``loop.time()`` is the core's clock),
sends what it queues, hands its events to subscribers (the call layer), keeps the
registrar's bindings in the state directory, and reports health and metrics.
An incoming call or MESSAGE that no subscriber takes is refused with 480.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import json
import logging
import socket
import time
from collections.abc import Callable
from pathlib import Path

from appliance import __version__
from appliance.config.edit import atomic_write
from appliance.config.schema import Operator, SipConfig
from appliance.runtime.health import Health
from appliance.runtime.metrics import Metrics
from appliance.runtime.subsystem import Subsystem
from appliance.sip.address import Peer
from appliance.sip.core import CoreConfig, SipCore, UpstreamSettings
from appliance.sip.events import (
    BindingsChanged,
    IncomingCall,
    MessageReceived,
    RegistrationState,
    SipEvent,
    UpstreamReachability,
)
from appliance.sip.message import Limits
from appliance.sip.transaction import TimerValues
from appliance.sip.transport import Transports, local_address_toward
from appliance.sip.uri import SipUri
from appliance.web.tls import TlsFiles, server_context

log = logging.getLogger(__name__)

Handler = Callable[[SipEvent], bool | None]
SAVE_DELAY = 1.0
STOP_GRACE = 2.0


def core_config(
    config: SipConfig,
    operators: list[Operator],
    *,
    box_name: str,
    local_address: Callable[[Peer], str],
    local_hosts: frozenset[str],
) -> CoreConfig:
    """The core's settings from the ``[sip]`` table and the operators."""
    upstream = None
    if config.upstream.enabled:
        settings = config.upstream
        identities = tuple(o.sip_user or o.name for o in operators) or (settings.username,)
        upstream = UpstreamSettings(
            registrar=SipUri.parse(settings.registrar),
            outbound_proxy=SipUri.parse(settings.outbound_proxy)
            if settings.outbound_proxy
            else None,
            username=settings.username,
            password=settings.password,
            expires=settings.expires,
            keepalive_interval=settings.keepalive_interval,
            identities=tuple(i for i in identities if i),
        )
    return CoreConfig(
        domain=config.domain or socket.gethostname(),
        ports={"udp": config.udp_port, "tcp": config.tcp_port, "tls": config.tls_port},
        user_agent=f"{box_name} appliance/{__version__}",
        timers=TimerValues(config.t1 / 1000, config.t2 / 1000, config.t4 / 1000),
        limits=Limits(max_size=config.max_message_size),
        accounts={a.user: a.password for a in config.accounts},
        require_auth=config.registrar.require_auth,
        trusted=tuple(ipaddress.ip_network(n, strict=False) for n in config.trusted_peers),
        min_expires=config.registrar.min_expires,
        max_expires=config.registrar.max_expires,
        default_expires=config.registrar.default_expires,
        digest_algorithms=tuple(config.registrar.digest_algorithms),
        session_expires=config.session_expires,
        upstream=upstream,
        local_address=local_address,
        local_hosts=local_hosts,
        date=lambda: email.utils.formatdate(usegmt=True),
    )


class SipService(Subsystem):
    """Runs the SIP core on the box's sockets."""

    def __init__(
        self,
        config: SipConfig,
        operators: list[Operator],
        *,
        box_name: str,
        state_dir: Path,
        tls: TlsFiles | None,
        health: Health,
        metrics: Metrics,
    ) -> None:
        super().__init__("sip", health)
        self.config = config
        self.state_file = state_dir / "sip" / "bindings.json"
        self.tls = tls
        self._addresses = list(config.addresses)
        self._local_cache: dict[str, str] = {}
        self.core = SipCore(core_config(
            config, operators, box_name=box_name, local_address=self._local_address,
            local_hosts=frozenset(self._addresses) | {"127.0.0.1", "::1"},
        ))  # fmt: skip
        self.handlers: list[Handler] = []
        self.transports: Transports | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._save: asyncio.TimerHandle | None = None
        self._upstream_problem = ""
        self._listening = ""
        self.registrations: dict[str, RegistrationState] = {}
        self._register_metrics(metrics)

    # ----- setup ---------------------------------------------------------------------

    def _register_metrics(self, metrics: Metrics) -> None:
        stats = self.core.stats
        metrics.counter(
            "appliance_sip_messages_received_total",
            "SIP messages received.",
            read=lambda: float(stats["received"]),
        )
        metrics.counter(
            "appliance_sip_messages_sent_total",
            "SIP messages sent.",
            read=lambda: float(stats["sent"]),
        )
        metrics.counter(
            "appliance_sip_malformed_total",
            "SIP messages refused or dropped as malformed.",
            read=lambda: float(stats["malformed"]),
        )
        metrics.gauge(
            "appliance_sip_call_legs",
            "SIP call legs in progress.",
            read=lambda: float(len(self.core.legs)),
        )
        metrics.gauge(
            "appliance_sip_registered_contacts",
            "Contacts registered by LAN phones.",
            read=lambda: float(sum(len(b) for b in self.core.registrar.all(self._now()).values())),
        )
        metrics.gauge(
            "appliance_sip_upstream_registered",
            "1 while an identity is registered upstream.",
            ["aor"],
            read=lambda: {
                (aor,): 1.0 if r.state == "registered" else 0.0
                for aor, r in self.registrations.items()
            },
        )

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _local_address(self, peer: Peer) -> str:
        """Our address toward ``peer`` for Via and Contact (§18.1.1)."""
        v6 = ":" in peer.host
        for address in self._addresses:
            if (":" in address) == v6:
                return address
        if peer.host in ("127.0.0.1", "::1", "localhost"):
            return "::1" if v6 else "127.0.0.1"
        cached = self._local_cache.get(peer.host)
        if cached is not None:
            return cached
        found = local_address_toward(peer.host) if _is_ip(peer.host) else None
        if found is None:
            found = "::1" if v6 else "127.0.0.1"
        if len(self._local_cache) > 1024:
            self._local_cache.clear()
        self._local_cache[peer.host] = found
        return found

    async def start(self) -> None:
        """Load saved bindings, bind the transports, start the upstream registration."""
        now = self._now()
        loaded = self._load_bindings(now)
        server_tls = server_context(self.tls) if self.tls is not None else None
        transports = Transports(
            self._received,
            self._transport_error,
            limits=self.core.config.limits,
            server_tls=server_tls,
        )
        self.transports = transports
        ports = {
            "udp": self.config.udp_port,
            "tcp": self.config.tcp_port,
            "tls": self.config.tls_port,
        }
        try:
            await transports.listen(self._addresses, ports)
        except OSError:
            await transports.close()
            raise
        self.core.start(now)
        self._flush()
        listening = ", ".join(
            f"{t.upper()} {h}:{p}" for t, bound in transports.bound.items() for h, p in bound
        )
        self._listening = listening
        self.health.ok(f"{listening}; {loaded} saved registrations")
        log.info("SIP listening on %s", listening)

    # ----- the core's inputs -------------------------------------------------------------

    def _received(self, data: bytes, peer: Peer) -> None:
        self.core.receive(data, peer, self._now())
        self._flush()

    def _transport_error(self, peer: Peer) -> None:
        self.core.transport_error(peer, self._now())
        self._flush()

    def _on_timer(self) -> None:
        self._timer = None
        self.core.handle_timer(self._now())
        self._flush()

    def _flush(self) -> None:
        """Send what the core queued, dispatch its events, and re-arm its timer."""
        transports = self.transports
        for data, peer in self.core.datagrams_to_send():
            if transports is not None:
                transports.send(data, peer)
        while (event := self.core.next_event()) is not None:
            self._dispatch(event)
        deadline = self.core.get_timer()
        if self._timer is not None and (deadline is None or self._timer.when() != deadline):
            self._timer.cancel()
            self._timer = None
        if deadline is not None and self._timer is None:
            self._timer = asyncio.get_running_loop().call_at(deadline, self._on_timer)

    def _dispatch(self, event: SipEvent) -> None:
        claimed = False
        for handler in list(self.handlers):
            try:
                claimed = bool(handler(event)) or claimed
            except Exception:
                log.exception("SIP event handler failed on %s", type(event).__name__)
        if isinstance(event, IncomingCall) and not claimed:
            self.core.reject(event.leg, 480, self._now(), "Temporarily Unavailable")
        elif isinstance(event, MessageReceived) and event.request_id and not claimed:
            self.core.respond(event.request_id, 480, self._now())
        elif isinstance(event, BindingsChanged):
            self._schedule_save()
        elif isinstance(event, RegistrationState):
            self.registrations[event.aor] = event
            self._upstream_health()
        elif isinstance(event, UpstreamReachability):
            self._upstream_problem = "" if event.reachable else f"upstream {event.detail}"
            self._upstream_health()

    def _upstream_health(self) -> None:
        failed = [
            f"{r.aor}: {r.detail}" for r in self.registrations.values() if r.state == "failed"
        ]
        problems = ([self._upstream_problem] if self._upstream_problem else []) + (
            ["upstream registration failed for " + "; ".join(failed)] if failed else []
        )
        if problems:
            self.health.degraded("; ".join(problems))
        else:
            self.health.ok(self._listening)

    # ----- the API for the call layer ------------------------------------------------------

    def subscribe(self, handler: Handler) -> None:
        """Receive every SIP event; return True from it to claim an incoming call/MESSAGE."""
        self.handlers.append(handler)

    def invite(
        self, target: str, *, from_user: str, sdp: bytes, display_name: str | None = None
    ) -> str:
        """Call ``target``; returns the leg id (events follow)."""
        leg = self.core.invite(
            target, self._now(), from_user=from_user, sdp=sdp, display_name=display_name
        )
        self._flush()
        return leg

    def local_address_toward(self, peer: Peer) -> str:
        """The box's address a phone at ``peer`` reaches (for SDP c= lines)."""
        return self._local_address(peer)

    def media_address(self, target: str) -> str | None:
        """The box's address toward where a call to ``target`` goes; None if unroutable."""
        routed = self.core.route(target, self._now())
        if routed is None:
            return None
        return self._local_address(routed[1])

    def ringing(self, leg: str, sdp: bytes | None = None) -> None:
        """Tell the caller it rings (180, or 183 with early media)."""
        self.core.ringing(leg, self._now(), sdp)
        self._flush()

    def answer(self, leg: str, sdp: bytes) -> None:
        """Answer an incoming call."""
        self.core.answer(leg, sdp, self._now())
        self._flush()

    def reject(self, leg: str, status: int = 486, reason: str | None = None) -> None:
        """Refuse an incoming call."""
        self.core.reject(leg, status, self._now(), reason)
        self._flush()

    def hangup(self, leg: str) -> None:
        """End a leg in whatever state it is (CANCEL, reject or BYE)."""
        self.core.hangup(leg, self._now())
        self._flush()

    def reoffer(self, leg: str, sdp: bytes) -> bool:
        """Send a re-INVITE (hold, resume, media change)."""
        sent = self.core.reoffer(leg, sdp, self._now())
        self._flush()
        return sent

    def answer_offer(self, leg: str, sdp: bytes) -> None:
        """Answer a re-INVITE/UPDATE offer."""
        self.core.answer_offer(leg, sdp, self._now())
        self._flush()

    def reject_offer(self, leg: str, status: int = 488) -> None:
        """Refuse a re-INVITE/UPDATE offer."""
        self.core.reject_offer(leg, self._now(), status)
        self._flush()

    def send_message(
        self, target: str, *, from_user: str, content_type: str, body: bytes, leg: str | None = None
    ) -> str:
        """Send a MESSAGE; the RequestCompleted event carries the outcome."""
        request_id = self.core.send_message(
            target,
            self._now(),
            from_user=from_user,
            content_type=content_type,
            body=body,
            leg_id=leg,
        )
        self._flush()
        return request_id

    def respond(self, request_id: str, status: int) -> None:
        """Answer an out-of-dialog MESSAGE."""
        self.core.respond(request_id, status, self._now())
        self._flush()

    def send_dtmf(self, leg: str, digit: str) -> bool:
        """Signal a DTMF digit with INFO."""
        sent = self.core.send_dtmf(leg, digit, self._now())
        self._flush()
        return sent

    def network_changed(self) -> None:
        """Addresses changed: forget cached source addresses and register again."""
        self._local_cache.clear()
        self.core.network_changed(self._now())
        self._flush()

    # ----- bindings on disk ---------------------------------------------------------------

    def _schedule_save(self) -> None:
        if self._save is None:
            self._save = asyncio.get_running_loop().call_later(SAVE_DELAY, self._save_now)

    def _save_now(self) -> None:
        self._save = None
        records = self.core.registrar.dump(self._now(), time.time())
        try:
            self.state_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            atomic_write(self.state_file, json.dumps(records, indent=1).encode(), mode=0o600)
        except OSError as exc:
            log.error("cannot save SIP registrations to %s: %s", self.state_file, exc)

    def _load_bindings(self, now: float) -> int:
        try:
            records = json.loads(self.state_file.read_text("utf-8"))
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s: %s", self.state_file, exc)
            return 0
        if not isinstance(records, list):
            return 0
        return self.core.restore_bindings(records, now, time.time())

    # ----- stop ---------------------------------------------------------------------------

    async def stop(self) -> None:
        """Hang up calls, unregister, let those transactions finish briefly, close sockets."""
        self.core.shutdown(self._now())
        self._flush()
        deadline = self._now() + STOP_GRACE
        while self.core.busy and self._now() < deadline:  # noqa: ASYNC110 - core has no waiter
            await asyncio.sleep(0.05)
        if self._save is not None:
            self._save.cancel()
            self._save_now()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.transports is not None:
            await self.transports.close()
        await self.cancel_tasks()


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
