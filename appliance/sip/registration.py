"""Registration toward an upstream registrar (RFC 3261 §10.2), sans-I/O.

One :class:`RegistrationClient` per address-of-record: it registers, answers digest
challenges, refreshes before expiry, backs off exponentially after failures (RFC 5626
§4.5 shape: 30 s doubling to 30 min, with jitter), honours 423 Min-Expires and
Retry-After, and re-registers at once when the network changes.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass

from appliance.sip.auth import DigestClient, best_challenge
from appliance.sip.grammar import SipSyntaxError
from appliance.sip.headers import parse_int
from appliance.sip.message import Response
from appliance.sip.uri import SipUri

BACKOFF_BASE = 30.0
BACKOFF_MAX = 1800.0


class RegState(enum.Enum):
    """Where a registration stands."""

    IDLE = "idle"
    REGISTERING = "registering"
    REGISTERED = "registered"
    FAILED = "failed"
    UNREGISTERING = "unregistering"
    UNREGISTERED = "unregistered"


@dataclass
class Attempt:
    """What the client asks its owner to send: a REGISTER with these headers."""

    expires: int
    authorization: tuple[str, str] | None


class RegistrationClient:
    """The state machine of one upstream registration."""

    def __init__(
        self,
        aor: str,
        expires: int,
        credentials: DigestClient | None,
        registrar_uri: str,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.aor = aor
        self.wanted = expires
        self.credentials = credentials
        self.registrar_uri = registrar_uri
        self.state = RegState.IDLE
        self.failures = 0
        self.granted: int | None = None
        self.deadline: float | None = None
        self.detail = ""
        self._rand = rand
        self._challenged_nonces: set[str] = set()
        self.contact: SipUri | None = None  # set by the owner when it builds the REGISTER
        self.call_id: str | None = None  # one Call-ID for every REGISTER (§10.2)
        self.cseq = 0

    def start(self, now: float) -> Attempt:
        """Begin (or restart) registering now."""
        self.state = RegState.REGISTERING
        self.deadline = None
        self._challenged_nonces.clear()
        return Attempt(self.wanted, None)

    def stop(self) -> Attempt | None:
        """Unregister (Expires: 0) if registered; otherwise just stop."""
        self.deadline = None
        if self.state is RegState.REGISTERED:
            self.state = RegState.UNREGISTERING
            return Attempt(0, None)
        self.state = RegState.UNREGISTERED
        return None

    def on_response(self, response: Response, now: float, method_uri: str) -> Attempt | None:
        """A final response to our REGISTER; returns a follow-up attempt if one is due now."""
        status = response.status
        unregistering = self.state is RegState.UNREGISTERING
        wanted = 0 if unregistering else self.wanted
        if status in (401, 407) and self.credentials is not None:
            proxy = status == 407
            name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
            challenge = best_challenge(response.headers.lines(name), proxy=proxy)
            if challenge is not None and (
                challenge.stale or challenge.nonce not in self._challenged_nonces
            ):
                self._challenged_nonces.add(challenge.nonce)
                header = self.credentials.authorization(challenge, "REGISTER", method_uri)
                return Attempt(wanted, header)
            self._fail(now, f"{status} {response.reason}: credentials refused")
            return None
        if unregistering:
            self.state = RegState.UNREGISTERED
            self.detail = f"unregistered ({status})"
            return None
        if 200 <= status < 300:
            self.granted = self._granted(response)
            self.state = RegState.REGISTERED
            self.failures = 0
            self.detail = f"registered for {self.granted} s"
            self._challenged_nonces.clear()
            # Refresh well before expiry: at 80 % of the granted time, at least 5 s before.
            self.deadline = now + max(1.0, min(self.granted * 0.8, self.granted - 5.0))
            return None
        if status == 423:
            try:
                minimum = parse_int(
                    response.headers.get("Min-Expires"), maximum=2**32 - 1, what="Min-Expires"
                )
            except SipSyntaxError:
                minimum = None
            if minimum is not None and minimum > self.wanted:
                self.wanted = minimum
                return Attempt(self.wanted, None)
        self._fail(now, f"{status} {response.reason}", self._retry_after(response))
        return None

    def on_timeout(self, now: float, what: str) -> None:
        """No final response (Timer F) or a transport error."""
        if self.state is RegState.UNREGISTERING:
            self.state = RegState.UNREGISTERED
            return
        self._fail(now, what)

    def _fail(self, now: float, detail: str, retry_after: float | None = None) -> None:
        self.failures += 1
        self.state = RegState.FAILED
        self.granted = None
        delay = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (self.failures - 1))
        delay *= 0.5 + 0.5 * self._rand()  # jitter: 50-100 % of the step
        if retry_after is not None:
            delay = max(delay, retry_after)
        self.deadline = now + delay
        self.detail = f"{detail}; retrying in {delay:.0f} s"

    def due(self, now: float) -> Attempt | None:
        """The refresh or retry that is due at ``now``, if any."""
        if self.deadline is None or now < self.deadline:
            return None
        if self.state in (RegState.REGISTERED, RegState.FAILED):
            self.deadline = None
            self.state = RegState.REGISTERING
            self._challenged_nonces.clear()
            return Attempt(self.wanted, None)
        return None

    def _granted(self, response: Response) -> int:
        """The expiry the registrar granted (§10.2.4): our Contact's expires, else Expires."""
        try:
            contacts = response.contacts or []
            expires = response.expires
        except SipSyntaxError:
            contacts, expires = [], None
        for contact in contacts:
            mine = (
                self.contact is not None
                and isinstance(contact.uri, SipUri)
                and (contact.uri.equivalent(self.contact))
            )
            value = contact.params.get("expires")
            if mine and value is not None and value.isdigit():
                return int(value)
        return expires if expires is not None else self.wanted

    @staticmethod
    def _retry_after(response: Response) -> float | None:
        value = response.headers.get("Retry-After")
        if value is None:
            return None
        head = value.split(";")[0].split("(")[0].strip()
        return float(head) if head.isdigit() else None
