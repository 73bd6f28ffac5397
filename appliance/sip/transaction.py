"""SIP transactions (RFC 3261 §17, with the Accepted state of RFC 6026), sans-I/O.

Each transaction is a state machine fed with messages and a clock value ``now``; it
returns :class:`TxEvent` values for the transaction user (TU) and queues bytes in
``outbox`` for the transport. Timers are deadlines in ``timers``: the owner calls
:meth:`Transaction.handle_timer` once ``now`` reaches :meth:`Transaction.deadline`.

Timer names and values follow RFC 3261 Table 4 (A-K) and RFC 6026 (L, M).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from appliance.sip.headers import Headers
from appliance.sip.message import Request, Response

MAGIC_COOKIE = "z9hG4bK"  # §8.1.1.7


@dataclass(frozen=True)
class TimerValues:
    """T1, T2, T4 in seconds (§17.1.1.1, §17.1.2.2)."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0


class State(enum.Enum):
    """Transaction states (§17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2; RFC 6026 §7)."""

    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class TxEventKind(enum.Enum):
    """What a transaction tells its user."""

    RESPONSE = "response"  # a response the TU must see (client side)
    TIMEOUT = "timeout"  # Timer B/F (client) or H (server: no ACK) fired
    TRANSPORT_ERROR = "transport-error"  # §17.1.4, §17.2.4
    ACK = "ack"  # the ACK for a non-2xx final response arrived (server INVITE)
    TERMINATED = "terminated"


@dataclass(frozen=True)
class TxEvent:
    """One event for the TU."""

    kind: TxEventKind
    transaction: Transaction
    response: Response | None = None


def is_reliable(transport: str) -> bool:
    """TCP, TLS, SCTP and WebSocket transports are reliable (§17.1.1.2)."""
    return transport.lower() != "udp"


class Transaction:
    """State, timers and outbox shared by every kind of transaction."""

    kind = "transaction"

    def __init__(
        self, key: tuple[str, ...], request: Request, reliable: bool, timers: TimerValues
    ) -> None:
        self.key = key
        self.request = request
        self.reliable = reliable
        self.t = timers
        self.state = State.TRYING
        self.timers: dict[str, float] = {}
        self.outbox: list[bytes] = []
        self._intervals: dict[str, float] = {}

    def deadline(self) -> float | None:
        """The earliest timer deadline, if any timer runs."""
        return min(self.timers.values()) if self.timers else None

    def _start(self, name: str, now: float, after: float) -> None:
        self.timers[name] = now + after
        self._intervals[name] = after

    def _terminate(self) -> list[TxEvent]:
        self.state = State.TERMINATED
        self.timers.clear()
        return [TxEvent(TxEventKind.TERMINATED, self)]

    @property
    def terminated(self) -> bool:
        """Whether the transaction is over."""
        return self.state is State.TERMINATED

    def handle_timer(self, now: float) -> list[TxEvent]:
        """Fire every timer due at ``now``, earliest first."""
        events: list[TxEvent] = []
        while self.timers and not self.terminated:
            name = min(self.timers, key=self.timers.__getitem__)
            if self.timers[name] > now:
                break
            del self.timers[name]
            events += self._fire(name, now)
        return events

    def _fire(self, name: str, now: float) -> list[TxEvent]:
        """Act on timer ``name``; each kind of transaction defines its own."""
        return []

    def transport_error(self) -> list[TxEvent]:
        """The transport could not deliver (§17.1.4, §17.2.4): inform the TU and end."""
        if self.terminated:
            return []
        return [TxEvent(TxEventKind.TRANSPORT_ERROR, self), *self._terminate()]


class ClientTransaction(Transaction):
    """Common parts of client transactions: the request sent and responses matched."""

    def __init__(self, request: Request, reliable: bool, timers: TimerValues) -> None:
        branch = request.top_via.branch or ""
        method = request.method
        super().__init__((branch, method), request, reliable, timers)
        self.last_response: Response | None = None


