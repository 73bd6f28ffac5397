"""The SIP core against a scripted phone: registrar, calls both ways, CANCEL, re-INVITE,
session timers, MESSAGE, INFO, OPTIONS and the §8.2 request checks. No sleeps: the
clock is the harness's."""

from __future__ import annotations

import pytest

from appliance.sip.address import Peer
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
    OfferReceived,
    RequestCompleted,
)
from appliance.sip.message import Request, Response, parse_message
from tests.sip.scripted import BOX, Harness, Phone, harness

SDP = (
    b"v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0\r\n"
)
BOX_SDP = (
    b"v=0\r\no=- 2 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    b"m=audio 5000 RTP/AVP 0\r\n"
)


def register(h: Harness, phone: Phone, expires: int = 3600) -> Response:
    first = phone.request(
        "REGISTER",
        "sip:box.example",
        to=f"<sip:{phone.user}@box.example>",
        call_id=f"reg-{phone.user}",
        headers=[("Expires", str(expires))],
    )
    h.deliver(first, phone.peer)
    challenge = h.responses()[-1]
    assert challenge.status == 401
    h.deliver(phone.authorize(first, challenge), phone.peer)
    return h.responses()[-1]


# ----- registrar ---------------------------------------------------------------------------


def test_register_with_digest_then_expiry() -> None:
    h = harness()
    phone = Phone()
    ok = register(h, phone, expires=120)
    assert ok.status == 200
    assert ok.headers.get("Contact") == "<sip:1001@192.0.2.10:5062>;expires=120"
    assert ok.headers.get("Date") == "Sat, 13 Nov 2010 23:29:00 GMT"
    assert h.take_events() == [BindingsChanged("1001", ("sip:1001@192.0.2.10:5062",))]
    h.advance(119)
    assert h.take_events() == []
    h.advance(121)
    assert h.take_events() == [BindingsChanged("1001", ())]


def test_register_refusals() -> None:
    h = harness()
    phone = Phone()
    first = phone.request("REGISTER", "sip:box.example", to="<sip:1001@box.example>")
    h.deliver(first, phone.peer)
    challenge = h.responses()[-1]
    h.deliver(phone.authorize(first, challenge, password="wrong"), phone.peer)
    refused = h.responses()[-1]
    assert (refused.status, refused.reason) == (403, "Forbidden (wrong password)")
    # 1001's credentials may not register 1002 (§10.3 step 4).
    other = phone.request("REGISTER", "sip:box.example", to="<sip:1002@box.example>")
    h.deliver(other, phone.peer)
    h.deliver(phone.authorize(other, h.responses()[-1]), phone.peer)
    assert h.responses()[-1].status == 403
    # Too brief (§10.3 step 7).
    brief = phone.request(
        "REGISTER", "sip:box.example", to="<sip:1001@box.example>", headers=[("Expires", "10")]
    )
    h.deliver(brief, phone.peer)
    h.deliver(phone.authorize(brief, h.responses()[-1]), phone.peer)
    too_brief = h.responses()[-1]
    assert too_brief.status == 423 and too_brief.headers.get("Min-Expires") == "60"
    assert h.core.registrar.lookup("1001", h.now) == []


def test_wildcard_unregister_and_persistence() -> None:
    h = harness()
    phone = Phone()
    assert register(h, phone).status == 200
    records = h.core.registrar.dump(now=h.now, wall=1_000_000.0)
    other = harness()
    assert other.core.restore_bindings(records, now=50.0, wall=1_000_010.0) == 1
    restored = other.core.registrar.lookup("1001", 50.0)[0]
    assert restored.remaining(50.0) == 3590
    assert restored.flow == Peer("udp", "192.0.2.10", 5062)
    star = phone.request(
        "REGISTER",
        "sip:box.example",
        to="<sip:1001@box.example>",
        call_id="reg-1001",
        contact=False,
        headers=[("Contact", "*"), ("Expires", "0")],
    )
    h.deliver(star, phone.peer)
    h.deliver(phone.authorize(star, h.responses()[-1]), phone.peer)
    assert h.responses()[-1].status == 200
    assert h.core.registrar.lookup("1001", h.now) == []


def test_unknown_user_is_challenged_not_revealed() -> None:
    h = harness()
    phone = Phone(user="9999")
    h.deliver(phone.request("REGISTER", "sip:box.example", to="<sip:9999@box.example>"), phone.peer)
    assert h.responses()[-1].status == 401


