"""The WebSocket API against the running service: who may connect, the welcome, and bad
messages answered with error objects on a socket that stays open (docs/api.md)."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from appliance.auth.passwords import hash_password
from appliance.config import load_config
from tests.conftest import ServiceProcess

pytestmark = pytest.mark.slow

PASSWORD = "desk-one-password"


class Box:
    def __init__(self, port: int, cafile: Path, service: ServiceProcess) -> None:
        self.base = f"https://localhost:{port}"
        self.ssl = ssl.create_default_context(cafile=str(cafile))
        self.service = service

    def maps(self, library: str) -> bool:
        """Whether the service process has ``library`` mapped."""
        return library in Path(f"/proc/{self.service.proc.pid}/maps").read_text()


@pytest.fixture
def box(
    make_config: Callable[..., Path], run_service: Callable[..., ServiceProcess], tmp_path: Path
) -> Box:
    config = make_config(
        webrtc={"stun_servers": ["stun:192.0.2.10:3478"]},
    )
    with config.open("a") as out:
        out.write(
            f'\n[[operators]]\nname = "alice"\npassword_hash = "{hash_password(PASSWORD)}"\n'
            'sip_user = "desk1"\ndisplay_name = "Alice Desk 1"\n'
            '\n[[webrtc.turn_servers]]\nurl = "turn:192.0.2.11:3478"\n'
            'username = "gw"\ncredential = "relay-secret"\n'
        )
    proc = run_service(config)
    proc.wait_log("call-takers' page")
    return Box(load_config(config).web.port, tmp_path / "state" / "tls" / "web.crt", proc)


@pytest_asyncio.fixture
async def session(box: Box) -> AsyncIterator[aiohttp.ClientSession]:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as client:
        reply = await client.post(
            box.base + "/login", data={"name": "alice", "password": PASSWORD},
            headers={"Origin": box.base}, ssl=box.ssl, allow_redirects=False,
        )  # fmt: skip
        assert reply.status == 303
        yield client


async def receive(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    message = await ws.receive(timeout=5)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    data = json.loads(message.data)
    assert isinstance(data, dict)
    return data


async def test_only_a_logged_in_page_of_the_box_may_connect(
    box: Box, session: aiohttp.ClientSession
) -> None:
    async with aiohttp.ClientSession() as anonymous:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await anonymous.ws_connect(
                box.base + "/api/v1/ws", ssl=box.ssl, headers={"Origin": box.base}
            )
        assert refused.value.status == 401
    for origin in ({"Origin": "https://evil.example"}, {}):
        with pytest.raises(aiohttp.WSServerHandshakeError) as foreign:
            await session.ws_connect(box.base + "/api/v1/ws", ssl=box.ssl, headers=origin)
        assert foreign.value.status == 403


async def test_welcome_names_the_operator_and_the_ice_servers(
    box: Box, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(
        box.base + "/api/v1/ws", ssl=box.ssl, headers={"Origin": box.base}
    ) as ws:
        welcome = await receive(ws)
        assert welcome["type"] == "welcome"
        assert welcome["version"] == 1
        assert welcome["operator"] == {
            "name": "alice", "sip_user": "desk1", "display_name": "Alice Desk 1",
        }  # fmt: skip
        assert welcome["calls"] == []
        assert welcome["registration"]["state"] == "unregistered"
        assert welcome["ice_servers"] == [
            {"urls": "stun:192.0.2.10:3478"},
            {"urls": "turn:192.0.2.11:3478", "username": "gw", "credential": "relay-secret"},
        ]
        await ws.send_json({"type": "register", "id": "r1"})
        registration = await receive(ws)
        assert registration["type"] == "registration"
        assert registration["state"] == "registered"
        assert registration["aor"].startswith("sip:desk1@")
        assert await receive(ws) == {"type": "result", "for": "register", "id": "r1"}


async def test_the_webrtc_stack_loads_when_a_page_connects(
    box: Box, session: aiohttp.ClientSession
) -> None:
    """The service runs without aiortc and PyAV's FFmpeg libraries until a page that can
    take calls connects; then it loads them, so that page's first call does not wait."""
    assert not box.maps("libavcodec")
    assert "WebRTC stack loaded" not in box.service.log
    async with session.ws_connect(
        box.base + "/api/v1/ws", ssl=box.ssl, headers={"Origin": box.base}
    ) as ws:
        assert (await receive(ws))["type"] == "welcome"
        await asyncio.to_thread(box.service.wait_log, "WebRTC stack loaded", 30.0)
        assert box.maps("libavcodec")
        await ws.send_json({"type": "hello", "id": "h1"})  # the socket still answers
        assert (await receive(ws))["for"] == "hello"


BAD = [
    ("not json", None, "bad-json"),
    ("[1, 2]", None, "bad-message"),
    ('"hello"', None, "bad-message"),
    ('{"type": "hello", "id": [1]}', None, "bad-message"),
    ('{"id": 1}', 1, "unknown-type"),
    ('{"type": "teleport", "id": 2}', 2, "unknown-type"),
    ('{"type": "call", "id": 3}', 3, "bad-request"),
    ('{"type": "call", "id": 4, "target": "1001"}', 4, "bad-request"),
    ('{"type": "call", "id": 5, "target": "x", "sdp": "v=0"}', 5, "not-found"),
    ('{"type": "hangup", "id": 6, "call": "nope"}', 6, "no-such-call"),
    ('{"type": "answer", "id": 7, "call": 12}', 7, "no-such-call"),
    ('{"type": "dtmf", "id": 8, "call": "nope", "digits": ""}', 8, "bad-request"),
    ('{"type": "sdp", "id": 9, "call": "nope", "kind": "offer", "sdp": "x"}', 9, "no-such-call"),
    ('{"type": "candidate", "id": 10, "call": null}', 10, "no-such-call"),
]


async def test_bad_messages_get_error_objects_and_the_socket_stays_open(
    box: Box, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(
        box.base + "/api/v1/ws", ssl=box.ssl, headers={"Origin": box.base}
    ) as ws:
        assert (await receive(ws))["type"] == "welcome"
        for text, request_id, code in BAD:
            await ws.send_str(text)
            error = await receive(ws)
            assert error["type"] == "error", text
            assert error["code"] == code, (text, error)
            assert error.get("id") == request_id, text
            assert error["message"], text
        await ws.send_bytes(b"\x00\x01")
        assert (await receive(ws))["code"] == "bad-message"
        await ws.send_json({"type": "hello", "id": "still-there"})
        assert await receive(ws) == {
            "type": "result", "for": "hello", "id": "still-there", "version": 1,
        }  # fmt: skip
        assert not ws.closed
