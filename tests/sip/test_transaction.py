"""Transactions (RFC 3261 §17, RFC 6026) with every timer driven by an injected clock."""

from __future__ import annotations

from appliance.sip.message import Request, Response, make_response, parse_message
from appliance.sip.transaction import (
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    State,
    TimerValues,
    Transaction,
    TxEventKind,
    server_key,
)

T = TimerValues(t1=0.5, t2=4.0, t4=5.0)


def request(method: str = "INVITE", branch: str = "z9hG4bKabc") -> Request:
    msg = parse_message(
        f"{method} sip:bob@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\n"
        "From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n"
        f"Call-ID: c1@example.com\r\nCSeq: 7 {method}\r\nMax-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n".encode()
    )
    assert isinstance(msg, Request)
    return msg


def response(req: Request, status: int, tag: str = "b1") -> Response:
    return make_response(req, status, "X", to_tag=tag)


def state(tx: Transaction) -> State:
    """The state, read through a call so the type checker does not pin it."""
    return tx.state


def run(tx: Transaction, until: float) -> tuple[list[float], list[TxEventKind]]:
    """Fire timers up to ``until``; return when bytes went out and what the TU heard."""
    sends: list[float] = []
    kinds: list[TxEventKind] = []
    while (deadline := tx.deadline()) is not None and deadline <= until:
        for event in tx.handle_timer(deadline):
            kinds.append(event.kind)
        sends += [deadline] * len(tx.outbox)
        tx.outbox.clear()
    return sends, kinds


def test_client_invite_udp_timer_a_doubles_and_b_times_out() -> None:
    tx = ClientInviteTransaction(request(), reliable=False, timers=T)
    tx.start(0.0)
    assert len(tx.outbox) == 1
    tx.outbox.clear()
    sends, kinds = run(tx, 100)
    assert sends == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]  # Timer A: T1, 2T1, 4T1 ... (§17.1.1.2)
    assert kinds == [TxEventKind.TIMEOUT, TxEventKind.TERMINATED]  # Timer B at 64*T1 = 32 s
    assert state(tx) is State.TERMINATED


def test_client_invite_tcp_has_no_retransmissions() -> None:
    tx = ClientInviteTransaction(request(), reliable=True, timers=T)
    tx.start(0.0)
    tx.outbox.clear()
    sends, kinds = run(tx, 100)
    assert sends == []
    assert kinds[0] is TxEventKind.TIMEOUT


def test_client_invite_provisional_then_failure_acks_in_the_transaction() -> None:
    req = request()
    tx = ClientInviteTransaction(req, reliable=False, timers=T)
    tx.start(0.0)
    tx.outbox.clear()
    events = tx.receive_response(response(req, 180), 0.2)
    assert [e.kind for e in events] == [TxEventKind.RESPONSE]
    assert state(tx) is State.PROCEEDING
    assert run(tx, 20)[0] == []  # Timer A stopped by the provisional
    busy = response(req, 486)
    events = tx.receive_response(busy, 21)
    assert events[0].response is busy and state(tx) is State.COMPLETED
    ack = parse_message(tx.outbox.pop())
    assert isinstance(ack, Request) and ack.method == "ACK"
    assert ack.cseq.number == 7 and ack.cseq.method == "ACK"  # §17.1.1.3
    assert ack.top_via.branch == "z9hG4bKabc"  # same branch as the INVITE
    assert ack.to.tag == "b1"
    assert tx.receive_response(busy, 22) == []  # retransmitted final: ACK again, TU not told
    assert len(tx.outbox) == 1
    tx.outbox.clear()
    _, kinds = run(tx, 100)
    assert kinds == [TxEventKind.TERMINATED]  # Timer D
    assert tx.deadline() is None


def test_client_invite_2xx_moves_to_accepted_and_passes_retransmissions_up() -> None:
    req = request()
    tx = ClientInviteTransaction(req, reliable=False, timers=T)
    tx.start(0.0)
    ok = response(req, 200)
    assert [e.kind for e in tx.receive_response(ok, 1)] == [TxEventKind.RESPONSE]
    assert state(tx) is State.ACCEPTED  # RFC 6026 §7.2
    assert [e.kind for e in tx.receive_response(ok, 2)] == [TxEventKind.RESPONSE]
    _, kinds = run(tx, 100)
    assert kinds == [TxEventKind.TERMINATED]  # Timer M at 64*T1
    assert tx.deadline() is None