# ----- incoming calls (the box as UAS) ---------------------------------------------------


def incoming_invite(h: Harness, phone: Phone, **kw: object) -> tuple[IncomingCall, bytes]:
    invite = phone.request("INVITE", f"sip:alice@{BOX}", call_id="in-1", body=SDP, **kw)  # type: ignore[arg-type]
    h.deliver(invite, phone.peer)
    out = h.responses()
    assert [r.status for r in out] == [100, 401]
    h.deliver(phone.ack(invite, out[1]), phone.peer)  # the 401's ACK, absorbed (§17.2.1)
    authed = phone.authorize(invite, out[1])
    h.deliver(authed, phone.peer)
    assert [r.status for r in h.responses()] == [100]
    events = h.take_events()
    assert len(events) == 1 and isinstance(events[0], IncomingCall)
    return events[0], authed


def test_incoming_call_answer_ack_bye() -> None:
    h = harness()
    phone = Phone()
    call, invite = incoming_invite(h, phone)
    assert (call.target_user, call.sdp, call.caller.uri.user) == ("alice", SDP, "1001")  # type: ignore[union-attr]
    h.core.ringing(call.leg, h.now)
    ringing = h.responses()[-1]
    assert ringing.status == 180 and ringing.to.tag
    assert ringing.headers.get("Contact") == f"<sip:alice@{BOX}:5060>"
    h.core.answer(call.leg, BOX_SDP, h.now)
    ok = h.responses()[-1]
    assert ok.status == 200 and ok.body == BOX_SDP and ok.to.tag == ringing.to.tag
    h.advance(0.6)
    assert [r.status for r in h.responses()] == [200]  # 2xx retransmitted at T1 (§13.3.1.4)
    h.advance(1.7)
    assert [r.status for r in h.responses()] == [200]  # then at 2*T1
    ack = phone.request(
        "ACK", f"sip:alice@{BOX}:5060", call_id="in-1", to_tag=ok.to.tag, cseq=ok.cseq.number
    )
    h.deliver(ack, phone.peer)
    assert h.take_events() == [CallConfirmed(call.leg, None)]
    h.advance(20)
    assert h.take() == []  # no more retransmissions
    bye = phone.request("BYE", f"sip:alice@{BOX}:5060", call_id="in-1", to_tag=ok.to.tag)
    h.deliver(bye, phone.peer)
    assert h.responses()[-1].status == 200
    assert h.take_events() == [CallEnded(call.leg, EndCause.REMOTE_HANGUP)]
    assert call.leg not in h.core.legs
    del invite


def test_no_ack_ends_the_call_with_bye() -> None:
    h = harness()
    phone = Phone()
    call, _ = incoming_invite(h, phone)
    h.core.answer(call.leg, BOX_SDP, h.now)
    h.take()
    h.advance(40)
    sent = h.take()
    oks = [m for m, _ in sent if isinstance(m, Response) and m.status == 200]
    byes = [m for m, _ in sent if isinstance(m, Request) and m.method == "BYE"]
    assert len(oks) == 10  # at 0.5, 1.5, 3.5, 7.5, 11.5 ... 31.5 s: T1 doubling to T2
    assert len({b.top_via.branch for b in byes}) == 1  # one BYE transaction (retransmitted)
    assert str(byes[0].uri) == "sip:1001@192.0.2.10:5062"
    assert [e for e in h.take_events() if isinstance(e, CallEnded)] == [
        CallEnded(call.leg, EndCause.NO_ACK)
    ]


def test_cancel_before_answer() -> None:
    h = harness()
    phone = Phone()
    call, invite = incoming_invite(h, phone)
    h.core.ringing(call.leg, h.now)
    h.take()
    parsed = parse_message(invite)
    assert isinstance(parsed, Request)
    cancel = (
        parsed.encode()
        .replace(b"INVITE sip:", b"CANCEL sip:", 1)
        .replace(f"{parsed.cseq.number} INVITE".encode(), f"{parsed.cseq.number} CANCEL".encode())
    )
    cancel = cancel.split(b"\r\nAuthorization")[0] + b"\r\nContent-Length: 0\r\n\r\n"
    h.deliver(cancel, phone.peer)
    statuses = sorted((r.cseq.method, r.status) for r in h.responses())
    assert statuses == [("CANCEL", 200), ("INVITE", 487)]
    assert h.take_events() == [
        CallEnded(call.leg, EndCause.REMOTE_CANCELLED, 487, "Request Terminated")
    ]


