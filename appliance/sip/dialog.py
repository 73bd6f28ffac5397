"""Dialogs (RFC 3261 §12): identity, route set, remote target and CSeq rules."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from appliance.sip.address import Peer, next_hop
from appliance.sip.grammar import SipSyntaxError
from appliance.sip.headers import Headers, NameAddr
from appliance.sip.message import Request, Response
from appliance.sip.uri import SipUri, Uri


@dataclass
class Dialog:
    """The state of one dialog, as a UAC or a UAS."""

    call_id: str
    local_tag: str
    remote_tag: str
    local: NameAddr  # our From/To value without tag
    remote: NameAddr  # theirs, without tag
    remote_target: Uri
    route_set: list[NameAddr] = field(default_factory=list)
    local_seq: int = 0
    remote_seq: int | None = None
    secure: bool = False
    flow: Peer | None = None  # the connection/address the peer uses, when no route set applies

    @property
    def id(self) -> tuple[str, str, str]:
        """Call-ID, local tag, remote tag (§12)."""
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def as_uas(cls, request: Request, local_tag: str, flow: Peer) -> Dialog:
        """A dialog from the INVITE we answer (§12.1.1): route set in Record-Route order."""
        contacts = request.contacts or []
        if len(contacts) > 1:
            raise SipSyntaxError("a dialog-creating request needs exactly one Contact")
        remote = request.from_
        local = request.to
        # RFC 2543 requests may lack a Contact: the From URI is the target then.
        target = contacts[0].uri if contacts else remote.uri
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=remote.tag or "",
            local=NameAddr(local.uri, local.display_name, _without_tag(local.params)),
            remote=NameAddr(remote.uri, remote.display_name, _without_tag(remote.params)),
            remote_target=target,
            route_set=[NameAddr.parse(v) for v in request.headers.values("Record-Route")],
            local_seq=random.randint(1, 2**30),  # noqa: S311 - not a secret, §8.1.1.5
            remote_seq=request.cseq.number,
            secure=isinstance(request.uri, SipUri) and request.uri.scheme == "sips",
            flow=flow,
        )

    @classmethod
    def as_uac(cls, request: Request, response: Response, flow: Peer) -> Dialog:
        """A dialog from a 1xx/2xx with a To tag to our INVITE (§12.1.2): route set reversed."""
        contacts = response.contacts or []
        to = response.to
        local = request.from_
        target: Uri = contacts[0].uri if contacts else request.uri
        return cls(
            call_id=request.call_id,
            local_tag=local.tag or "",
            remote_tag=to.tag or "",
            local=NameAddr(local.uri, local.display_name, _without_tag(local.params)),
            remote=NameAddr(to.uri, to.display_name, _without_tag(to.params)),
            remote_target=target,
            route_set=[
                NameAddr.parse(v) for v in reversed(response.headers.values("Record-Route"))
            ],
            local_seq=request.cseq.number,
            secure=isinstance(request.uri, SipUri) and request.uri.scheme == "sips",
            flow=flow,
        )

    def refresh_target(self, message: Request | Response) -> None:
        """Target refresh (§12.2.1.2, §12.2.2): a Contact in re-INVITE/UPDATE or its 2xx."""
        try:
            contacts = message.contacts or []
        except SipSyntaxError:
            return
        if len(contacts) == 1:
            self.remote_target = contacts[0].uri

    def accept_remote_cseq(self, number: int) -> bool:
        """§12.2.2: a request whose CSeq is lower than the last one is out of order."""
        if self.remote_seq is not None and number < self.remote_seq:
            return False
        self.remote_seq = number
        return True

    def next_cseq(self) -> int:
        """The CSeq number for a new request in the dialog (§12.2.1.1)."""
        self.local_seq += 1
        return self.local_seq

    def request(self, method: str, cseq: int | None = None) -> Request:
        """A request within the dialog without Via and Contact (§12.2.1.1)."""
        headers = Headers()
        uri, routes = self._uri_and_routes()
        for route in routes:
            headers.add("Route", route)
        headers.add("Max-Forwards", "70")
        headers.add("From", str(self.local.with_tag(self.local_tag)))
        remote = self.remote.with_tag(self.remote_tag) if self.remote_tag else self.remote
        headers.add("To", str(remote))
        headers.add("Call-ID", self.call_id)
        number = cseq if cseq is not None else self.next_cseq()
        headers.add("CSeq", f"{number} {method}")
        return Request(method, uri, headers)

    def _uri_and_routes(self) -> tuple[Uri, list[str]]:
        """Request-URI and Route values for loose and strict routing (§12.2.1.1)."""
        if not self.route_set:
            return self.remote_target, []
        first = self.route_set[0]
        if isinstance(first.uri, SipUri) and "lr" in first.uri.params:
            return self.remote_target, [str(r) for r in self.route_set]
        # Strict routing: the first route becomes the Request-URI, the target goes last.
        uri = first.uri
        if isinstance(uri, SipUri):
            uri = uri.without_params("method", "maddr", "ttl", "transport", "lr")
        rest = [str(r) for r in self.route_set[1:]] + [f"<{self.remote_target}>"]
        return uri, rest

    def destination(self) -> Peer | None:
        """Where requests go: the first route, else the flow, else the remote target (§8.1.2)."""
        if self.route_set and isinstance(self.route_set[0].uri, SipUri):
            return next_hop(self.route_set[0].uri)
        if self.flow is not None:
            return self.flow
        if isinstance(self.remote_target, SipUri):
            return next_hop(self.remote_target)
        return None


def _without_tag(params: dict[str, str | None]) -> dict[str, str | None]:
    return {k: v for k, v in params.items() if k != "tag"}
