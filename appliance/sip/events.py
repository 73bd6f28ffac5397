"""Events the SIP core reports to the layer above (calls, operators, health).

A call leg is named by an opaque ``leg`` string the core chose. SDP bodies pass through
as bytes; the SIP core never interprets them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from appliance.sip.address import Peer
from appliance.sip.headers import Headers, NameAddr


class EndCause(enum.Enum):
    """Why a call leg ended, in words a call-taker understands."""

    LOCAL_HANGUP = "hung up here"
    REMOTE_HANGUP = "the other party hung up"
    CANCELLED = "cancelled before answer"
    REMOTE_CANCELLED = "the caller gave up before answer"
    REJECTED = "the call was refused"
    NO_ANSWER = "no answer"
    TIMEOUT = "the other party stopped responding"
    TRANSPORT_ERROR = "the other party could not be reached"
    NO_ACK = "the other party never confirmed the answer"
    SESSION_EXPIRED = "the session was not refreshed in time"
    DIALOG_GONE = "the other party no longer knows this call"
    NOT_FOUND = "no such user or number"
    SHUTDOWN = "the gateway is shutting down"


@dataclass(frozen=True)
class IncomingCall:
    """A new INVITE the upper layer must answer, ring or reject (§13.3)."""

    leg: str
    caller: NameAddr
    callee: NameAddr
    target_user: str
    sdp: bytes | None
    headers: Headers
    source: Peer
    account: str | None = None  # the [[sip.accounts]] user that authenticated (§22)


@dataclass(frozen=True)
class CallProgress:
    """A provisional response to our INVITE (§13.2.2.1)."""

    leg: str
    status: int
    reason: str
    sdp: bytes | None


@dataclass(frozen=True)
class CallAnswered:
    """A 2xx to our INVITE; the ACK is already sent (§13.2.2.4)."""

    leg: str
    sdp: bytes | None


@dataclass(frozen=True)
class CallConfirmed:
    """The ACK for our 2xx arrived (§13.3.1.4); ``sdp`` is an answer carried in the ACK."""

    leg: str
    sdp: bytes | None


@dataclass(frozen=True)
class CallEnded:
    """The leg is over; ``status`` is the SIP status that ended it, when one did."""

    leg: str
    cause: EndCause
    status: int | None = None
    reason: str = ""


@dataclass(frozen=True)
class OfferReceived:
    """A re-INVITE or UPDATE carrying an offer; answer with ``answer_offer`` (§14.2)."""

    leg: str
    sdp: bytes
    method: str


@dataclass(frozen=True)
class OfferAnswered:
    """Our re-INVITE or UPDATE was accepted; ``sdp`` is the answer (§14.1)."""

    leg: str
    sdp: bytes | None


@dataclass(frozen=True)
class OfferFailed:
    """Our re-INVITE failed; the session goes on as before (§14.1)."""

    leg: str
    status: int
    reason: str


@dataclass(frozen=True)
class DtmfReceived:
    """A DTMF digit signalled by INFO (application/dtmf-relay or application/dtmf)."""

    leg: str
    digit: str
    duration_ms: int


@dataclass(frozen=True)
class MessageReceived:
    """A MESSAGE (RFC 3428); out of dialog it must be answered with ``respond``."""

    request_id: str | None
    leg: str | None
    sender: NameAddr
    recipient: NameAddr
    target_user: str
    content_type: str
    body: bytes


@dataclass(frozen=True)
class RequestCompleted:
    """The final outcome of a request sent with ``send_message`` or ``send_info``."""

    request_id: str
    status: int
    reason: str


@dataclass(frozen=True)
class BindingsChanged:
    """The contacts registered for a local address-of-record changed (§10.3)."""

    aor: str
    contacts: tuple[str, ...]


@dataclass(frozen=True)
class RegistrationState:
    """An upstream registration's state: registered, failed, or unregistered."""

    aor: str
    state: str
    detail: str
    expires: int | None = None


@dataclass(frozen=True)
class UpstreamReachability:
    """OPTIONS keepalives toward the upstream succeed or fail."""

    reachable: bool
    detail: str


SipEvent = (
    IncomingCall | CallProgress | CallAnswered | CallConfirmed | CallEnded | OfferReceived
    | OfferAnswered | OfferFailed | DtmfReceived | MessageReceived | RequestCompleted
    | BindingsChanged | RegistrationState | UpstreamReachability
)  # fmt: skip