def test_incoming_reinvite_hold_and_glare() -> None:
    h = harness()
    phone = Phone()
    call, _ = incoming_invite(h, phone)
    h.core.answer(call.leg, BOX_SDP, h.now)
    ok = h.responses()[-1]
    h.deliver(
        phone.request(
            "ACK", f"sip:alice@{BOX}:5060", call_id="in-1", to_tag=ok.to.tag, cseq=ok.cseq.number
        ),
        phone.peer,
    )
    h.take_events()
    hold = SDP + b"a=sendonly\r\n"
    h.deliver(
        phone.request(
            "INVITE", f"sip:alice@{BOX}:5060", call_id="in-1", to_tag=ok.to.tag, body=hold
        ),
        phone.peer,
    )
    assert [r.status for r in h.responses()] == [100]
    assert h.take_events() == [OfferReceived(call.leg, hold, "INVITE")]
    # A second re-INVITE while the first is pending: 491 (§14.2).
    h.deliver(
        phone.request(
            "INVITE", f"sip:alice@{BOX}:5060", call_id="in-1", to_tag=ok.to.tag, body=SDP
        ),
        phone.peer,
    )
    assert [r.status for r in h.responses()] == [100, 491]
    h.core.answer_offer(call.leg, BOX_SDP + b"a=recvonly\r\n", h.now)
    answer = h.responses()[-1]
    assert answer.status == 200 and answer.body.endswith(b"a=recvonly\r\n")


def test_session_timer_as_uas_ends_an_unrefreshed_call() -> None:
    h = harness()
    phone = Phone()
    call, _ = incoming_invite(
        h, phone, headers=[("Supported", "timer"), ("Session-Expires", "120;refresher=uac")]
    )
    h.core.answer(call.leg, BOX_SDP, h.now)
    ok = h.responses()[-1]
    assert ok.headers.get("Session-Expires") == "120;refresher=uac"
    assert ok.headers.get("Require") == "timer"
    h.deliver(
        phone.request(
            "ACK", f"sip:alice@{BOX}:5060", call_id="in-1", to_tag=ok.to.tag, cseq=ok.cseq.number
        ),
        phone.peer,
    )
    h.take_events()
    h.advance(h.now + 120 - 32 - 1)
    assert h.take_events() == []
    h.advance(h.now + 2)  # RFC 4028 §10: BYE at expiry minus min(32, SE/3)
    assert h.take_events() == [CallEnded(call.leg, EndCause.SESSION_EXPIRED)]
    assert any(isinstance(m, Request) and m.method == "BYE" for m, _ in h.take())


def test_session_interval_below_min_se_gets_422() -> None:
    h = harness()
    phone = Phone()
    invite = phone.request(
        "INVITE", f"sip:alice@{BOX}", body=SDP, headers=[("Session-Expires", "60")]
    )
    h.deliver(invite, phone.peer)
    h.deliver(phone.authorize(invite, h.responses()[-1]), phone.peer)
    too_small = h.responses()[-1]
    assert too_small.status == 422 and too_small.headers.get("Min-SE") == "90"


def test_session_timer_refresher_uas_sends_reinvite() -> None:
    h = harness()
    phone = Phone()
    call, _ = incoming_invite(h, phone, headers=[("Session-Expires", "200;refresher=uas")])
    h.core.answer(call.leg, BOX_SDP, h.now)
    ok = h.responses()[-1]
    h.deliver(
        phone.request(
            "ACK", f"sip:alice@{BOX}:5060", call_id="in-1", to_tag=ok.to.tag, cseq=ok.cseq.number
        ),
        phone.peer,
    )
    start = h.now
    h.advance(start + 99)
    assert h.take() == []
    h.advance(start + 101)
    refresh = [m for m, _ in h.take() if isinstance(m, Request)]
    assert {r.method for r in refresh} == {"INVITE"}
    assert len({r.top_via.branch for r in refresh}) == 1
    assert refresh[0].body == BOX_SDP and refresh[0].to.tag == "ph1"


