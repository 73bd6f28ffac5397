"""The helper's request/response protocol: JSON lines over an AF_UNIX stream socket.

Each request is one JSON object on one line (UTF-8, at most :data:`MAX_LINE` bytes); the
helper answers each with one line, in order, and a connection may carry several requests::

    → {"op": "apply", "config": "<TOML text>", "file": "/etc/appliance/appliance.toml"}
    ← {"ok": true, "result": {"steps": ["add address 192.0.2.10/24 to eth0"], ...}}
    ← {"ok": false, "error": {"code": "invalid-config", "message": "...", "problems": [...]}}

Operations: ``show``, ``diff``, ``apply``, ``try`` (with ``timeout`` in seconds), ``confirm``,
``rollback``, ``events``. After ``events`` is answered, the helper writes one event object
per line (``{"event": "dhcp", ...}``) until the client closes. The full reference is in
``docs/network.md`` (The helper's protocol).
"""

from __future__ import annotations

import json
from typing import Any

MAX_LINE = 1 << 20
"""Longest request line accepted (1 MiB: a configuration file fits many times over)."""

OPERATIONS = ("show", "diff", "apply", "try", "confirm", "rollback", "events")

# Error codes.
INVALID_REQUEST = "invalid-request"
INVALID_CONFIG = "invalid-config"
NOT_MANAGED = "not-managed"
TRY_PENDING = "try-pending"
NOTHING_PENDING = "nothing-to-roll-back"
APPLY_FAILED = "apply-failed"
FORBIDDEN = "forbidden"
INTERNAL = "internal-error"


class ProtocolError(Exception):
    """An error answer: a stable ``code``, a human ``message`` and optional details."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def to_json(self) -> dict[str, Any]:
        """The ``error`` member of an answer."""
        return {"code": self.code, "message": self.message, **self.details}


def encode(message: dict[str, Any]) -> bytes:
    """One line of JSON."""
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode_request(line: bytes) -> dict[str, Any]:
    """Parse one request line; :class:`ProtocolError` when it is not a valid request."""
    try:
        message = json.loads(line)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(INVALID_REQUEST, f"expected one JSON object per line: {exc}") from exc
    if not isinstance(message, dict):
        raise ProtocolError(INVALID_REQUEST, "expected a JSON object")
    op = message.get("op")
    if op not in OPERATIONS:
        raise ProtocolError(
            INVALID_REQUEST, f"expected op to be one of {', '.join(OPERATIONS)}, found {op!r}"
        )
    return message


def ok(result: dict[str, Any]) -> dict[str, Any]:
    """A success answer."""
    return {"ok": True, "result": result}


def error(exc: ProtocolError) -> dict[str, Any]:
    """An error answer."""
    return {"ok": False, "error": exc.to_json()}
