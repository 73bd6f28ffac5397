"""The call manager subsystem: routes SIP events and page requests to :class:`Call` objects.

Pages (the call-takers' WebSockets) register as their operator's SIP identity; a call
to that identity alerts every registered page of the operator, and the first to answer
takes it. A page that goes away hangs up its calls (RFC 3261 §15: BYE, or CANCEL/480
before answer), so a closed tab never leaves a phone connected to silence.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.calls.call import Call, CallError, MediaSettings, Message, Page, State
from appliance.calls.text import TextConfig
from appliance.config.schema import MediaConfig, Operator, RttConfig, WebRtcConfig
from appliance.media.codecs import TELEPHONE_EVENT, preferred
from appliance.media.endpoint import PortAllocator
from appliance.media.rtcp import MIN_INTERVAL
from appliance.rtt.bridge import TextSettings
from appliance.rtt.transcript import read_transcript, render, transcript_path
from appliance.runtime.health import Health
from appliance.runtime.metrics import Metrics
from appliance.runtime.subsystem import Subsystem
from appliance.sip.events import (
    CallAnswered,
    CallEnded,
    CallProgress,
    DtmfReceived,
    EndCause,
    IncomingCall,
    OfferAnswered,
    OfferFailed,
    OfferReceived,
    RegistrationState,
    SipEvent,
)
from appliance.sip.service import SipService
from appliance.webrtc.host_addresses import HostAddresses
from appliance.webrtc.stack import StackUnavailable, WebRtcStack

if TYPE_CHECKING:
    from types import ModuleType

    from appliance.calls.call import BrowserPacketSink
    from appliance.webrtc.leg import WebRtcLeg

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Identity:
    """An operator as the call layer knows it."""

    name: str
    sip_user: str
    display_name: str


class CallManager(Subsystem):
    """Every call on the box, and the pages that take them."""

    def __init__(
        self,
        sip: SipService,
        operators: list[Operator],
        media: MediaConfig,
        webrtc: WebRtcConfig,
        *,
        health: Health,
        metrics: Metrics,
        state_dir: Path | None = None,
        rtt: RttConfig | None = None,
    ) -> None:
        super().__init__("calls", health)
        rtt = rtt or RttConfig()
        keep = state_dir is not None and rtt.transcripts
        self.transcripts = state_dir / "transcripts" if keep and state_dir else None
        text_settings = TextSettings(
            generations=rtt.redundancy,
            interval=rtt.buffer_time / 1000,
            cps=rtt.cps,
            keepalive=float(rtt.keepalive_interval) or None,
        )
        self.sip = sip
        self.operators = {
            o.name: Identity(o.name, o.sip_user or o.name, o.display_name) for o in operators
        }
        self.by_sip_user = {i.sip_user: i for i in self.operators.values()}
        self.webrtc_config = webrtc
        self.host_addresses = HostAddresses(webrtc, metrics)
        self.sip_accounts = {a.user: a for a in sip.config.accounts}
        self.page_ice_servers: list[Message] = [{"urls": url} for url in webrtc.stun_servers] + [
            {"urls": t.url, "username": t.username, "credential": t.credential}
            for t in webrtc.turn_servers
        ]
        self._ice_servers: list[Any] = []  # aiortc's RTCIceServer, made once the stack loads
        self.stack = WebRtcStack(self._stack_loaded)
        self.settings = MediaSettings(
            codecs=preferred(list(media.codecs)),
            telephone_event=TELEPHONE_EVENT in media.codecs,
            srtp=media.srtp,
            rtp_timeout=float(media.rtp_timeout),
            ice_timeout=float(webrtc.ice_timeout),
            ports=PortAllocator(media.rtp_port_min, media.rtp_port_max),
            leg_factory=self._new_leg,
            text=TextConfig(text_settings, media.srtp, self.transcripts),
        )
        self.calls: dict[str, Call] = {}
        self.by_leg: dict[str, Call] = {}
        self.pages: set[Page] = set()
        self.registered: dict[str, set[Page]] = {}
        self.upstream: dict[str, RegistrationState] = {}
        self._pending: set[asyncio.Task[Any]] = set()
        self.started = metrics.counter(
            "appliance_calls_total", "Calls set up, by direction.", ["direction"]
        )
        self.ended = metrics.counter(
            "appliance_calls_ended_total", "Calls ended, by direction.", ["direction"]
        )
        metrics.gauge(
            "appliance_calls_active",
            "Calls in progress.",
            read=lambda: float(sum(c.state is not State.ENDED for c in self.calls.values())),
        )
        metrics.counter(
            "appliance_relay_packets_total",
            "Audio packets relayed, by direction (phone_to_browser, browser_to_phone).",
            ["direction"],
            read=self._relayed,
        )
        metrics.gauge(
            "appliance_webrtc_stack_loaded",
            "1 once the WebRTC stack (aiortc) is loaded: at the first page or call.",
            read=lambda: float(self.stack.loaded),
        )

    def _stack_loaded(self, leg: ModuleType, hooks: ModuleType) -> None:
        self._ice_servers = leg.ice_servers(self.webrtc_config)
        self.host_addresses.attach(hooks.set_host_addresses)
        hooks.set_rtcp_interval(MIN_INTERVAL)  # the browser leg reports as the phone leg does

    async def _new_leg(
        self, on_audio: BrowserPacketSink, on_state: Callable[[str], None]
    ) -> WebRtcLeg:
        """A call's browser leg; the first one may wait for the WebRTC stack to load."""
        try:
            leg = await self.stack.load()
        except StackUnavailable as exc:
            raise CallError("webrtc-unavailable", str(exc)) from None
        made: WebRtcLeg = leg.WebRtcLeg(self._ice_servers, on_audio=on_audio, on_state=on_state)
        return made

    def _relayed(self) -> dict[tuple[str, ...], float]:
        totals = {"phone_to_browser": 0.0, "browser_to_phone": 0.0}
        for call in self.calls.values():
            if call.audio is not None:
                totals["phone_to_browser"] += call.audio.from_phone
                totals["browser_to_phone"] += call.audio.from_browser
        return {(k,): v for k, v in totals.items()}

    async def start(self) -> None:
        """Apply the ICE address settings and watch the calls' timers."""
        self.host_addresses.refresh()
        self.sip.subscribe(self._sip_event)
        self.spawn(self._watch(), "call timers")
        self.health.ok("no calls")

    def network_changed(self) -> None:
        """The box's addresses changed: calls set up from now on offer the current ones."""
        self.host_addresses.refresh()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for call in list(self.calls.values()):
                call.check_timers(now)

    async def stop(self) -> None:
        """Hang up every call (BYE/CANCEL) and close the browser legs."""
        for call in list(self.calls.values()):
            call.hangup(EndCause.SHUTDOWN.value, 503)
        await self.cancel_tasks()
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)

    def _run(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        """Run one step of a call's flow; a failure ends that call, never the service."""
        task = asyncio.get_running_loop().create_task(coro, name=what)
        self._pending.add(task)
        task.add_done_callback(self._step_done)

    def _step_done(self, task: asyncio.Task[Any]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())

    def _call_ended(self, call: Call) -> None:
        self.ended.inc(direction=call.direction)
        self.by_leg.pop(call.leg, None)
        self.calls.pop(call.id, None)
        for page in self._pages_of(call.operator):
            if page is not call.page:
                page.send(call.describe())
        self._run(call.release(), f"closing the browser leg of call {call.id}")
        self._health()

    def _health(self) -> None:
        active = sum(c.state is not State.ENDED for c in self.calls.values())
        self.health.ok(f"{active} call{'s' if active != 1 else ''}" if active else "no calls")

    def _pages_of(self, operator: str) -> list[Page]:
        return [p for p in self.pages if p.operator == operator]

    # ----- pages ----------------------------------------------------------------------------

    def identity(self, operator: str) -> Identity:
        """The operator's SIP identity."""
        return self.operators[operator]

    def attach(self, page: Page) -> None:
        """A page connected: tell it its calls and registration."""
        self.pages.add(page)
        self.stack.preload()  # a page that can take calls: have the WebRTC stack ready

    def detach(self, page: Page) -> None:
        """A page went away: its calls end (tab closed, network lost)."""
        self.pages.discard(page)
        for pages in self.registered.values():
            pages.discard(page)
        for call in list(self.calls.values()):
            if call.page is page:
                call.page = None
                call.hangup("the call-taker's page was closed")

    def register(self, page: Page) -> Message:
        """Make the page reachable at its operator's SIP identity."""
        identity = self.operators[page.operator]
        self.registered.setdefault(identity.sip_user, set()).add(page)
        return self.registration(page)

    def unregister(self, page: Page) -> Message:
        """The page no longer takes calls."""
        identity = self.operators[page.operator]
        self.registered.get(identity.sip_user, set()).discard(page)
        return self.registration(page)

    def registration(self, page: Page) -> Message:
        """The ``registration`` event for a page."""
        identity = self.operators[page.operator]
        upstream = self.upstream.get(identity.sip_user)
        return {
            "type": "registration",
            "state": "registered"
            if page in self.registered.get(identity.sip_user, set())
            else "unregistered",
            "aor": f"sip:{identity.sip_user}@{self.sip.core.config.domain}",
            "upstream": None
            if upstream is None
            else {"state": upstream.state, "detail": upstream.detail},
        }

    def calls_of(self, page: Page) -> list[Message]:
        """The operator's calls, for a page that (re)connects."""
        return [c.describe() for c in self.calls.values() if c.operator == page.operator]

    def _own(self, page: Page, call_id: object) -> Call:
        call = self.calls.get(call_id) if isinstance(call_id, str) else None
        if call is None or call.operator != page.operator:
            raise CallError("no-such-call", f"no call {call_id!r}")
        if call.page is not None and call.page is not page:
            raise CallError("not-yours", "this call is handled in another window")
        return call

    async def place_call(self, page: Page, target: str, sdp: str) -> Call:
        """The page calls ``target`` (user, number or SIP URI) with its WebRTC offer."""
        identity = self.operators[page.operator]
        address = self.sip.media_address(target)
        if address is None:
            raise CallError("not-found", f"no such user, number or SIP URI: {target!r}")
        call = Call(
            direction="out", operator=page.operator, sip_user=identity.sip_user,
            peer={"uri": target, "name": ""}, sip=self.sip, settings=self.settings,
            local_address=address, on_ended=self._call_ended,
        )  # fmt: skip
        self.calls[call.id] = call
        try:
            await call.start_outgoing(page, target, sdp, identity.display_name)
        except Exception:
            self.calls.pop(call.id, None)
            await call.release()
            if call.endpoint is not None:
                call.endpoint.close()
            if call.text is not None:
                call.text.close()
            raise
        if call.state is not State.ENDED:
            self.by_leg[call.leg] = call
        self.started.inc(direction="out")
        self._health()
        return call

    async def answer(self, page: Page, call_id: object) -> None:
        """The page answers an incoming call; other pages of the operator stop ringing."""
        call = self._own(page, call_id)
        await call.accept(page)
        for other in self._pages_of(call.operator):
            if other is not page:
                other.send({**call.describe(), "state": "answered-elsewhere"})

    async def page_sdp(self, page: Page, call_id: object, kind: object, sdp: object) -> None:
        """The page's answer to the box's offer."""
        call = self._own(page, call_id)
        if kind != "answer" or not isinstance(sdp, str):
            raise CallError("bad-request", "expected kind 'answer' with an sdp string")
        await call.page_answered(sdp)

    async def candidate(
        self, page: Page, call_id: object, candidate: object, mid: object, index: object
    ) -> None:
        """A trickled ICE candidate from the page (RFC 8838)."""
        call = self._own(page, call_id)
        if call.webrtc is None:
            raise CallError("bad-state", "no media session yet")
        if not isinstance(candidate, str):
            raise CallError("bad-request", "candidate must be a string")
        try:
            await call.webrtc.add_candidate(
                candidate, mid if isinstance(mid, str) else None,
                index if isinstance(index, int) else None,
            )  # fmt: skip
        except ValueError as exc:
            raise CallError("bad-request", f"unusable candidate: {exc}") from None

    def decline(self, page: Page, call_id: object) -> None:
        """The page refuses an incoming call."""
        call = self._own(page, call_id)
        if call.direction != "in" or call.state is not State.RINGING:
            raise CallError("bad-state", f"the call is {call.state.value}")
        call.decline()

    def hangup(self, page: Page, call_id: object) -> None:
        """The page hangs up."""
        self._own(page, call_id).hangup("hung up by the call-taker")

    async def hold(self, page: Page, call_id: object, on: bool) -> None:
        """Hold or resume."""
        await self._own(page, call_id).hold(on)

    def transcript(self, page: Page, call_id: object) -> Message:
        """A call's text conversation, in progress or ended, for its operator."""
        if self.transcripts is None or not isinstance(call_id, str):
            raise CallError("no-such-call", f"no transcript for {call_id!r}")
        try:
            path = transcript_path(self.transcripts, call_id)
            entries = read_transcript(path)
        except (ValueError, OSError):
            raise CallError("no-such-call", f"no transcript for {call_id!r}") from None
        if not entries or entries[0].get("operator") != page.operator:
            raise CallError("no-such-call", f"no transcript for {call_id!r}")
        return {"call": call_id, "entries": entries, "text": render(entries)}

    def dtmf(self, page: Page, call_id: object, digits: object) -> None:
        """Send DTMF digits to the phone."""
        if not isinstance(digits, str) or not digits or len(digits) > 32:
            raise CallError("bad-request", "digits must be 1 to 32 characters")
        self._own(page, call_id).send_dtmf(digits)

    # ----- SIP ------------------------------------------------------------------------------

    def _sip_event(self, event: SipEvent) -> bool:
        if isinstance(event, IncomingCall):
            return self._incoming(event)
        if isinstance(event, RegistrationState):
            user = event.aor.split(":", 1)[-1].split("@", 1)[0]
            self.upstream[user] = event
            for page in list(self.pages):
                if self.operators[page.operator].sip_user == user:
                    page.send(self.registration(page))
            return False
        leg = getattr(event, "leg", None)
        call = self.by_leg.get(leg) if isinstance(leg, str) else None
        if call is None:
            return False
        if isinstance(event, CallProgress):
            if call.state is State.CALLING and event.status in (180, 183):
                call.state = State.RINGING
                call.notify()
        elif isinstance(event, CallAnswered):
            self._run(call.phone_answered(event.sdp), f"call {call.id}: phone answered")
        elif isinstance(event, CallEnded):
            cause = event.cause.value
            if event.cause is EndCause.REJECTED and event.status is not None:
                cause = f"{cause} ({event.status} {event.reason})".strip()
            call.sip_ended(cause, event.status)
        elif isinstance(event, OfferReceived):
            call.reoffer_received(event.sdp)
        elif isinstance(event, OfferAnswered):
            call.reoffer_answered(event.sdp)
        elif isinstance(event, OfferFailed):
            call.reoffer_failed(event.status, event.reason)
        elif isinstance(event, DtmfReceived) and call.page is not None:
            call.page.send({"type": "dtmf", "call": call.id, "digit": event.digit})
        return False

    def _incoming(self, event: IncomingCall) -> bool:
        identity = self.by_sip_user.get(event.target_user)
        if identity is None:
            self.sip.reject(event.leg, 404, "Not Found")
            return True
        pages = self.registered.get(identity.sip_user, set())
        if not pages:
            self.sip.reject(event.leg, 480, "Temporarily Unavailable")
            return True
        caller = event.caller
        # A phone that authenticated is named by its account, which the caller cannot
        # choose; the From display name is only a claim (RFC 3261 §22.1).
        account = self.sip_accounts.get(event.account) if event.account else None
        peer = {"uri": str(caller.uri), "name": caller.display_name or ""}
        if account is not None:
            peer = {"uri": str(caller.uri), "name": account.display_name or account.user,
                    "account": account.user}  # fmt: skip
        call = Call(
            direction="in", operator=identity.name, sip_user=identity.sip_user,
            peer=peer,
            sip=self.sip, settings=self.settings,
            local_address=self.sip.local_address_toward(event.source),
            on_ended=self._call_ended,
        )  # fmt: skip
        refusal = call.incoming(event.leg, event.sdp)
        if refusal is not None:
            self.sip.reject(event.leg, refusal, "Not Acceptable Here")
            return True
        self.calls[call.id] = call
        self.by_leg[event.leg] = call
        self.started.inc(direction="in")
        self.sip.ringing(event.leg)
        for page in pages:
            page.send({**call.describe(), "type": "incoming"})
        self._health()
        return True