def test_dtmf_info_and_in_dialog_message() -> None:
    h = harness()
    phone = Phone()
    call, _ = incoming_invite(h, phone)
    h.core.answer(call.leg, BOX_SDP, h.now)
    tag = h.responses()[-1].to.tag
    h.deliver(
        phone.request(
            "INFO",
            f"sip:alice@{BOX}",
            call_id="in-1",
            to_tag=tag,
            content_type="application/dtmf-relay",
            body=b"Signal=5\r\nDuration=160\r\n",
        ),
        phone.peer,
    )
    assert h.responses()[-1].status == 200
    h.deliver(
        phone.request(
            "MESSAGE",
            f"sip:alice@{BOX}",
            call_id="in-1",
            to_tag=tag,
            content_type="text/plain",
            body=b"help",
        ),
        phone.peer,
    )
    assert h.responses()[-1].status == 200
    events = h.take_events()
    assert events[0] == DtmfReceived(call.leg, "5", 160)
    assert isinstance(events[1], MessageReceived) and events[1].body == b"help"


# ----- outgoing calls (the box as UAC) ---------------------------------------------------


def registered(h: Harness) -> Phone:
    phone = Phone()
    assert register(h, phone).status == 200
    h.take_events()
    return phone


def outgoing_invite(h: Harness, target: str = "1001") -> tuple[str, Request, Peer]:
    leg = h.core.invite(target, h.now, from_user="alice", sdp=BOX_SDP, display_name="Alice")
    h.collect()
    sent = h.take()
    assert len(sent) == 1
    invite, peer = sent[0]
    assert isinstance(invite, Request) and invite.method == "INVITE"
    return leg, invite, peer


def test_outgoing_call_to_a_registered_phone() -> None:
    h = harness()
    phone = registered(h)
    leg, invite, peer = outgoing_invite(h)
    assert peer == Peer("udp", "192.0.2.10", 5062)  # the registration's flow
    assert str(invite.uri) == "sip:1001@192.0.2.10:5062"
    assert invite.from_.display_name == "Alice"
    assert invite.top_via.params.get("rport", "x") is None  # RFC 3581 asked for
    h.deliver(phone.answer(invite, 180), phone.peer)
    assert h.take_events() == [CallProgress(leg, 180, "Phone says", None)]
    ok = phone.answer(invite, 200, body=SDP)
    h.deliver(ok, phone.peer)
    ack = [m for m, _ in h.take() if isinstance(m, Request)]
    assert [a.method for a in ack] == ["ACK"]
    assert ack[0].cseq.number == invite.cseq.number
    assert ack[0].top_via.branch != invite.top_via.branch  # ACK for 2xx: new transaction
    assert h.take_events() == [CallAnswered(leg, SDP)]
    h.deliver(ok, phone.peer)  # retransmitted 2xx: the same ACK again
    again = [m for m, _ in h.take() if isinstance(m, Request)]
    assert [a.method for a in again] == ["ACK"] and again[0].top_via.branch == ack[0].top_via.branch
    h.core.bye(leg, h.now)
    h.collect()
    bye = [m for m, _ in h.take() if isinstance(m, Request)]
    assert [b.method for b in bye] == ["BYE"] and str(bye[0].uri) == "sip:1001@192.0.2.10:5062"
    assert bye[0].cseq.number == invite.cseq.number + 1
    assert h.take_events() == [CallEnded(leg, EndCause.LOCAL_HANGUP)]


def test_unknown_target_is_not_found() -> None:
    h = harness()
    leg = h.core.invite("nobody", h.now, from_user="alice", sdp=BOX_SDP)
    h.collect()
    assert h.take_events() == [CallEnded(leg, EndCause.NOT_FOUND, 404, "Not Found")]


def test_cancel_waits_for_a_provisional_and_handles_the_200_race() -> None:
    h = harness()
    phone = registered(h)
    leg, invite, _ = outgoing_invite(h)
    h.core.cancel(leg, h.now)
    h.collect()
    assert h.take() == []  # no CANCEL before a provisional (§9.1)
    assert h.take_events() == [CallEnded(leg, EndCause.CANCELLED)]
    h.deliver(phone.answer(invite, 100, to_tag=""), phone.peer)
    cancel = [m for m, _ in h.take() if isinstance(m, Request)]
    assert [c.method for c in cancel] == ["CANCEL"]
    assert cancel[0].top_via.branch == invite.top_via.branch
    assert cancel[0].cseq.number == invite.cseq.number
    # The phone answered before it saw the CANCEL: ACK, then BYE (§9.1, §15).
    h.deliver(phone.answer(invite, 200, body=SDP), phone.peer)
    methods = [m.method for m, _ in h.take() if isinstance(m, Request)]
    assert methods == ["ACK", "BYE"]
    assert h.take_events() == []  # already reported as cancelled


