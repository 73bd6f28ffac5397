"""The privileged network helper (``appliance net-helper``, ``appliance-net.service``).

The only process that changes the network: it holds ``CAP_NET_ADMIN`` (and ``CAP_NET_RAW``
for DHCP); the call-bridging service and the CLI ask it over an AF_UNIX socket (see
:mod:`appliance.net.protocol`). Every peer is checked with ``SO_PEERCRED``/``SO_PEERGROUPS``
(socket(7), unix(7)): root, the helper's own user, or a member of the allowed group
(``appliance``) may talk to it.

Safe changes: before the first netlink change of an apply or a try, the rollback record (the
prior state of every link the change manages) is written atomically. A try that is not
confirmed in time is rolled back by a timer; on start, a record left ``applying`` or
``pending`` (the helper was killed, the box lost power) is rolled back before anything else.
A rolled-back try reinstates the record of the apply before it, so ``rollback`` can still
undo that apply; an apply that changes nothing keeps the record it found. A failed step undoes
the steps done before it. At start the helper restores the last applied network (not the file
on disk, which may hold an untried edit).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import grp
import logging
import os
import signal
import socket
import stat
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import sdnotify

from appliance.config.schema import NetworkConfig
from appliance.net import protocol
from appliance.net.checks import check, issues
from appliance.net.defaults import DEFAULT_NETWORKD, DEFAULT_RESOLV
from appliance.net.dhcp import DhcpManager, LeaseInfo
from appliance.net.model import NetState, desired_from_config, desired_from_snapshot
from appliance.net.netconfig import dhcp_interfaces, parse_network
from appliance.net.netlink import ApplyResult, Netlink
from appliance.net.plan import AddRoute, Plan, PlanError, plan
from appliance.net.protocol import ProtocolError
from appliance.net.records import Mode, Record, Store
from appliance.net.sysfiles import (
    read_text,
    render_resolv,
    write_networkd_markers,
    write_resolv,
)

log = logging.getLogger(__name__)

SO_PEERGROUPS = 59  # include/uapi/asm-generic/socket.h
MAX_TRY_TIMEOUT = 86400
SUBSCRIBER_QUEUE = 256


@dataclass(frozen=True)
class Peer:
    """Who is on the other end of a connection (``SO_PEERCRED``, ``SO_PEERGROUPS``)."""

    pid: int
    uid: int
    gid: int
    groups: tuple[int, ...] = ()


def peer_of(sock: socket.socket) -> Peer:
    """The credentials the kernel recorded for the peer of a connected AF_UNIX socket."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    groups: tuple[int, ...] = ()
    with contextlib.suppress(OSError):
        data = sock.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, 4 * 1024)
        groups = struct.unpack(f"{len(data) // 4}I", data[: len(data) // 4 * 4])
    return Peer(pid, uid, gid, groups)


class Access:
    """Who may use the helper: root, the helper's own user, members of ``group``."""

    def __init__(self, group: str | None) -> None:
        self.group = group
        self.gid: int | None = None
        if group:
            try:
                self.gid = grp.getgrnam(group).gr_gid
            except KeyError:
                log.warning("group %s does not exist: only root may use the helper", group)

    def allows(self, peer: Peer) -> bool:
        """True when ``peer`` may send requests."""
        if peer.uid in (0, os.geteuid()):
            return True
        return self.gid is not None and (peer.gid == self.gid or self.gid in peer.groups)


class NetHelper:
    """The helper's state and operations; :meth:`handle` serves one connection."""

    def __init__(
        self,
        *,
        state_dir: Path,
        resolv_conf: Path = DEFAULT_RESOLV,
        boot_config: Path | None = None,
        networkd_dir: Path = DEFAULT_NETWORKD,
        access: Access | None = None,
        netns: str | None = None,
    ) -> None:
        self.store = Store(state_dir)
        self.resolv_conf = resolv_conf
        self.boot_config = boot_config
        self.networkd_dir = networkd_dir
        self.access = access or Access(None)
        self.netlink = Netlink(netns)
        self.lock = asyncio.Lock()
        self.dhcp = DhcpManager(self.netlink, self.store.lease_dir, self._on_lease)
        self.applied: NetworkConfig | None = None
        self.record: Record | None = None
        self.last_rollback: dict[str, Any] | None = None
        self._timer: asyncio.Task[None] | None = None
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._background: set[asyncio.Task[Any]] = set()

    # Life cycle.

    async def start(self) -> None:
        """Open netlink, roll back an unfinished change, restore the applied network."""
        self.store.prepare()
        await self.netlink.__aenter__()
        self.dhcp.start()
        async with self.lock:
            record = self.store.load_record()
            if record is not None and record.unfinished:
                what = "try" if record.mode == "try" else "apply"
                await self._restore(record, f"the helper stopped during an unfinished {what}")
            else:
                self.record = record
            applied = self.store.load_applied()
            if applied is not None and applied.manage:
                self.applied = applied
                await self._boot_apply(applied)
            elif applied is None and self.boot_config is not None:
                await self._first_apply(self.boot_config)
            await self._sync(self.applied)

    async def _boot_apply(self, network: NetworkConfig) -> None:
        """Re-apply the last applied network (no record: it was confirmed already)."""
        try:
            actual = await self.netlink.read_state()
            steps = self._plan(network, actual)
        except ProtocolError as exc:
            log.error("cannot restore the applied network: %s %s", exc, exc.details)
            return
        if steps.steps:
            result = await self.netlink.execute(steps.steps)
            if result.ok:
                log.info("restored the applied network (%d steps)", len(result.done))
            else:
                log.error("restoring the applied network failed and was undone: %s", result.error)

    async def _first_apply(self, path: Path) -> None:
        """With nothing applied yet, apply the boot configuration when it manages the network."""
        try:
            text = await asyncio.to_thread(path.read_text, "utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("cannot read %s: %s; the network is left as it is", path, exc)
            return
        network, problems = parse_network(text, str(path))
        if network is None:
            for problem in problems:
                log.error("%s", problem)
            return
        if not network.manage:
            log.info("%s: [network] manage = false; the network is left to the OS", path)
            return
        try:
            answer = await self._apply(network, text, str(path), "apply", None)
            log.info("applied %s: %d steps", path, len(answer["steps"]))
        except ProtocolError as exc:
            log.error("cannot apply %s: %s %s", path, exc.message, exc.details.get("problems", ""))

    async def close(self) -> None:
        """Stop timers and DHCP clients (leases kept) and close netlink."""
        if self._timer is not None:
            self._timer.cancel()
        for task in list(self._background):
            task.cancel()
        await self.dhcp.close()
        self.netlink.close()

    # Connections.

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one client connection."""
        sock = writer.get_extra_info("socket")
        try:
            peer = peer_of(sock)
            if not self.access.allows(peer):
                log.warning("refused uid %d gid %d (pid %d)", peer.uid, peer.gid, peer.pid)
                refusal = ProtocolError(
                    protocol.FORBIDDEN,
                    f"uid {peer.uid} may not use the network helper (root or group "
                    f"{self.access.group or 'root'} only)",
                )
                writer.write(protocol.encode(protocol.error(refusal)))
                await writer.drain()
                return
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    too_long = ProtocolError(
                        protocol.INVALID_REQUEST,
                        f"expected a request line of at most {protocol.MAX_LINE} bytes",
                    )
                    writer.write(protocol.encode(protocol.error(too_long)))
                    await writer.drain()
                    return
                if not line:
                    return
                try:
                    request = protocol.decode_request(line)
                except ProtocolError as exc:
                    writer.write(protocol.encode(protocol.error(exc)))
                    await writer.drain()
                    continue
                if request["op"] == "events":
                    await self._stream_events(reader, writer)
                    return
                answer = await self.dispatch(request, peer)
                writer.write(protocol.encode(answer))
                await writer.drain()
        except (ConnectionError, BrokenPipeError):
            return
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, BrokenPipeError):
                await writer.wait_closed()

    async def dispatch(
        self, request: Mapping[str, Any], peer: Peer | None = None
    ) -> dict[str, Any]:
        """Answer one request (never raises)."""
        op = str(request["op"])
        who = f"uid {peer.uid} pid {peer.pid}" if peer else "local"
        try:
            if op == "show":
                return protocol.ok(await self.show())
            if op == "diff":
                network, text, file = self._network_of(request)
                async with self.lock:
                    return protocol.ok(await self._diff(network, text, file))
            if op in ("apply", "try"):
                network, text, file = self._network_of(request)
                timeout = self._timeout_of(request) if op == "try" else None
                log.info("%s of %s requested by %s", op, file, who)
                async with self.lock:
                    mode: Mode = "try" if op == "try" else "apply"
                    return protocol.ok(await self._apply(network, text, file, mode, timeout))
            if op == "confirm":
                log.info("confirm requested by %s", who)
                async with self.lock:
                    return protocol.ok(self._confirm())
            if op == "rollback":
                log.info("rollback requested by %s", who)
                async with self.lock:
                    return protocol.ok(await self._rollback(f"requested by {who}"))
        except ProtocolError as exc:
            return protocol.error(exc)
        except Exception as exc:
            log.error("%s failed", op, exc_info=exc)
            return protocol.error(ProtocolError(protocol.INTERNAL, f"{op} failed: {exc}"))
        raise AssertionError(f"unhandled op {op}")  # decode_request checks ops

    # Operations.

    async def show(self) -> dict[str, Any]:
        """The actual state, leases, and any pending try."""
        state = await self.netlink.read_state()
        network = self.applied
        return {
            "state": state.to_json(),
            "managed": sorted(i.name for i in network.interfaces) if network else [],
            "manage": bool(network and network.manage),
            "leases": {name: info.to_json() for name, info in self.dhcp.leases().items()},
            "dns": self._dns_servers(network),
            "resolv_conf": str(self.resolv_conf),
            "pending": self._record_summary(),
            "last_rollback": self.last_rollback,
        }

    def _record_summary(self) -> dict[str, Any] | None:
        record = self.record
        if record is None:
            return None
        return {
            "mode": record.mode,
            "status": record.status,
            "created": record.created,
            "deadline": record.deadline,
            "seconds_left": record.seconds_left(),
            "scope": record.scope,
        }

    def _network_of(self, request: Mapping[str, Any]) -> tuple[NetworkConfig, str, str]:
        text = request.get("config")
        file = request.get("file", "(request)")
        if not isinstance(text, str) or not isinstance(file, str):
            raise ProtocolError(
                protocol.INVALID_REQUEST, "expected config (TOML text) and file (a name)"
            )
        network, problems = parse_network(text, file)
        if network is None:
            raise ProtocolError(
                protocol.INVALID_CONFIG,
                f"{file}: invalid ({len(problems)} problem(s))",
                problems=[str(p) for p in problems],
            )
        return network, text, file

    @staticmethod
    def _timeout_of(request: Mapping[str, Any]) -> float:
        timeout = request.get("timeout", 120)
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 1 <= timeout <= MAX_TRY_TIMEOUT
        ):
            raise ProtocolError(
                protocol.INVALID_REQUEST,
                f"expected timeout from 1 to {MAX_TRY_TIMEOUT} seconds, found {timeout!r}",
            )
        return float(timeout)

    def _plan(
        self, network: NetworkConfig, actual: NetState, text: str = "", file: str = ""
    ) -> Plan:
        problems = check(network, actual)
        if problems:
            found = issues(problems, file=file or "(applied network)", source=text)
            raise ProtocolError(
                protocol.INVALID_CONFIG,
                f"{file or 'the network'} does not fit this box ({len(found)} problem(s))",
                problems=[str(p) for p in found],
            )
        try:
            return plan(desired_from_config(network), actual)
        except PlanError as exc:
            raise ProtocolError(protocol.INVALID_CONFIG, str(exc)) from exc

    async def _diff(self, network: NetworkConfig, text: str, file: str) -> dict[str, Any]:
        if not network.manage:
            return {"manage": False, "steps": [], "deferred": []}
        actual = await self.netlink.read_state()
        steps = self._plan(network, actual, text, file)
        return {
            "manage": True,
            "steps": [s.describe() for s in steps.steps],
            "deferred": [r.describe() for r in steps.deferred],
        }

    def _refuse_while_pending(self) -> None:
        record = self.record
        if record is not None and record.status == "pending":
            left = record.seconds_left() or 0
            raise ProtocolError(
                protocol.TRY_PENDING,
                f"a try is waiting for confirmation (it rolls back in {left:.0f} s): run "
                "`appliance net confirm` or `appliance net rollback` first",
            )

    async def _apply(
        self, network: NetworkConfig, text: str, file: str, mode: Mode, seconds: float | None
    ) -> dict[str, Any]:
        self._refuse_while_pending()
        if not network.manage:
            if mode == "try":
                raise ProtocolError(
                    protocol.NOT_MANAGED,
                    f"{file}: [network] manage is false: there is nothing to try",
                )
            if self.applied is not None:
                log.info("network management turned off by %s; links left as they are", file)
            self.applied = None
            self.store.save_applied(None)
            await self._sync(None)
            return {"manage": False, "steps": [], "deferred": [], "mode": mode}
        actual = await self.netlink.read_state()
        steps = self._plan(network, actual, text, file)
        if mode == "apply" and not steps.steps and network == self.applied:
            # Nothing to do: the record of the change that made this state stays rollbackable.
            await self._sync(network)
            return {
                "manage": True,
                "mode": mode,
                "steps": [],
                "deferred": [r.describe() for r in steps.deferred],
                "deadline": None,
                "seconds_left": None,
            }
        scope = sorted(i.name for i in network.interfaces)
        previous_record = self.record
        kept = previous_record if mode == "try" and previous_record is not None else None
        now = time.time()
        record = Record(
            mode=mode,
            status="pending" if mode == "try" else "applying",
            created=now,
            deadline=now + seconds if seconds is not None else None,
            scope=scope,
            snapshot=actual.managed(scope),
            prior_network=self.applied,
            prior_resolv=read_text(self.resolv_conf),
            network=network,
            previous=replace(kept, previous=None) if kept is not None else None,
        )
        self.store.save_record(record)
        self._write_markers(network)
        result: ApplyResult = await self.netlink.execute(steps.steps)
        if not result.ok:
            if previous_record is not None:
                self.store.save_record(previous_record)
            else:
                self.store.clear_record()
            self._write_markers(self.applied)
            undone = "undone" if not result.undo_errors else "undone only in part"
            raise ProtocolError(
                protocol.APPLY_FAILED,
                f"{result.error}; the {len(result.done)} step(s) done before were {undone}",
                result=result.to_json(),
            )
        self.record = record
        self.applied = network
        if mode == "apply":
            record.status = "done"
            self.store.save_record(record)
            self.store.save_applied(network)
        else:
            self._arm(record)
        await self._sync(network)
        self._emit({"event": "applied", "mode": mode, "steps": len(result.done)})
        log.info("%s: %d step(s) done", mode, len(result.done))
        return {
            "manage": True,
            "mode": mode,
            "steps": [s.describe() for s in result.done],
            "deferred": [r.describe() for r in steps.deferred],
            "deadline": record.deadline,
            "seconds_left": record.seconds_left(),
        }

    async def _rollback(self, reason: str) -> dict[str, Any]:
        if self.record is None:
            raise ProtocolError(protocol.NOTHING_PENDING, "there is no change to roll back")
        return await self._restore(self.record, reason)

    def _confirm(self) -> dict[str, Any]:
        record = self.record
        if record is None or record.status != "pending":
            raise ProtocolError(protocol.NOTHING_PENDING, "no try is waiting for confirmation")
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        record.status = "done"
        record.previous = None
        self.store.save_record(record)
        self.store.save_applied(record.network)
        self._emit({"event": "confirmed"})
        log.info("try confirmed")
        return {"confirmed": True, "scope": record.scope}

    def _arm(self, record: Record) -> None:
        if self._timer is not None:
            self._timer.cancel()
        delay = record.seconds_left() or 0.0

        async def expire() -> None:
            await asyncio.sleep(delay)
            async with self.lock:
                if self.record is record and record.status == "pending":
                    left = (record.deadline or 0) - record.created
                    await self._restore(record, f"not confirmed within {left:.0f} s")

        self._timer = asyncio.get_running_loop().create_task(expire(), name="try timeout")

    async def _restore(self, record: Record, reason: str) -> dict[str, Any]:
        """Put the links in the record's scope back as its snapshot saw them."""
        if self._timer is not None and self._timer is not asyncio.current_task():
            self._timer.cancel()
        self._timer = None
        log.warning("rolling back the %s of %s: %s", record.mode, ", ".join(record.scope), reason)
        actual = await self.netlink.read_state()
        desired = desired_from_snapshot(record.snapshot, record.scope)
        errors: list[str] = []
        done: list[str] = []
        try:
            steps = plan(desired, actual)
        except PlanError as exc:
            errors.append(str(exc))
        else:
            result = await self.netlink.execute(steps.steps, undo_on_failure=False, keep_going=True)
            errors += result.undo_errors
            done = [s.describe() for s in result.done]
        self.applied = record.prior_network
        self.store.save_applied(record.prior_network)
        await self._sync(record.prior_network, resolv=record.prior_resolv, restoring=True)
        after = (await self.netlink.read_state()).managed(record.scope)
        exact = after.comparable() == record.snapshot.comparable()
        if not exact:
            log.error("rollback did not restore the prior state exactly")
        self.record = record.previous
        if record.previous is not None:
            self.store.save_record(record.previous)
        else:
            self.store.clear_record()
        summary = {
            "reason": reason,
            "at": time.time(),
            "steps": done,
            "errors": errors,
            "exact": exact,
        }
        self.last_rollback = summary
        self._emit({"event": "rolled-back", **summary})
        return summary

    # Side effects: DHCP clients, the resolver file, networkd markers.

    async def _sync(
        self, network: NetworkConfig | None, *, resolv: str | None = None, restoring: bool = False
    ) -> None:
        await self.dhcp.reconcile(dhcp_interfaces(network))
        self._write_markers(network)
        if restoring:
            write_resolv(self.resolv_conf, resolv)
        else:
            self._write_resolv()

    def _dns_servers(self, network: NetworkConfig | None) -> list[str]:
        servers = list(network.dns_servers) if network else []
        leases = self.dhcp.leases()
        for name in sorted(dhcp_interfaces(network)):
            info = leases.get(name)
            if info is not None:
                servers += list(info.dns)
        return servers

    def _write_resolv(self) -> None:
        network = self.applied
        if network is None or not network.manage:
            return
        leases = self.dhcp.leases()
        domains = [leases[n].domain for n in sorted(dhcp_interfaces(network)) if n in leases]
        try:
            write_resolv(self.resolv_conf, render_resolv(self._dns_servers(network), domains))
        except OSError as exc:
            log.error("cannot write %s: %s", self.resolv_conf, exc)

    def _write_markers(self, network: NetworkConfig | None) -> None:
        names = [i.name for i in network.interfaces] if network and network.manage else []
        try:
            write_networkd_markers(self.networkd_dir, names)
        except OSError as exc:
            log.error("cannot write systemd-networkd markers in %s: %s", self.networkd_dir, exc)

    # DHCP events and subscribers.

    async def _on_lease(self, info: LeaseInfo) -> None:
        self._write_resolv()
        self._emit({"event": "dhcp", **info.to_json()})
        if info.state == "bound":
            task = asyncio.get_running_loop().create_task(self._add_deferred_routes())
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _add_deferred_routes(self) -> None:
        """After a lease brings a subnet, add the configured routes that waited for it."""
        async with self.lock:
            network = self.applied
            if network is None or not network.manage:
                return
            actual = await self.netlink.read_state()
            try:
                steps = self._plan(network, actual)
            except ProtocolError:
                return
            routes = [s for s in steps.steps if isinstance(s, AddRoute)]
            if routes:
                result = await self.netlink.execute(routes)
                log.info("added %d route(s) that waited for DHCP", len(result.done))

    def _emit(self, event: dict[str, Any]) -> None:
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                self._subscribers.discard(queue)

    async def _stream_events(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self._subscribers.add(queue)
        try:
            leases = {n: i.to_json() for n, i in self.dhcp.leases().items()}
            writer.write(protocol.encode(protocol.ok({"subscribed": True, "leases": leases})))
            await writer.drain()
            closed = asyncio.ensure_future(reader.read())
            while True:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, closed}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    return
                writer.write(protocol.encode(getter.result()))
                await writer.drain()
                if closed in done:
                    return
        finally:
            self._subscribers.discard(queue)


def listen_fds(environ: Mapping[str, str]) -> int:
    """Sockets passed by systemd socket activation (sd_listen_fds(3)), starting at fd 3."""
    if environ.get("LISTEN_PID") != str(os.getpid()):
        return 0
    try:
        return int(environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return 0


def open_listener(path: Path | None, group: str | None) -> socket.socket:
    """The listening socket: fd 3 when socket-activated, else a new one at ``path`` (0660)."""
    if listen_fds(os.environ):
        for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            os.environ.pop(name, None)
        sock = socket.socket(fileno=3)
        if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
            raise SystemExit("socket activation passed something other than an AF_UNIX stream")
        return sock
    if path is None:
        raise SystemExit("no --socket given and not socket-activated (LISTEN_FDS)")
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(path.lstat().st_mode):
            path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o117)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    if group:
        with contextlib.suppress(KeyError, PermissionError):
            os.chown(path, -1, grp.getgrnam(group).gr_gid)
    path.chmod(0o660)
    sock.listen(16)
    return sock


async def serve(args: argparse.Namespace) -> int:
    """Run the helper until SIGTERM/SIGINT."""
    loop = asyncio.get_running_loop()
    listener = open_listener(args.socket, args.group)
    helper = NetHelper(
        state_dir=args.state_dir,
        resolv_conf=args.resolv_conf,
        boot_config=args.config,
        networkd_dir=args.networkd_dir,
        access=Access(args.group),
    )
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await helper.start()
    server = await asyncio.start_unix_server(helper.handle, sock=listener, limit=protocol.MAX_LINE)
    notifier = sdnotify.SystemdNotifier()
    notifier.notify("READY=1\nSTATUS=Serving network requests")
    log.info("network helper ready on %s", listener.getsockname() or "the activated socket")
    await stop.wait()
    notifier.notify("STOPPING=1")
    server.close()
    await helper.close()
    return 0
