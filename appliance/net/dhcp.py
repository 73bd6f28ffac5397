"""DHCPv4 (RFC 2131) on the managed interfaces, with pyroute2's asyncio client.

pyroute2 0.9.7 ships ``pyroute2.dhcp.client.AsyncDHCPClient``: a state machine over a raw
``AF_PACKET`` socket (hence ``CAP_NET_RAW``) that calls hooks when a lease is bound, renewed
(T1, RFC 2131 §4.4.5), rebound (T2), expires or is released. Here:

* leases are stored as JSON under the helper's state directory (atomically), so a restart
  asks for the same address again (INIT-REBOOT, RFC 2131 §3.2);
* the hooks only queue the event; one worker applies them in order: the leased address is set
  *with the lease's lifetime*, so the kernel drops it by itself if nobody renews it (even if
  the helper is gone), and the router becomes a default route of protocol ``dhcp`` and metric
  1024 (static default routes, metric 0, win);
* on expiry or release the address and route go, and the change is reported; the link has
  ``promote_secondaries`` set, so static addresses of the same subnet stay when it goes;
* a client whose internal tasks die (a malformed packet from the wire can do that) is
  restarted with a back-off; stopping the helper does not release leases, turning DHCP off
  on an interface does (DHCPRELEASE, RFC 2131 §4.4.6).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyroute2.dhcp.client import AsyncDHCPClient, ClientConfig
from pyroute2.dhcp.hooks import Hook, Trigger
from pyroute2.dhcp.leases import Lease, MissingOptionError
from pyroute2.netlink.exceptions import NetlinkError

from appliance.config.edit import atomic_write
from appliance.net.model import DHCP_ROUTE_METRIC
from appliance.net.netlink import Netlink, set_promote_secondaries

log = logging.getLogger(__name__)

RESTART_BACKOFF_MAX = 30.0


@dataclass(frozen=True)
class LeaseInfo:
    """The DHCP state of one interface, as reported to clients and the service."""

    interface: str
    state: str
    """``waiting`` (no lease yet), ``bound``, ``renewed``, ``rebound``, ``expired``, or
    ``released``."""
    address: str = ""
    gateway: str = ""
    dns: tuple[str, ...] = ()
    domain: str = ""
    server: str = ""
    expires_at: float | None = None
    """Wall-clock time the lease ends (``None``: no lease, or an infinite one)."""
    renewals: int = 0

    def seconds_left(self, now: float | None = None) -> float | None:
        """Seconds until the lease expires."""
        if self.expires_at is None:
            return None
        return max(0.0, self.expires_at - (time.time() if now is None else now))

    def to_json(self) -> dict[str, Any]:
        """For the helper's answers and events."""
        data = dataclasses.asdict(self)
        data["dns"] = list(self.dns)
        left = self.seconds_left()
        data["seconds_left"] = None if left is None else round(left, 1)
        return data


def lease_store(directory: Path) -> type[Lease]:
    """A pyroute2 ``Lease`` class that keeps its leases in ``directory``."""

    class StoredLease(Lease):  # type: ignore[misc]  # pyroute2 ships no type hints
        """A lease kept as ``<directory>/<interface>.lease.json``."""

        def dump(self) -> None:
            data = json.dumps(dataclasses.asdict(self), default=str).encode()
            atomic_write(directory / f"{self.interface}.lease.json", data, 0o600)

        @classmethod
        def load(cls, interface: str) -> Lease | None:
            path = directory / f"{interface}.lease.json"
            try:
                return cls(**json.loads(path.read_bytes()))
            except FileNotFoundError:
                return None
            except (ValueError, TypeError) as exc:
                log.warning("ignoring unreadable lease %s: %s", path, exc)
                return None

    return StoredLease


def _option(lease: Lease, name: str, default: Any) -> Any:
    try:
        return getattr(lease, name)
    except MissingOptionError:
        return default


Listener = Callable[[LeaseInfo], Awaitable[None]]


@dataclass
class _Runner:
    name: str
    stop: asyncio.Event
    task: asyncio.Task[None] | None = None
    release: bool = False


