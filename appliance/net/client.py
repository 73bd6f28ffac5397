"""Talking to the network helper: one request at a time, or a stream of its events."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from appliance.net import protocol
from appliance.net.protocol import ProtocolError


class HelperUnavailable(Exception):
    """The helper's socket cannot be reached."""


async def _connect(path: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        return await asyncio.open_unix_connection(str(path), limit=protocol.MAX_LINE)
    except OSError as exc:
        raise HelperUnavailable(
            f"cannot reach the network helper at {path}: {exc.strerror or exc} "
            "(is appliance-net.socket active, and are you root or in group appliance?)"
        ) from exc


def _answer(line: bytes) -> dict[str, Any]:
    if not line:
        raise HelperUnavailable("the network helper closed the connection without answering")
    try:
        answer = json.loads(line)
    except ValueError as exc:
        raise HelperUnavailable(f"the network helper answered something else: {exc}") from exc
    if not isinstance(answer, dict):
        raise HelperUnavailable("the network helper answered something else than an object")
    if not answer.get("ok"):
        error = answer.get("error") or {}
        details = {k: v for k, v in error.items() if k not in ("code", "message")}
        raise ProtocolError(
            str(error.get("code", protocol.INTERNAL)), str(error.get("message", "")), **details
        )
    result = answer.get("result")
    return result if isinstance(result, dict) else {}


async def request(path: Path, op: str, wait: float = 120.0, **params: Any) -> dict[str, Any]:
    """Send one request; the ``result`` of the answer, or :class:`ProtocolError`."""
    reader, writer = await _connect(path)
    try:
        writer.write(protocol.encode({"op": op, **params}))
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), wait)
        return _answer(line)
    except (ConnectionError, TimeoutError) as exc:
        raise HelperUnavailable(f"the network helper did not answer {op}: {exc!r}") from exc
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, BrokenPipeError):
            await writer.wait_closed()


async def events(path: Path) -> AsyncIterator[dict[str, Any]]:
    """The helper's events, starting with ``{"event": "subscribed", "leases": ...}``."""
    reader, writer = await _connect(path)
    try:
        writer.write(protocol.encode({"op": "events"}))
        await writer.drain()
        first = _answer(await reader.readline())
        yield {"event": "subscribed", **first}
        while line := await reader.readline():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                yield event
    finally:
        writer.close()