class ClientInviteTransaction(ClientTransaction):
    """§17.1.1 with RFC 6026: Calling, Proceeding, Accepted, Completed, Terminated."""

    kind = "client INVITE"

    def start(self, now: float) -> None:
        """Send the INVITE; start timers A (unreliable) and B."""
        self.state = State.CALLING
        self.outbox.append(self.request.encode())
        if not self.reliable:
            self._start("A", now, self.t.t1)
        self._start("B", now, 64 * self.t.t1)

    def receive_response(self, response: Response, now: float) -> list[TxEvent]:
        """A response whose branch and method matched this transaction (§17.1.3)."""
        status = response.status
        if self.state in (State.CALLING, State.PROCEEDING):
            self.last_response = response
            if status < 200:
                self.state = State.PROCEEDING
                self.timers.pop("A", None)
                return [TxEvent(TxEventKind.RESPONSE, self, response)]
            self.timers.pop("A", None)
            self.timers.pop("B", None)
            if status < 300:
                # RFC 6026 §7.2: Accepted; 2xx retransmissions go to the TU for re-ACK.
                self.state = State.ACCEPTED
                self._start("M", now, 64 * self.t.t1)
                return [TxEvent(TxEventKind.RESPONSE, self, response)]
            self.state = State.COMPLETED
            self.outbox.append(self.ack_for(response).encode())
            self._start("D", now, 0 if self.reliable else max(32.0, 64 * self.t.t1))
            return [TxEvent(TxEventKind.RESPONSE, self, response)]
        if self.state is State.ACCEPTED and 200 <= status < 300:
            return [TxEvent(TxEventKind.RESPONSE, self, response)]
        if self.state is State.COMPLETED and status >= 300:
            self.outbox.append(self.ack_for(response).encode())  # §17.1.1.2: re-ACK
        return []

    def ack_for(self, response: Response) -> Request:
        """The ACK for a non-2xx final response, built per §17.1.1.3."""
        request = self.request
        headers = Headers()
        headers.add("Via", request.headers.values("Via")[0])
        for name in ("Max-Forwards", "From", "Call-ID"):
            value = request.headers.get(name)
            if value is not None:
                headers.add(name, value)
        to_value = response.headers.get("To")
        if to_value is not None:
            headers.add("To", to_value)
        headers.add("CSeq", f"{request.cseq.number} ACK")
        for value in request.headers.lines("Route"):
            headers.add("Route", value)
        return Request("ACK", request.uri, headers)

    def _fire(self, name: str, now: float) -> list[TxEvent]:
        if name == "A" and self.state is State.CALLING:
            self.outbox.append(self.request.encode())
            self._start("A", now, 2 * self._intervals["A"])
            return []
        if name == "B" and self.state is State.CALLING:
            return [TxEvent(TxEventKind.TIMEOUT, self), *self._terminate()]
        if name in ("D", "M"):
            return self._terminate()
        return []


class ClientNonInviteTransaction(ClientTransaction):
    """§17.1.2: Trying, Proceeding, Completed, Terminated."""

    kind = "client non-INVITE"

    def start(self, now: float) -> None:
        """Send the request; start timers E (unreliable) and F."""
        self.state = State.TRYING
        self.outbox.append(self.request.encode())
        if not self.reliable:
            self._start("E", now, self.t.t1)
        self._start("F", now, 64 * self.t.t1)

    def receive_response(self, response: Response, now: float) -> list[TxEvent]:
        """A matching response."""
        if self.state not in (State.TRYING, State.PROCEEDING):
            return []  # Completed absorbs retransmitted finals
        self.last_response = response
        if response.status < 200:
            self.state = State.PROCEEDING
            return [TxEvent(TxEventKind.RESPONSE, self, response)]
        self.state = State.COMPLETED
        self.timers.pop("E", None)
        self.timers.pop("F", None)
        self._start("K", now, 0 if self.reliable else self.t.t4)
        return [TxEvent(TxEventKind.RESPONSE, self, response)]

    def _fire(self, name: str, now: float) -> list[TxEvent]:
        if name == "E" and self.state in (State.TRYING, State.PROCEEDING):
            self.outbox.append(self.request.encode())
            # §17.1.2.2: doubling up to T2 while Trying; T2 once Proceeding.
            interval = (
                self.t.t2
                if self.state is State.PROCEEDING
                else min(2 * self._intervals["E"], self.t.t2)
            )
            self._start("E", now, interval)
            return []
        if name == "F" and self.state in (State.TRYING, State.PROCEEDING):
            return [TxEvent(TxEventKind.TIMEOUT, self), *self._terminate()]
        if name == "K":
            return self._terminate()
        return []