class DhcpManager:
    """Runs one DHCP client per interface that asks for DHCP."""

    def __init__(
        self, netlink: Netlink, lease_dir: Path, on_change: Listener, *, vendor: str = "appliance"
    ) -> None:
        self.netlink = netlink
        self.lease_dir = lease_dir
        self.on_change = on_change
        self.vendor = vendor
        self.lease_type = lease_store(lease_dir)
        self._runners: dict[str, _Runner] = {}
        self._info: dict[str, LeaseInfo] = {}
        self._queue: asyncio.Queue[tuple[str, Trigger, Lease]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    def leases(self) -> dict[str, LeaseInfo]:
        """The current DHCP state of every interface running a client."""
        return dict(self._info)

    def start(self) -> None:
        """Start the worker that applies lease events."""
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(
                self._work(), name="dhcp lease events"
            )

    async def reconcile(self, interfaces: set[str]) -> None:
        """Run clients on exactly ``interfaces``: start new ones, release and stop the rest."""
        for name in sorted(set(self._runners) - interfaces):
            await self.stop(name, release=True)
        for name in sorted(interfaces - set(self._runners)):
            try:
                set_promote_secondaries(await self.netlink.index(name))
            except (OSError, NetlinkError) as exc:
                log.warning("cannot set promote_secondaries on %s: %s", name, exc)
            runner = _Runner(name, asyncio.Event())
            runner.task = asyncio.get_running_loop().create_task(
                self._supervise(runner), name=f"dhcp client {name}"
            )
            self._runners[name] = runner
            self._info[name] = LeaseInfo(name, "waiting")

    async def stop(self, name: str, *, release: bool) -> None:
        """Stop the client on ``name``; ``release`` sends DHCPRELEASE and drops the address."""
        runner = self._runners.pop(name, None)
        if runner is None:
            return
        runner.release = release
        runner.stop.set()
        if runner.task is not None:
            try:
                await asyncio.wait_for(runner.task, 10)
            except (TimeoutError, asyncio.CancelledError):
                runner.task.cancel()
            except Exception as exc:
                log.error("DHCP client on %s failed while stopping: %s", name, exc)
        await self._drain()
        if release:
            with contextlib.suppress(FileNotFoundError):
                (self.lease_dir / f"{name}.lease.json").unlink()
        self._info.pop(name, None)

    async def close(self) -> None:
        """Stop every client without releasing (the leases stay valid across a restart)."""
        for name in list(self._runners):
            await self.stop(name, release=False)
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    async def _drain(self) -> None:
        """Wait until the worker has applied every queued event."""
        await self._queue.join()

    def _hooks(self, name: str) -> list[Hook]:
        hooks = []
        for trigger in Trigger:

            def make(trigger: Trigger) -> Callable[..., Awaitable[None]]:
                async def queue_event(lease: Lease) -> None:
                    self._queue.put_nowait((name, trigger, lease))

                queue_event.__name__ = f"appliance_{trigger}"
                return queue_event

            hooks.append(Hook(func=make(trigger), triggers={trigger}))
        return hooks

    async def _supervise(self, runner: _Runner) -> None:
        backoff = 1.0
        while not runner.stop.is_set():
            try:
                await self._run_client(runner)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("DHCP client on %s stopped: %s; restarting", runner.name, exc)
            if runner.stop.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(runner.stop.wait(), backoff)
            backoff = min(backoff * 2, RESTART_BACKOFF_MAX)

    async def _run_client(self, runner: _Runner) -> None:
        config = ClientConfig(
            interface=runner.name,
            lease_type=self.lease_type,
            hooks=self._hooks(runner.name),
            handle_signals=False,
            release=False,
            hook_timeout=5.0,
            vendor_id=self.vendor,
        )
        async with AsyncDHCPClient(config) as client:
            await client.bootstrap()
            # pyroute2 keeps its send/receive loops as private tasks; if one dies the client
            # is deaf, so it is watched and the client restarted (pyroute2 is pinned exactly).
            internal = [t for t in (client._receiver_task, client._sender_task) if t is not None]
            stop = asyncio.ensure_future(runner.stop.wait())
            done, _ = await asyncio.wait([stop, *internal], return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if not runner.stop.is_set():
                reasons = [
                    repr(t.exception()) if not t.cancelled() and t.exception() else "ended"
                    for t in done
                    if t is not stop
                ]
                raise RuntimeError("client loop " + ", ".join(reasons))
            client.config.release = runner.release

    async def _work(self) -> None:
        while True:
            name, trigger, lease = await self._queue.get()
            try:
                await self._apply(name, trigger, lease)
            except Exception as exc:
                log.error("DHCP %s on %s could not be applied: %s", trigger, name, exc)
            finally:
                self._queue.task_done()

    async def _apply(self, name: str, trigger: Trigger, lease: Lease) -> None:
        previous = self._info.get(name, LeaseInfo(name, "waiting"))
        prefix = 32
        mask = _option(lease, "subnet_mask", None)
        if mask is not None:
            prefix = int(lease.prefixlen)
        cidr = f"{lease.ip}/{prefix}"
        routers = list(_option(lease, "routers", []) or [])
        gateway = str(routers[0]) if routers else ""
        if trigger in (Trigger.BOUND, Trigger.RENEWED, Trigger.REBOUND):
            left = lease.expiration_in
            if previous.address and previous.address != cidr:
                await self.netlink.remove_address(name, previous.address)
            await self.netlink.set_lease_address(
                name, cidr, int(left) if left is not None else 0xFFFFFFFE
            )
            if previous.gateway and previous.gateway != gateway:
                await self.netlink.remove_dhcp_route(name, previous.gateway, DHCP_ROUTE_METRIC)
            if gateway:
                await self.netlink.set_dhcp_route(name, gateway, DHCP_ROUTE_METRIC)
            renewals = previous.renewals + (trigger != Trigger.BOUND)
            info = LeaseInfo(
                interface=name,
                state=str(trigger),
                address=cidr,
                gateway=gateway,
                dns=tuple(str(s) for s in _option(lease, "name_servers", []) or []),
                domain=str(_option(lease, "domain_name", "") or ""),
                server=str(_option(lease, "server_id", "") or ""),
                expires_at=None if left is None else time.time() + left,
                renewals=renewals,
            )
            log.info("DHCP %s on %s: %s, %s s left", trigger, name, cidr, round(left or 0))
        else:
            await self.netlink.remove_address(name, cidr)
            if gateway:
                await self.netlink.remove_dhcp_route(name, gateway, DHCP_ROUTE_METRIC)
            info = LeaseInfo(name, str(trigger), renewals=previous.renewals)
            log.warning("DHCP lease %s on %s %s", cidr, name, trigger)
        if name in self._runners or trigger in (Trigger.UNBOUND, Trigger.EXPIRED):
            self._info[name] = info
        await self.on_change(info)
