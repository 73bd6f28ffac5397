"""Link monitoring in the service: read-only netlink, typed events, health and metrics.

The service holds no capability: it only listens to the rtnetlink multicast groups for links
and addresses (rtnetlink(7) ``RTMGRP_LINK``, ``RTMGRP_IPV4_IFADDR``, ``RTMGRP_IPV6_IFADDR``),
which any process may join, and to the helper's event stream for DHCP. :class:`LinkTracker`
is the pure part (state in, events out); :class:`NetworkMonitor` is the asyncio adapter.

pyroute2's netlink sockets are ``AF_NETLINK`` datagram endpoints, which uvloop (the
service's event loop, :mod:`appliance.runtime.eventloop`) does not open: the netlink side
runs in a thread of its own on the standard library's selector loop
(:class:`NetlinkThread`) and hands each message to the service's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyroute2 import AsyncIPRoute

from appliance.config.schema import NetworkConfig
from appliance.net.client import HelperUnavailable, events
from appliance.net.events import (
    AddressAdded,
    AddressRemoved,
    AdminStateChanged,
    CarrierChanged,
    DhcpChanged,
    LinkAdded,
    LinkRemoved,
    NetEvent,
    NetworkChanged,
    changes_reachability,
)
from appliance.net.model import IFF_LOWER_UP, IFF_UP
from appliance.runtime.health import Health
from appliance.runtime.metrics import Metrics
from appliance.runtime.subsystem import Subsystem

log = logging.getLogger(__name__)

RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100
HELPER_RETRY_MAX = 30.0
SETTLE = 0.5
"""Seconds :meth:`NetworkMonitor.on_change` gathers a burst of changes (one apply) into one call."""

Callback = Callable[[NetEvent], None]


@dataclass
class LinkView:
    """What the monitor knows of one link."""

    name: str
    up: bool
    carrier: bool


class LinkTracker:
    """Current links and addresses; turns netlink notifications into events (no I/O)."""

    def __init__(self) -> None:
        self.links: dict[int, LinkView] = {}
        self.addresses: dict[int, set[str]] = {}

    def name(self, index: int) -> str:
        """The name of link ``index`` ("" when unknown)."""
        view = self.links.get(index)
        return view.name if view else ""

    def link(self, index: int, name: str, up: bool, carrier: bool) -> list[NetEvent]:
        """An ``RTM_NEWLINK``: a new link, or a change of state."""
        old = self.links.get(index)
        self.links[index] = LinkView(name, up, carrier)
        if old is None or old.name != name:
            if old is not None:
                events: list[NetEvent] = [LinkRemoved(old.name)]
            else:
                events = []
            events.append(LinkAdded(name))
            if up:
                events.append(AdminStateChanged(name, True))
            if carrier:
                events.append(CarrierChanged(name, True))
            return events
        out: list[NetEvent] = []
        if old.up != up:
            out.append(AdminStateChanged(name, up))
        if old.carrier != carrier:
            out.append(CarrierChanged(name, carrier))
        return out

    def link_removed(self, index: int) -> list[NetEvent]:
        """An ``RTM_DELLINK``."""
        old = self.links.pop(index, None)
        self.addresses.pop(index, None)
        return [LinkRemoved(old.name)] if old is not None else []

    def address(self, index: int, cidr: str, present: bool) -> list[NetEvent]:
        """An ``RTM_NEWADDR`` (``present``) or ``RTM_DELADDR``."""
        name = self.name(index)
        known = self.addresses.setdefault(index, set())
        if present and cidr not in known:
            known.add(cidr)
            return [AddressAdded(name, cidr)]
        if not present and cidr in known:
            known.discard(cidr)
            return [AddressRemoved(name, cidr)]
        return []

    def by_name(self) -> dict[str, tuple[LinkView, int]]:
        """Links by name, with their address counts."""
        return {
            view.name: (view, len(self.addresses.get(index, ())))
            for index, view in self.links.items()
        }


def _cidr(msg: Any) -> str:
    ip = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
    return f"{ip}/{msg['prefixlen']}"


class NetlinkThread:
    """rtnetlink multicast ``groups`` followed in a thread, messages handed to the caller's loop.

    :meth:`start` joins the groups, then dumps the links and addresses (so no change
    between the two is missed), hands the dump to ``on_dump`` and returns; every later
    message goes to ``on_message``, in order, on the loop that called :meth:`start`.
    :meth:`ended` completes when following stops by itself (with its exception, if any).
    """

    def __init__(
        self,
        groups: int,
        netns: str | None,
        on_dump: Callable[[list[Any]], None],
        on_message: Callable[[Any], None],
    ) -> None:
        self.groups = groups
        self.netns = netns
        self.on_dump = on_dump
        self.on_message = on_message
        self._thread: threading.Thread | None = None
        self._own: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = threading.Event()
        self._ended: asyncio.Future[None] | None = None  # on the caller's loop

    async def start(self) -> None:
        """Start the thread; return once the dump was handed over (or raise why not)."""
        main = asyncio.get_running_loop()
        ready: asyncio.Future[None] = main.create_future()
        self._ended = main.create_future()
        self._thread = threading.Thread(
            target=self._main, args=(main, ready, self._ended), name="netlink", daemon=True
        )
        self._thread.start()
        await ready

    async def ended(self) -> None:
        """Wait until following stops by itself; raise what stopped it."""
        assert self._ended is not None, "start() first"
        await self._ended

    async def stop(self) -> None:
        """Stop following, close the socket and wait for the thread (also mid-start)."""
        self._stopping.set()  # before reading _task: _run sets _task, then checks this
        own, task, thread = self._own, self._task, self._thread
        if own is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # its loop has already finished
                own.call_soon_threadsafe(task.cancel)
        if thread is not None:
            await asyncio.to_thread(thread.join, 10)
        self._thread = None

    def _main(self, *args: Any) -> None:
        with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
            runner.run(self._run(*args))

    async def _run(
        self,
        main: asyncio.AbstractEventLoop,
        ready: asyncio.Future[None],
        ended: asyncio.Future[None],
    ) -> None:
        """Join, dump, follow; whatever ends it settles ``ready`` (if still open) and ``ended``."""
        self._own, self._task = asyncio.get_running_loop(), asyncio.current_task()
        kwargs = {"netns": self.netns} if self.netns else {}
        ipr: Any = None
        error: BaseException = asyncio.CancelledError()
        try:
            if self._stopping.is_set():  # stop() came before this thread got going
                return
            ipr = AsyncIPRoute(**kwargs)
            await ipr.bind(self.groups)
            async with AsyncIPRoute(**kwargs) as dump:
                messages = [m async for m in await dump.get_links()]
                messages += [m async for m in await dump.get_addr()]
            _post(main, self._dumped, ready, messages)
            while True:
                async for msg in ipr.get():
                    _post(main, self.on_message, msg)
        except asyncio.CancelledError:
            pass  # stop()
        except Exception as exc:
            error = exc
        finally:
            if ipr is not None:
                ipr.close()
            _post(main, _settle, ready, error)  # nothing if the dump was handed over
            _post(main, _settle, ended, error)

    def _dumped(self, ready: asyncio.Future[None], messages: list[Any]) -> None:
        try:
            self.on_dump(messages)
        except Exception as exc:
            _settle(ready, exc)
        else:
            _settle(ready, None)


def _post(loop: asyncio.AbstractEventLoop, function: Callable[..., None], *args: Any) -> None:
    """Call ``function(*args)`` on ``loop`` from another thread; nothing once it is closed."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(function, *args)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    """Complete ``future`` (cancel it for a ``CancelledError``) unless it is done already."""
    if future.done():
        return
    if error is None:
        future.set_result(None)
    elif isinstance(error, asyncio.CancelledError):
        future.cancel()
    else:
        future.set_exception(error)


class NetworkMonitor(Subsystem):
    """Watches links and addresses; reports health, metrics and events to subscribers."""

    def __init__(
        self,
        config: NetworkConfig,
        health: Health,
        metrics: Metrics,
        *,
        netns: str | None = None,
        helper_socket: Path | None = None,
    ) -> None:
        super().__init__("network", health)
        self.config = config
        self.netns = netns
        self.helper_socket = helper_socket
        self.tracker = LinkTracker()
        self.leases: dict[str, dict[str, Any]] = {}
        self._callbacks: list[Callback] = []
        self._pending: dict[int, asyncio.TimerHandle] = {}
        self._netlink: NetlinkThread | None = None
        self.events_seen = metrics.counter(
            "appliance_net_events_total", "Network events raised, by kind.", ["kind"]
        )
        metrics.gauge(
            "appliance_net_link_up",
            "1 when the interface is administratively up.",
            ["interface"],
            read=lambda: self._per_link(lambda view, _: float(view.up)),
        )
        metrics.gauge(
            "appliance_net_link_carrier",
            "1 when the interface has carrier (cable or peer up).",
            ["interface"],
            read=lambda: self._per_link(lambda view, _: float(view.carrier)),
        )
        metrics.gauge(
            "appliance_net_addresses",
            "Addresses on the interface (IPv4 and IPv6, link-local included).",
            ["interface"],
            read=lambda: self._per_link(lambda _, count: float(count)),
        )
        metrics.gauge(
            "appliance_net_dhcp_lease_seconds",
            "Seconds until the interface's DHCP lease expires (reported by appliance-net).",
            ["interface"],
            read=self._lease_seconds,
        )

    @property
    def managed(self) -> list[str]:
        """Interfaces that should be up: enabled in a managed ``[network]``."""
        if not self.config.manage:
            return []
        return [i.name for i in self.config.interfaces if i.enabled]

    def subscribe(self, callback: Callback) -> Callable[[], None]:
        """Call ``callback`` with every event; returns a function that unsubscribes."""
        self._callbacks.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._callbacks.remove(callback)

        return unsubscribe

    def on_change(self, callback: Callable[[], None], settle: float = SETTLE) -> Callable[[], None]:
        """Call ``callback`` at most ``settle`` seconds after the box's reachability changed.

        Reachability changes are those :func:`~appliance.net.events.changes_reachability`
        names; every change within ``settle`` of the first makes one call. Returns a function
        that unsubscribes (and drops a call not yet made).
        """
        key = id(callback)

        def fire() -> None:
            self._pending.pop(key, None)
            try:
                callback()
            except Exception as exc:
                log.error("network change subscriber failed", exc_info=exc)

        def on_event(event: NetEvent) -> None:
            if key not in self._pending and changes_reachability(event):
                loop = asyncio.get_running_loop()
                self._pending[key] = loop.call_later(settle, fire)

        unsubscribe_events = self.subscribe(on_event)

        def unsubscribe() -> None:
            unsubscribe_events()
            handle = self._pending.pop(key, None)
            if handle is not None:
                handle.cancel()

        return unsubscribe

    def publish(self, events: list[NetEvent]) -> None:
        """Hand events to every subscriber (a failing subscriber is logged, not fatal)."""
        for event in events:
            self.events_seen.inc(kind=type(event).__name__)
            for callback in list(self._callbacks):
                try:
                    callback(event)
                except Exception as exc:
                    log.error("network event subscriber failed on %s", event, exc_info=exc)
        if events:
            self._report()

    def _per_link(self, value: Callable[[LinkView, int], float]) -> dict[tuple[str, ...], float]:
        return {
            (name,): value(view, count)
            for name, (view, count) in self.tracker.by_name().items()
            if name != "lo"
        }

    def _lease_seconds(self) -> dict[tuple[str, ...], float]:
        now = time.time()
        return {
            (name,): max(0.0, float(lease["expires_at"]) - now)
            for name, lease in self.leases.items()
            if lease.get("expires_at") is not None
        }

    def _report(self) -> None:
        links = self.tracker.by_name()
        problems = []
        for name in self.managed:
            if name not in links:
                problems.append(f"{name} is missing")
                continue
            view, _ = links[name]
            if not view.up:
                problems.append(f"{name} is down")
            elif not view.carrier:
                problems.append(f"{name} has no carrier")
        if problems:
            self.health.degraded("; ".join(problems))
            return
        up = sorted(n for n, (v, _) in links.items() if v.carrier and n != "lo")
        if self.managed:
            self.health.ok(f"managed links up: {', '.join(self.managed)}")
        else:
            self.health.ok(f"links with carrier: {', '.join(up) or 'none'}")

    async def start(self) -> None:
        """Join the multicast groups, read the current links, then follow changes."""
        self._netlink = NetlinkThread(
            RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR,
            self.netns,
            on_dump=self._dumped,
            on_message=lambda msg: self.publish(self._handle(msg)),
        )
        try:
            await self._netlink.start()
        except BaseException:
            await self._netlink.stop()
            self._netlink = None
            raise
        self.spawn(self._netlink.ended(), "netlink events")
        if self.helper_socket is not None:
            self.spawn(self._follow_helper(self.helper_socket), "helper events")

    async def stop(self) -> None:
        """Stop following; close the netlink socket."""
        for handle in self._pending.values():
            handle.cancel()
        self._pending.clear()
        await self.cancel_tasks()
        if self._netlink is not None:
            await self._netlink.stop()
            self._netlink = None

    def _dumped(self, messages: list[Any]) -> None:
        for msg in messages:
            self._handle(msg)
        self._report()

    def _handle(self, msg: Any) -> list[NetEvent]:
        kind = msg.get("event")
        events: list[NetEvent] = []
        if kind == "RTM_NEWLINK":
            flags = int(msg["flags"])
            events = self.tracker.link(
                int(msg["index"]),
                str(msg.get_attr("IFLA_IFNAME")),
                bool(flags & IFF_UP),
                bool(flags & IFF_LOWER_UP),
            )
        elif kind == "RTM_DELLINK":
            events = self.tracker.link_removed(int(msg["index"]))
        elif kind in ("RTM_NEWADDR", "RTM_DELADDR"):
            events = self.tracker.address(
                int(msg["index"]), _cidr(msg), present=kind == "RTM_NEWADDR"
            )
        return events

    async def _follow_helper(self, path: Path) -> None:
        """DHCP and configuration events from appliance-net; reconnects when it restarts."""
        delay = 1.0
        while True:
            try:
                async for event in events(path):
                    delay = 1.0
                    self._helper_event(event)
            except (HelperUnavailable, OSError, ValueError) as exc:
                log.debug("network helper events unavailable: %s", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, HELPER_RETRY_MAX)

    def _helper_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "subscribed":
            leases = event.get("leases")
            if isinstance(leases, dict):
                self.leases = {str(k): v for k, v in leases.items() if isinstance(v, dict)}
            return
        if kind == "dhcp":
            name = str(event.get("interface", ""))
            self.leases[name] = event
            left = event.get("seconds_left")
            self.publish(
                [
                    DhcpChanged(
                        name,
                        str(event.get("state", "")),
                        str(event.get("address", "")),
                        float(left) if isinstance(left, int | float) else None,
                    )
                ]
            )
        elif kind in ("applied", "confirmed", "rolled-back"):
            self.publish([NetworkChanged(str(kind))])
