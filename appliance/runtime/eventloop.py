"""The event loop the box's processes run on: uvloop (libuv).

The relay's work per packet is mostly the loop's own: waiting for sockets, calling
the protocol, receiving and sending one datagram. uvloop does that part in C; on the
same traffic a bare UDP forwarder costs about a quarter of the CPU it costs on the
standard library's selector loop (``bench/relay.py`` reports both). It implements
the whole ``asyncio`` loop API the service and its libraries use (datagram and
stream endpoints, ``add_reader`` for serial ports and netlink, subprocesses, signal
handlers), and the tests run on it too (``tests/conftest.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")

new_event_loop = uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on a new uvloop loop (closing it, its async generators and executor)."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)