def server_key(request: Request, method: str | None = None) -> tuple[str, ...]:
    """The server transaction key of §17.2.3 (RFC 2543 requests keyed on §17.2.3's list).

    ``method`` overrides the request's own: a CANCEL is matched to its INVITE (§9.2).
    """
    via = request.top_via
    method = method or ("INVITE" if request.method == "ACK" else request.method)
    branch = via.branch or ""
    host, port = via.sent_by
    if branch.startswith(MAGIC_COOKIE):
        return (branch, host.lower(), str(port or ""), method)
    cseq = request.cseq
    from_tag = request.from_.tag or ""
    return ("rfc2543", request.call_id, from_tag, str(cseq.number), method, str(via))


class ServerTransaction(Transaction):
    """Common parts of server transactions: responses sent, retransmissions absorbed."""

    def __init__(self, request: Request, reliable: bool, timers: TimerValues) -> None:
        super().__init__(server_key(request), request, reliable, timers)
        self.last_response: Response | None = None

    def _send(self, response: Response) -> None:
        self.last_response = response
        self.outbox.append(response.encode())


class ServerInviteTransaction(ServerTransaction):
    """§17.2.1 with RFC 6026: Proceeding, Accepted, Completed, Confirmed, Terminated."""

    kind = "server INVITE"

    def __init__(self, request: Request, reliable: bool, timers: TimerValues) -> None:
        super().__init__(request, reliable, timers)
        self.state = State.PROCEEDING

    def send_response(self, response: Response, now: float) -> list[TxEvent]:
        """Send a response from the TU."""
        if self.state is not State.PROCEEDING:
            return []
        self._send(response)
        if response.status < 200:
            return []
        if response.status < 300:
            # RFC 6026 §7.1: Accepted absorbs INVITE retransmissions; the TU resends the 2xx.
            self.state = State.ACCEPTED
            self._start("L", now, 64 * self.t.t1)
            return []
        self.state = State.COMPLETED
        if not self.reliable:
            self._start("G", now, self.t.t1)
        self._start("H", now, 64 * self.t.t1)
        return []

    def receive_request(self, request: Request, now: float) -> list[TxEvent]:
        """A retransmitted INVITE, or an ACK for a non-2xx final response."""
        if request.method == "ACK":
            if self.state is State.COMPLETED:
                self.state = State.CONFIRMED
                self.timers.pop("G", None)
                self.timers.pop("H", None)
                self._start("I", now, 0 if self.reliable else self.t.t4)
                return [TxEvent(TxEventKind.ACK, self)]
            return []
        if self.state in (State.PROCEEDING, State.COMPLETED) and self.last_response is not None:
            self.outbox.append(self.last_response.encode())  # §17.2.1
        return []

    def _fire(self, name: str, now: float) -> list[TxEvent]:
        if name == "G" and self.state is State.COMPLETED and self.last_response is not None:
            self.outbox.append(self.last_response.encode())
            self._start("G", now, min(2 * self._intervals["G"], self.t.t2))
            return []
        if name == "H" and self.state is State.COMPLETED:
            return [TxEvent(TxEventKind.TIMEOUT, self), *self._terminate()]
        if name in ("I", "L"):
            return self._terminate()
        return []


class ServerNonInviteTransaction(ServerTransaction):
    """§17.2.2: Trying, Proceeding, Completed, Terminated."""

    kind = "server non-INVITE"

    def send_response(self, response: Response, now: float) -> list[TxEvent]:
        """Send a response from the TU."""
        if self.state not in (State.TRYING, State.PROCEEDING):
            return []
        self._send(response)
        if response.status < 200:
            self.state = State.PROCEEDING
            return []
        self.state = State.COMPLETED
        self._start("J", now, 0 if self.reliable else 64 * self.t.t1)
        return []

    def receive_request(self, request: Request, now: float) -> list[TxEvent]:
        """A retransmission: resend the last response, if any (§17.2.2)."""
        if self.state in (State.PROCEEDING, State.COMPLETED) and self.last_response is not None:
            self.outbox.append(self.last_response.encode())
        return []

    def _fire(self, name: str, now: float) -> list[TxEvent]:
        if name == "J":
            return self._terminate()
        return []