def test_client_non_invite_timer_e_caps_at_t2_and_f_times_out() -> None:
    tx = ClientNonInviteTransaction(request("OPTIONS"), reliable=False, timers=T)
    tx.start(0.0)
    tx.outbox.clear()
    sends, kinds = run(tx, 100)
    assert sends == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]  # §17.1.2.2
    assert kinds == [TxEventKind.TIMEOUT, TxEventKind.TERMINATED]


def test_client_non_invite_proceeding_uses_t2_then_k() -> None:
    req = request("REGISTER")
    tx = ClientNonInviteTransaction(req, reliable=False, timers=T)
    tx.start(0.0)
    tx.outbox.clear()
    run(tx, 0.6)  # one retransmission at 0.5 s; next E due at 1.5 s
    tx.outbox.clear()
    tx.receive_response(response(req, 100), 0.7)
    assert state(tx) is State.PROCEEDING
    sends, _ = run(tx, 10.0)
    assert sends == [1.5, 5.5, 9.5]  # T2 apart once Proceeding
    events = tx.receive_response(response(req, 200), 10.0)
    assert [e.kind for e in events] == [TxEventKind.RESPONSE]
    assert tx.receive_response(response(req, 200), 11.0) == []  # Completed absorbs it
    _, kinds = run(tx, 100)
    assert kinds == [TxEventKind.TERMINATED]
    assert state(tx) is State.TERMINATED


def test_server_invite_failure_g_h_and_ack() -> None:
    req = request()
    tx = ServerInviteTransaction(req, reliable=False, timers=T)
    tx.send_response(response(req, 180), 0.0)
    tx.outbox.clear()
    tx.receive_request(req, 0.1)  # retransmitted INVITE: the provisional again (§17.2.1)
    assert len(tx.outbox) == 1 and b"180" in tx.outbox.pop()
    tx.send_response(response(req, 486), 1.0)
    tx.outbox.clear()
    sends, kinds = run(tx, 100)
    assert sends == [1.5, 2.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5, 32.5]  # Timer G
    assert kinds == [TxEventKind.TIMEOUT, TxEventKind.TERMINATED]  # Timer H at 64*T1 = 32 s

    tx = ServerInviteTransaction(req, reliable=False, timers=T)
    tx.send_response(response(req, 486), 0.0)
    tx.outbox.clear()
    ack = request("ACK")
    assert server_key(ack) == tx.key
    assert [e.kind for e in tx.receive_request(ack, 0.7)] == [TxEventKind.ACK]
    assert state(tx) is State.CONFIRMED
    _, kinds = run(tx, 100)
    assert kinds == [TxEventKind.TERMINATED]  # Timer I = T4
    assert tx.outbox == []


def test_server_invite_2xx_accepted_absorbs_retransmissions_until_l() -> None:
    req = request()
    tx = ServerInviteTransaction(req, reliable=False, timers=T)
    tx.send_response(response(req, 200), 0.0)
    tx.outbox.clear()
    assert state(tx) is State.ACCEPTED
    assert tx.receive_request(req, 1.0) == [] and tx.outbox == []  # RFC 6026 §7.1
    _, kinds = run(tx, 100)
    assert kinds == [TxEventKind.TERMINATED]
    assert tx.deadline() is None


def test_server_non_invite_j() -> None:
    req = request("OPTIONS")
    tx = ServerNonInviteTransaction(req, reliable=False, timers=T)
    tx.receive_request(req, 0.1)
    assert tx.outbox == []  # Trying: absorbed without a response
    tx.send_response(response(req, 200), 0.2)
    tx.outbox.clear()
    tx.receive_request(req, 1.0)
    assert len(tx.outbox) == 1  # Completed: the final response again
    tx.outbox.clear()
    _, kinds = run(tx, 100)
    assert kinds == [TxEventKind.TERMINATED]
    assert tx.deadline() is None
    reliable = ServerNonInviteTransaction(req, reliable=True, timers=T)
    reliable.send_response(response(req, 200), 0.0)
    assert reliable.deadline() == 0.0  # Timer J is zero on reliable transports


def test_transport_error_ends_with_an_event() -> None:
    tx = ClientNonInviteTransaction(request("OPTIONS"), reliable=True, timers=T)
    tx.start(0.0)
    assert [e.kind for e in tx.transport_error()] == [
        TxEventKind.TRANSPORT_ERROR,
        TxEventKind.TERMINATED,
    ]
    assert tx.transport_error() == []


def test_rfc2543_keys() -> None:
    old = parse_message(
        b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1\r\n"
        b"From: <sip:a@example.com>;tag=x\r\nTo: <sip:b@example.com>\r\nCall-ID: old\r\n"
        b"CSeq: 3 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    assert isinstance(old, Request)
    assert server_key(old)[0] == "rfc2543"
