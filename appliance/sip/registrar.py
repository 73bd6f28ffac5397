"""The registrar: bindings of address-of-record to contacts (RFC 3261 §10.3), sans-I/O.

The box is the registrar of its own domain: an address-of-record is a user name.
Each binding remembers the flow (transport address and stream connection) its REGISTER
arrived on, so requests reach phones behind NAT or on TCP the way they registered.
Times are monotonic ``now`` values; :meth:`Registrar.dump`/:meth:`Registrar.load` turn
them into wall-clock expiry for the state file, so bindings survive a restart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from appliance.sip.address import Peer
from appliance.sip.grammar import SipSyntaxError
from appliance.sip.headers import NameAddr, parse_int
from appliance.sip.message import Request
from appliance.sip.uri import SipUri


@dataclass(frozen=True)
class Binding:
    """One contact registered for an address-of-record."""

    aor: str
    contact: NameAddr
    expires_at: float
    call_id: str
    cseq: int
    q: float
    flow: Peer
    user_agent: str = ""

    def remaining(self, now: float) -> int:
        """Seconds until expiry, rounded up."""
        return max(0, math.ceil(self.expires_at - now))


@dataclass(frozen=True)
class RegisterResult:
    """What to answer a REGISTER with."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    changed: bool = False


class Registrar:
    """Bindings per address-of-record with the checks of RFC 3261 §10.3 steps 6-8."""

    def __init__(self, min_expires: int, max_expires: int, default_expires: int) -> None:
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.default_expires = default_expires
        self._bindings: dict[str, list[Binding]] = {}

    def register(self, request: Request, aor: str, flow: Peer, now: float) -> RegisterResult:
        """Apply a REGISTER for ``aor`` that already passed authentication (steps 1-5)."""
        self.expire(now)
        try:
            contacts = request.contacts
            header_expires = request.expires
            call_id = request.call_id
            cseq = request.cseq.number
        except SipSyntaxError as exc:
            return RegisterResult(400, f"Bad Request ({exc})", [])
        if contacts is None:  # "*": §10.3 step 6, only with Expires: 0
            if header_expires != 0:
                return RegisterResult(400, "Bad Request (Contact: * needs Expires: 0)", [])
            return self._remove_all(aor, call_id, cseq, now)
        plans: list[tuple[NameAddr, int, float]] = []
        for contact in contacts:
            try:
                expires = parse_int(
                    contact.params.get("expires"), maximum=2**32 - 1, what="expires"
                )
                q = float(contact.params.get("q") or 1.0)
            except (SipSyntaxError, ValueError):
                return RegisterResult(400, "Bad Request (bad expires or q parameter)", [])
            if expires is None:
                expires = header_expires if header_expires is not None else self.default_expires
            if 0 < expires < self.min_expires:  # step 7: 423 with Min-Expires
                return RegisterResult(
                    423, "Interval Too Brief", [("Min-Expires", str(self.min_expires))]
                )
            if not 0 <= q <= 1:
                return RegisterResult(400, "Bad Request (q outside 0-1)", [])
            plans.append((contact, min(expires, self.max_expires), q))
        current = list(self._bindings.get(aor, []))
        changed = False
        for contact, expires, q in plans:
            existing = next((b for b in current if _same_contact(b.contact, contact)), None)
            if existing is not None and existing.call_id == call_id and cseq <= existing.cseq:
                # Step 7: an out-of-order REGISTER for the same Call-ID fails.
                return RegisterResult(
                    500, "Server Internal Error (out-of-order CSeq)", [("Retry-After", "1")]
                )
            if existing is not None:
                current.remove(existing)
                changed = True
            if expires > 0:
                clean = NameAddr(
                    contact.uri,
                    contact.display_name,
                    {k: v for k, v in contact.params.items() if k not in ("expires", "q")},
                )
                current.append(
                    Binding(
                        aor,
                        clean,
                        now + expires,
                        call_id,
                        cseq,
                        q,
                        flow,
                        request.headers.get("User-Agent") or "",
                    )
                )
                changed = True
        if current:
            self._bindings[aor] = current
        else:
            self._bindings.pop(aor, None)
        return RegisterResult(200, "OK", self._contact_headers(aor, now), changed)

    def _remove_all(self, aor: str, call_id: str, cseq: int, now: float) -> RegisterResult:
        current = self._bindings.get(aor, [])
        for binding in current:
            if binding.call_id == call_id and cseq <= binding.cseq:
                return RegisterResult(
                    500, "Server Internal Error (out-of-order CSeq)", [("Retry-After", "1")]
                )
        changed = bool(current)
        self._bindings.pop(aor, None)
        return RegisterResult(200, "OK", [], changed)

    def _contact_headers(self, aor: str, now: float) -> list[tuple[str, str]]:
        """Step 8: every current binding with its expires parameter."""
        return [
            (
                "Contact",
                str(
                    replace(
                        b.contact, params={**b.contact.params, "expires": str(b.remaining(now))}
                    )
                ),
            )
            for b in self._bindings.get(aor, [])
        ]

    def lookup(self, aor: str, now: float) -> list[Binding]:
        """Live bindings, best first: highest q, then the most recently refreshed."""
        self.expire(now)
        return sorted(self._bindings.get(aor, []), key=lambda b: (-b.q, -b.expires_at))

    def expire(self, now: float) -> list[Binding]:
        """Drop expired bindings; return them."""
        gone: list[Binding] = []
        for aor in list(self._bindings):
            keep = [b for b in self._bindings[aor] if b.expires_at > now]
            gone += [b for b in self._bindings[aor] if b.expires_at <= now]
            if keep:
                self._bindings[aor] = keep
            else:
                del self._bindings[aor]
        return gone

    def deadline(self) -> float | None:
        """When the next binding expires (the core schedules expiry on it)."""
        return self.next_expiry()

    def next_expiry(self) -> float | None:
        """When the next binding expires."""
        times = [b.expires_at for bindings in self._bindings.values() for b in bindings]
        return min(times) if times else None

    def all(self, now: float) -> dict[str, list[Binding]]:
        """Every live binding by address-of-record."""
        self.expire(now)
        return {aor: list(b) for aor, b in self._bindings.items()}

    def dump(self, now: float, wall: float) -> list[dict[str, Any]]:
        """Bindings as JSON-ready records with wall-clock expiry."""
        records = []
        for bindings in self._bindings.values():
            for b in bindings:
                records.append({
                    "aor": b.aor, "contact": str(b.contact),
                    "expires": wall + (b.expires_at - now), "call_id": b.call_id,
                    "cseq": b.cseq, "q": b.q, "user_agent": b.user_agent,
                    "flow": [b.flow.transport, b.flow.host, b.flow.port],
                })  # fmt: skip
        return records

    def load(self, records: list[dict[str, Any]], now: float, wall: float) -> int:
        """Restore bindings saved by :meth:`dump`; skip expired or malformed ones."""
        count = 0
        for record in records:
            try:
                expires_at = now + (float(record["expires"]) - wall)
                if expires_at <= now:
                    continue
                transport, host, port = record["flow"]
                binding = Binding(
                    aor=str(record["aor"]), contact=NameAddr.parse(str(record["contact"])),
                    expires_at=expires_at, call_id=str(record["call_id"]),
                    cseq=int(record["cseq"]), q=float(record["q"]),
                    flow=Peer(str(transport), str(host), int(port)),
                    user_agent=str(record.get("user_agent", "")),
                )  # fmt: skip
            except (KeyError, TypeError, ValueError, SipSyntaxError):
                continue
            self._bindings.setdefault(binding.aor, []).append(binding)
            count += 1
        return count


def _same_contact(a: NameAddr, b: NameAddr) -> bool:
    """Contact identity by URI comparison (§10.3 step 7, §19.1.4)."""
    if isinstance(a.uri, SipUri) and isinstance(b.uri, SipUri):
        return a.uri.equivalent(b.uri)
    return str(a.uri) == str(b.uri)
