"""The event loop the service runs on: uvloop (libuv).

Much of the relay's work per packet is the loop's own: waiting for sockets, calling
the protocol, receiving and sending one datagram. uvloop does that part in C. On the
same traffic a bare UDP forwarder costs about 30 % less CPU on it than on the standard
library's selector loop, and the box's ratio to the selector-loop forwarder drops from
about 1.95 to about 1.7 (``bench/relay.py`` runs the forwarder on both).

uvloop implements the ``asyncio`` loop API the service and its libraries use: datagram
and stream endpoints, TLS, ``add_reader`` for serial ports, subprocesses and signal
handlers. The async tests run on it too (``tests/conftest.py``). It does not open
``AF_NETLINK`` datagram endpoints: the link monitor reads netlink in a thread on the
selector loop (:mod:`appliance.net.monitor`), and the network helper ``appliance-net``
runs on the selector loop.
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
