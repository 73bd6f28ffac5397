"""Request decoding and answers of the helper protocol."""

from __future__ import annotations

import json

import pytest

from appliance.net import protocol
from appliance.net.protocol import ProtocolError


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"\xff\xfe\n", "expected one JSON object per line"),
        (b"[1, 2]\n", "expected a JSON object"),
        (b'{"op": "reboot"}\n', "expected op to be one of show, diff, apply, try"),
        (b"{}\n", "found None"),
    ],
)
def test_bad_requests_are_refused(line: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message) as caught:
        protocol.decode_request(line)
    assert caught.value.code == protocol.INVALID_REQUEST


def test_answers_are_single_json_lines() -> None:
    assert protocol.decode_request(b'{"op": "show"}\n') == {"op": "show"}
    line = protocol.encode(protocol.ok({"steps": ["add address 192.0.2.10/24 to eth0"]}))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    error = ProtocolError(protocol.APPLY_FAILED, "refused", result={"done": []})
    assert json.loads(protocol.encode(protocol.error(error))) == {
        "ok": False,
        "error": {"code": "apply-failed", "message": "refused", "result": {"done": []}},
    }
