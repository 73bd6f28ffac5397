"""Per-packet SRTP for the relay: libsrtp's own calls on a pylibsrtp session's buffer.

``pylibsrtp.Session.protect`` and ``unprotect`` (RFC 3711 §3.3, §3.4) do the same work
through three Python frames and a new C integer per packet; on the relay path that is
about a third of the time SRTP takes. :func:`protector` and :func:`unprotector` make one
closure per session that copies the packet into the session's 1500-byte buffer, calls
``srtp_protect`` or ``srtp_unprotect`` and returns the result, refusing a packet that
would not fit with its trailer (the same limit pylibsrtp sets). Failures raise
``pylibsrtp.Error`` with libsrtp's message, as pylibsrtp does, so callers catch one
exception for every cause, an oversized packet included. The attributes used
(``Session._srtp``, ``_cdata``, ``_buffer``) are checked against the pinned version by
``tests/media/test_srtp.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import pylibsrtp
from pylibsrtp import _binding

PYLIBSRTP_VERSION = "1.0.0"
MAX_TRAILER = 16 + 128  # SRTP_MAX_TAG_LEN + SRTP_MAX_MKI_LEN, as pylibsrtp reserves

Transform = Callable[[bytes], bytes]


def _transform(session: pylibsrtp.Session, function: Callable[..., int], room: int) -> Transform:
    handle = session._srtp[0]
    cdata = session._cdata
    buffer = session._buffer
    limit = len(cdata) - room
    length = _binding.ffi.new("int *")
    errors = pylibsrtp.ERRORS
    ok = _binding.lib.srtp_err_status_ok

    def transform(data: bytes, session: pylibsrtp.Session = session) -> bytes:
        # ``session`` is held so that its libsrtp context outlives the closure.
        size = len(data)
        if size > limit:
            raise pylibsrtp.Error(f"packet is too long ({size} bytes)")
        buffer[0:size] = data
        length[0] = size
        status = function(handle, cdata, length)
        if status != ok:
            raise pylibsrtp.Error(errors[status] if status < len(errors) else f"error {status}")
        result: bytes = buffer[0 : length[0]]
        return result

    return transform


def protector(session: pylibsrtp.Session) -> Transform:
    """``session.protect`` as one closure (RFC 3711 §3.3)."""
    return _transform(session, _binding.lib.srtp_protect, MAX_TRAILER)


def unprotector(session: pylibsrtp.Session) -> Transform:
    """``session.unprotect`` as one closure (RFC 3711 §3.4)."""
    return _transform(session, _binding.lib.srtp_unprotect, 0)