def test_rejected_outgoing_call() -> None:
    h = harness()
    phone = registered(h)
    leg, invite, _ = outgoing_invite(h)
    h.deliver(phone.answer(invite, 486), phone.peer)
    acks = [m for m, _ in h.take() if isinstance(m, Request)]
    assert [a.method for a in acks] == ["ACK"] and acks[0].top_via.branch == invite.top_via.branch
    assert h.take_events() == [CallEnded(leg, EndCause.REJECTED, 486, "Phone says")]


def test_outgoing_call_times_out() -> None:
    h = harness()
    registered(h)
    leg, _, _ = outgoing_invite(h)
    h.advance(40)
    assert [e for e in h.take_events() if isinstance(e, CallEnded)] == [
        CallEnded(leg, EndCause.TIMEOUT, 408, "Request Timeout")
    ]


def test_reoffer_and_491_retry() -> None:
    h = harness()
    phone = registered(h)
    leg, invite, _ = outgoing_invite(h)
    h.deliver(phone.answer(invite, 200, body=SDP), phone.peer)
    h.take()
    h.take_events()
    assert h.core.reoffer(leg, BOX_SDP + b"a=sendonly\r\n", h.now)
    h.collect()
    reinvite = next(m for m, _ in h.take() if isinstance(m, Request))
    assert reinvite.method == "INVITE" and reinvite.to.tag == "phone-tag"
    h.deliver(phone.answer(reinvite, 491), phone.peer)
    h.take()
    h.advance(h.now + 2.0)
    assert [m for m, _ in h.take() if isinstance(m, Request)] == []
    h.advance(h.now + 2.2)  # retried 2.1-4.1 s later (§14.1)
    retry = [m for m, _ in h.take() if isinstance(m, Request)]
    assert retry and {r.method for r in retry} == {"INVITE"}
    assert {r.cseq.number for r in retry} == {reinvite.cseq.number + 1}
    h.deliver(phone.answer(retry[0], 200, body=SDP + b"a=recvonly\r\n"), phone.peer)
    assert h.take_events() == [OfferAnswered(leg, SDP + b"a=recvonly\r\n")]


def test_send_message_and_result() -> None:
    h = harness()
    phone = registered(h)
    request_id = h.core.send_message(
        "1001", h.now, from_user="alice", content_type="text/plain", body=b"hello"
    )
    h.collect()
    message = next(m for m, _ in h.take() if isinstance(m, Request))
    assert message.method == "MESSAGE" and message.body == b"hello"
    h.deliver(phone.answer(message, 200), phone.peer)
    assert h.take_events() == [RequestCompleted(request_id, 200, "Phone says")]


# ----- request checks (§8.2) and routing of responses (§18.2.2) ------------------------


@pytest.mark.parametrize("method,status", [("SUBSCRIBE", 405), ("FROB", 501)])
def test_methods_not_supported(method: str, status: int) -> None:
    h = harness()
    phone = Phone()
    h.deliver(phone.request(method), phone.peer)
    response = h.responses()[-1]
    assert response.status == status
    assert "INVITE" in (response.headers.get("Allow") or "")


def test_request_checks() -> None:
    h = harness(require_auth=False)
    phone = Phone()
    h.deliver(phone.request("OPTIONS", cseq_method="INVITE"), phone.peer)
    assert h.responses()[-1].status == 400
    h.deliver(phone.request("OPTIONS", "tel:+15551234"), phone.peer)
    assert h.responses()[-1].status == 416
    h.deliver(phone.request("OPTIONS", headers=[("Require", "nothingSupportsThis")]), phone.peer)
    bad_ext = h.responses()[-1]
    assert bad_ext.status == 420 and bad_ext.headers.get("Unsupported") == "nothingSupportsThis"
    h.deliver(phone.request("INVITE", body=b"x", content_type="text/html"), phone.peer)
    assert h.responses()[-1].status == 415
    h.deliver(phone.request("BYE", to_tag="unknown"), phone.peer)
    assert h.responses()[-1].status == 481
    h.deliver(phone.request("OPTIONS"), phone.peer)
    options = h.responses()[-1]
    assert options.status == 200 and "timer" in (options.headers.get("Supported") or "")


