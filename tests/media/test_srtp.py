"""The relay's direct libsrtp calls (appliance.media.srtp) against pylibsrtp's own
protect and unprotect (RFC 3711 §3.3, §3.4): the same bytes, the same refusals."""

from __future__ import annotations

import gc
import os
import struct

import pylibsrtp
import pytest

from appliance.media.srtp import PYLIBSRTP_VERSION, protector, unprotector

PROFILE = pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80


def session(key: bytes, direction: int) -> pylibsrtp.Session:
    return pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=direction, srtp_profile=PROFILE))


def packet(sequence: int, payload: bytes = b"\xd5" * 160) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, sequence, sequence * 160, 0x1234) + payload


def test_the_pinned_pylibsrtp_has_what_the_closures_use() -> None:
    assert pylibsrtp.__version__ == PYLIBSRTP_VERSION
    s = session(os.urandom(30), pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    assert len(s._cdata) == 1500 and len(s._buffer) == 1500
    assert s._srtp[0] is not None


def test_protect_gives_pylibsrtps_bytes_and_unprotect_reverses_it() -> None:
    key = os.urandom(30)
    ours = protector(session(key, pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    theirs = session(key, pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    receive = unprotector(session(key, pylibsrtp.Policy.SSRC_ANY_INBOUND))
    for sequence in range(1, 40):
        plain = packet(sequence, os.urandom(sequence))
        protected = ours(plain)
        assert protected == theirs.protect(plain)
        assert len(protected) == len(plain) + 10  # the 80-bit tag (RFC 3711 §4.2)
        assert isinstance(protected, bytes)
        assert receive(protected) == plain


def test_refusals_raise_pylibsrtps_error() -> None:
    key = os.urandom(30)
    send = protector(session(key, pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    receive = unprotector(session(key, pylibsrtp.Policy.SSRC_ANY_INBOUND))
    first = send(packet(1))
    receive(first)
    with pytest.raises(pylibsrtp.Error, match="replay"):
        receive(first)  # RFC 3711 §3.3.2
    forged = bytearray(send(packet(2)))
    forged[20] ^= 1
    with pytest.raises(pylibsrtp.Error, match="authentication"):
        receive(bytes(forged))
    with pytest.raises(pylibsrtp.Error, match="too long"):
        receive(packet(3, bytes(1500)))
    with pytest.raises(pylibsrtp.Error, match="too long"):
        send(packet(3, bytes(1500 - 12 - 143)))  # no room left for the trailer
    assert receive(send(packet(3))) == packet(3)  # the sessions go on


def test_a_closure_keeps_its_session_alive() -> None:
    key = os.urandom(30)
    send = protector(session(key, pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    receive = unprotector(session(key, pylibsrtp.Policy.SSRC_ANY_INBOUND))
    gc.collect()  # the sessions are referenced by the closures only
    for sequence in range(1, 5):
        assert receive(send(packet(sequence))) == packet(sequence)
