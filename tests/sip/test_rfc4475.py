"""All 49 torture messages of RFC 4475 through the parser and through the core.

Valid messages parse; invalid ones are refused cleanly (a 4xx/5xx where the request can
be answered, silence for unanswerable ones and for stray responses); nothing raises out
of the transport entry point, over UDP or TCP.
"""

from __future__ import annotations

import pytest

from appliance.sip.address import Peer
from appliance.sip.events import IncomingCall
from appliance.sip.framing import Framed, FramingError, StreamFramer
from appliance.sip.message import ParseError, Request, Response, parse_message
from tests.sip.rfc4475_messages import MESSAGES, TortureMessage
from tests.sip.scripted import harness

BY_NAME = {m.name: m for m in MESSAGES}

# What the box answers over UDP. None: no answer (a response, or nothing to answer to);
# "call": an INVITE accepted and handed to the call layer (100 Trying, then an event).
EXPECTED: dict[str, set[int] | str | None] = {
    # wsinv's To carries a tag: a request in a dialog the box does not know (§12.2.2).
    "wsinv": {481}, "intmeth": {501}, "esc01": "call", "escnull": {404},
    "esc02": {501}, "lwsdisp": {200}, "longreq": "call", "dblreq": {200},
    "semiuri": {200}, "transports": {200}, "mpart01": {415}, "unreason": None,
    "noreason": None, "badinv01": {400}, "clerr": {400}, "ncl": {400}, "scalar02": {400},
    "scalarlg": None, "quotbal": {400}, "ltgtruri": {400}, "lwsruri": {400},
    "lwsstart": {400}, "trws": {400}, "escruri": "call", "baddate": "call",
    "regbadct": {400}, "badaspec": {400}, "baddn": {400}, "badvers": {505},
    "mismatch01": {400}, "mismatch02": {501}, "bigcode": None, "badbranch": {200},
    "insuf": {400}, "unkscm": {416}, "novelsc": {416}, "unksm2": {400}, "bext01": {420},
    "invut": {415}, "regaut01": {200}, "multi01": {400}, "mcl01": {400}, "bcast": None,
    "zeromf": {200}, "cparam01": {200}, "cparam02": {200}, "regescrt": {200},
    "sdp01": {406}, "inv2543": "call",
}  # fmt: skip

ACCOUNTS = {"watson": "x" * 8, "user": "x" * 8, "j.user": "x" * 8}


def test_every_message_has_an_expectation() -> None:
    assert set(EXPECTED) == {m.name for m in MESSAGES}


@pytest.mark.parametrize("message", MESSAGES, ids=[m.name for m in MESSAGES])
def test_parser(message: TortureMessage) -> None:
    """Syntactically valid messages parse; the rest raise ParseError and nothing else."""
    try:
        parsed = parse_message(message.data)
    except ParseError:
        assert not message.valid, f"{message.name} is valid but did not parse"
        return
    parsed.encode()
    if message.valid and isinstance(parsed, Request):
        _ = (parsed.top_via, parsed.cseq) if message.name not in ("insuf",) else None


@pytest.mark.parametrize("message", MESSAGES, ids=[m.name for m in MESSAGES])
def test_core_over_udp(message: TortureMessage) -> None:
    h = harness(require_auth=False, accounts=ACCOUNTS)
    source = Peer("udp", "192.0.2.99", 5060)
    h.deliver(message.data, source)
    h.advance(1.0)
    responses = [m for m, _ in h.take() if isinstance(m, Response)]
    requests = [m for m, _ in h.take() if isinstance(m, Request)]
    statuses = [r.status for r in responses if r.status != 100]
    expected = EXPECTED[message.name]
    assert "errors" not in h.core.stats, "an exception escaped a handler"
    assert requests == []
    if expected is None:
        assert statuses == []
    elif expected == "call":
        assert [r.status for r in responses] == [100]
        assert any(isinstance(e, IncomingCall) for e in h.take_events())
    else:
        assert isinstance(expected, set)
        assert statuses and set(statuses) <= expected, (message.name, statuses)


def test_escaped_uri_parts() -> None:
    """esc01/semiuri: escapes decode once; a user part may hold ';' (RFC 4475 §3.1.1.3, .9)."""
    h = harness(require_auth=False, accounts=ACCOUNTS)
    h.deliver(BY_NAME["esc01"].data, Peer("udp", "192.0.2.99", 5060))
    call = next(e for e in h.take_events() if isinstance(e, IncomingCall))
    assert call.target_user == "sips:user@example.com"
    semiuri = parse_message(BY_NAME["semiuri"].data)
    assert isinstance(semiuri, Request)
    assert semiuri.uri.user_unescaped == "user;par=u@example.net"  # type: ignore[union-attr]


def test_contact_parameters_stay_where_they_belong() -> None:
    """cparam01/02, regescrt: header vs URI parameters in registered contacts (§3.3.12-14)."""
    source = Peer("udp", "192.0.2.99", 5060)
    bound = {}
    for name, aor in (("cparam01", "watson"), ("cparam02", "watson"), ("regescrt", "user")):
        # A fresh box each: these messages share branch and sent-by, which would make the
        # second a retransmission of the first (§17.2.3).
        h = harness(require_auth=False, accounts=ACCOUNTS)
        h.deliver(BY_NAME[name].data, source)
        bound[name] = [str(b.contact) for b in h.core.registrar.lookup(aor, h.now)]
    assert bound["cparam01"] == ["<sip:+19725552222@gw1.example.net>;unknownparam"]
    assert bound["cparam02"] == ["<sip:+19725552222@gw1.example.net;unknownparam>"]
    assert bound["regescrt"] == ["<sip:user@example.com?Route=%3Csip:sip.example.com%3E>"]


@pytest.mark.parametrize("message", MESSAGES, ids=[m.name for m in MESSAGES])
def test_stream_framing_and_core_over_tcp(message: TortureMessage) -> None:
    """Over TCP, messages are cut by Content-Length; unframable ones close the stream."""
    h = harness(require_auth=False, accounts=ACCOUNTS)
    framer = StreamFramer()
    for event in framer.feed(message.data):
        if isinstance(event, Framed):
            h.deliver(event.data, Peer("tcp", "192.0.2.99", 40000, 1))
        else:
            assert isinstance(event, FramingError)
    assert "errors" not in h.core.stats