def test_merged_request_gets_482() -> None:
    h = harness(require_auth=False)
    phone = Phone()
    first = phone.request("MESSAGE", call_id="m1", cseq=5, body=b"a", content_type="text/plain")
    second = phone.request("MESSAGE", call_id="m1", cseq=5, body=b"a", content_type="text/plain")
    h.deliver(first, phone.peer)
    h.deliver(second, phone.peer)
    assert [r.status for r in h.responses()] == [482]


def test_malformed_requests_get_400_with_the_reason() -> None:
    h = harness()
    source = Peer("udp", "192.0.2.66", 5099)
    h.deliver(
        b"OPTIONS sip:box SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.66:5099;branch=z9hG4bKa\r\n"
        b"From: <sip:a@b>;tag=1\r\nTo: <sip:box>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n"
        b"Content-Length: 50\r\n\r\nshort",
        source,
    )
    response = h.responses()[-1]
    assert response.status == 400 and "larger than" in response.reason
    h.deliver(
        b"OPTIONS sip:box SIP/7.0\r\nVia: SIP/2.0/UDP 192.0.2.66:5099;branch=z9hG4bKb\r\n"
        b"From: <sip:a@b>;tag=1\r\nTo: <sip:box>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n"
        b"Content-Length: 0\r\n\r\n",
        source,
    )
    assert h.responses()[-1].status == 505
    h.deliver(b"\x00\xff garbage", source)
    h.deliver(b"SIP/2.0 200 OK\r\n\r\n", source)
    assert h.take() == []  # nothing to answer, nothing raised
    assert h.core.stats["malformed"] == 4


def test_responses_follow_received_and_rport() -> None:
    h = harness(require_auth=False)
    nat = Peer("udp", "198.51.100.7", 40000)
    phone = Phone(host="10.0.0.5", port=5060)
    h.deliver(phone.request("OPTIONS"), nat)
    response, peer = h.take()[-1]
    assert peer == nat  # rport: back to the source address and port (RFC 3581 §4)
    assert isinstance(response, Response)
    assert response.top_via.params["received"] == "198.51.100.7"
    assert response.top_via.params["rport"] == "40000"


def test_cancel_after_the_200_changes_nothing() -> None:
    """§9.2: a CANCEL for an answered INVITE gets 200 but no 487; the call goes on."""
    h = harness()
    phone = Phone()
    call, invite = incoming_invite(h, phone)
    h.core.answer(call.leg, BOX_SDP, h.now)
    h.take()
    parsed = parse_message(invite)
    assert isinstance(parsed, Request)
    cancel = Request("CANCEL", parsed.uri)
    for name in ("Via", "From", "To", "Call-ID", "Max-Forwards"):
        cancel.headers.add(name, parsed.headers.get(name) or "")
    cancel.headers.add("CSeq", f"{parsed.cseq.number} CANCEL")
    h.deliver(cancel.encode(), phone.peer)
    assert [(r.cseq.method, r.status) for r in h.responses()] == [("CANCEL", 200)]
    assert call.leg in h.core.legs
    assert [e for e in h.take_events() if isinstance(e, CallEnded)] == []


def test_shutdown_hangs_up_everything() -> None:
    h = harness()
    phone = registered(h)
    ringing_in, _ = incoming_invite(h, Phone(user="1002", password="secret-1002", port=5070))
    out_leg, invite, _ = outgoing_invite(h)
    h.deliver(phone.answer(invite, 200, body=SDP), phone.peer)
    h.take()
    h.take_events()
    h.core.shutdown(h.now)
    sent = h.take()
    methods = sorted(m.method for m, _ in sent if isinstance(m, Request))
    statuses = [m.status for m, _ in sent if isinstance(m, Response)]
    assert methods == ["BYE"] and 480 in statuses
    ended = {e.leg: e.cause for e in h.take_events() if isinstance(e, CallEnded)}
    assert ended == {out_leg: EndCause.SHUTDOWN, ringing_in.leg: EndCause.REJECTED}
