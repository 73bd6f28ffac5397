"""The call-takers' WebSocket API, version 1 (``/api/v1/ws``; documented in docs/api.md).

Every message is one JSON object with a ``type``. A request may carry an ``id``, echoed
in its ``result`` or ``error`` reply. A malformed message is answered with an error
object and the socket stays open; only a page that cannot keep up is disconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

from appliance.calls.call import CallError, Message
from appliance.calls.manager import CallManager

log = logging.getLogger(__name__)

API_VERSION = 1
MAX_MESSAGE = 256 * 1024  # an SDP offer with many candidates stays far below this
QUEUE_LIMIT = 1000
HEARTBEAT = 15.0  # WebSocket ping interval: a dead page is noticed within ~30 s

OperatorLookup = Callable[[web.Request], str | None]


class PageSocket:
    """One open page: the operator it belongs to and its outgoing message queue."""

    def __init__(self, operator: str, ws: web.WebSocketResponse) -> None:
        self.operator = operator
        self.ws = ws
        self.queue: asyncio.Queue[Message | None] = asyncio.Queue()

    def send(self, message: Message) -> None:
        """Queue a message; a page that falls this far behind is dropped."""
        if self.queue.qsize() >= QUEUE_LIMIT:
            log.warning("page of %s is not reading; closing it", self.operator)
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait(message)

    async def writer(self) -> None:
        """Send queued messages in order until the page goes away."""
        while (message := await self.queue.get()) is not None:
            if self.ws.closed:
                return
            await self.ws.send_str(json.dumps(message, separators=(",", ":")))
        await self.ws.close()


def _error(code: str, message: str, request_id: object = None, **extra: Any) -> Message:
    out: Message = {"type": "error", "code": code, "message": message}
    if request_id is not None:
        out["id"] = request_id
    out.update(extra)
    return out


class Api:
    """Binds WebSocket pages to the call manager."""

    def __init__(
        self,
        manager: CallManager,
        operator_for: OperatorLookup,
        allowed_origins: list[str],
    ) -> None:
        self.manager = manager
        self.operator_for = operator_for
        self.allowed_origins = {o.rstrip("/").lower() for o in allowed_origins}
        self.handlers: dict[str, Callable[[PageSocket, Message], Awaitable[Message | None]]] = {
            "hello": self._hello,
            "register": self._register,
            "unregister": self._unregister,
            "call": self._call,
            "answer": self._answer,
            "decline": self._decline,
            "sdp": self._sdp,
            "candidate": self._candidate,
            "hangup": self._hangup,
            "hold": self._hold,
            "resume": self._resume,
            "dtmf": self._dtmf,
            "transcript": self._transcript,
        }

    def origin_allowed(self, request: web.Request) -> bool:
        """The page must come from the box itself or a configured origin (RFC 6455 §10.2)."""
        origin = request.headers.get("Origin")
        if origin is None:
            return False
        origin = origin.rstrip("/").lower()
        return origin == f"https://{request.host}".lower() or origin in self.allowed_origins

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/v1/ws``: the page's signalling socket."""
        operator = self.operator_for(request)
        if operator is None:
            return web.json_response({"error": "login required"}, status=401)
        if not self.origin_allowed(request):
            return web.json_response({"error": "origin not allowed"}, status=403)
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT, max_msg_size=MAX_MESSAGE)
        await ws.prepare(request)
        page = PageSocket(operator, ws)
        writer = asyncio.get_running_loop().create_task(page.writer())
        self.manager.attach(page)
        identity = self.manager.identity(operator)
        page.send({
            "type": "welcome", "version": API_VERSION,
            "operator": {"name": identity.name, "sip_user": identity.sip_user,
                         "display_name": identity.display_name},
            "calls": self.manager.calls_of(page),
            "registration": self.manager.registration(page),
            "ice_servers": self.manager.page_ice_servers,
        })  # fmt: skip
        try:
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    await self._receive(page, frame.data)
                elif frame.type == WSMsgType.BINARY:
                    page.send(_error("bad-message", "binary frames are not used by this API"))
                elif frame.type == WSMsgType.ERROR:
                    break
        finally:
            self.manager.detach(page)
            page.queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer, 2.0)
            writer.cancel()
        return ws

    async def _receive(self, page: PageSocket, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError as exc:
            page.send(_error("bad-json", f"not JSON: {exc}"))
            return
        if not isinstance(message, dict):
            page.send(_error("bad-message", "a message must be a JSON object"))
            return
        request_id = message.get("id")
        if request_id is not None and not isinstance(request_id, str | int):
            page.send(_error("bad-message", "id must be a string or a number"))
            return
        kind = message.get("type")
        handler = self.handlers.get(kind) if isinstance(kind, str) else None
        if handler is None:
            page.send(_error("unknown-type", f"unknown message type {kind!r}", request_id))
            return
        try:
            reply = await handler(page, message)
        except CallError as exc:
            page.send(_error(exc.code, str(exc), request_id, call=message.get("call")))
            return
        except Exception:
            log.exception("API %s from %s failed", kind, page.operator)
            page.send(_error("internal", "the box could not carry this out", request_id))
            return
        result: Message = {"type": "result", "for": kind, **(reply or {})}
        if request_id is not None:
            result["id"] = request_id
        page.send(result)

    # ----- requests ------------------------------------------------------------------------

    async def _hello(self, page: PageSocket, message: Message) -> Message:
        return {"version": API_VERSION}

    async def _register(self, page: PageSocket, message: Message) -> Message:
        page.send(self.manager.register(page))
        return {}

    async def _unregister(self, page: PageSocket, message: Message) -> Message:
        page.send(self.manager.unregister(page))
        return {}

    async def _call(self, page: PageSocket, message: Message) -> Message:
        target, sdp = message.get("target"), message.get("sdp")
        if not isinstance(target, str) or not target.strip() or len(target) > 256:
            raise CallError("bad-request", "target must be a user, number or SIP URI")
        if not isinstance(sdp, str):
            raise CallError("bad-request", "sdp (the page's offer) must be a string")
        call = await self.manager.place_call(page, target.strip(), sdp)
        return {"call": call.id}

    async def _answer(self, page: PageSocket, message: Message) -> Message:
        await self.manager.answer(page, message.get("call"))
        return {"call": message.get("call")}

    async def _decline(self, page: PageSocket, message: Message) -> Message:
        self.manager.decline(page, message.get("call"))
        return {"call": message.get("call")}

    async def _sdp(self, page: PageSocket, message: Message) -> Message:
        await self.manager.page_sdp(
            page, message.get("call"), message.get("kind"), message.get("sdp")
        )
        return {"call": message.get("call")}

    async def _candidate(self, page: PageSocket, message: Message) -> Message | None:
        await self.manager.candidate(
            page, message.get("call"), message.get("candidate"),
            message.get("sdpMid"), message.get("sdpMLineIndex"),
        )  # fmt: skip
        return None

    async def _hangup(self, page: PageSocket, message: Message) -> Message:
        self.manager.hangup(page, message.get("call"))
        return {"call": message.get("call")}

    async def _hold(self, page: PageSocket, message: Message) -> Message:
        await self.manager.hold(page, message.get("call"), True)
        return {"call": message.get("call")}

    async def _resume(self, page: PageSocket, message: Message) -> Message:
        await self.manager.hold(page, message.get("call"), False)
        return {"call": message.get("call")}

    async def _transcript(self, page: PageSocket, message: Message) -> Message:
        return self.manager.transcript(page, message.get("call"))

    async def _dtmf(self, page: PageSocket, message: Message) -> Message:
        self.manager.dtmf(page, message.get("call"), message.get("digits"))
        return {"call": message.get("call")}
