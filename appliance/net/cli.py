"""``appliance net …`` and ``appliance net-helper``: the commands, their output.

The commands talk to the helper (they never change the network themselves). Exit status:
0 done, 1 failed (helper unreachable, a step refused and undone, nothing to confirm),
2 invalid configuration (every problem printed with file, line, table and key).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from appliance.net.defaults import (
    DEFAULT_NETWORKD,
    DEFAULT_RESOLV,
    DEFAULT_SOCKET,
    DEFAULT_STATE,
)

EXIT_FAILED = 1
EXIT_INVALID = 2
BOX_CONFIG = Path("/etc/appliance/appliance.toml")


def _socket_path(args: argparse.Namespace) -> Path:
    """``--socket``, else ``[network] helper_socket`` of the config file, else the default."""
    from appliance.config.schema import NetworkConfig
    from appliance.net.netconfig import parse_network

    if args.socket is not None:
        return Path(args.socket)
    try:
        text = Path(args.config).read_text("utf-8")
    except OSError:
        return Path(NetworkConfig().helper_socket)
    network, _ = parse_network(text, str(args.config))
    return Path(network.helper_socket if network else NetworkConfig().helper_socket)


def _read_config(args: argparse.Namespace) -> tuple[str, str] | None:
    """The config text and name, validated locally first; prints problems."""
    from appliance.net.netconfig import parse_network

    path = Path(args.config)
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        print(f"{path}: cannot read the file: {exc.strerror or exc}", file=sys.stderr)
        return None
    except UnicodeDecodeError as exc:
        print(f"{path}: expected UTF-8 text (TOML 1.0): {exc}", file=sys.stderr)
        return None
    network, problems = parse_network(text, str(path))
    if network is None:
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"{path}: invalid ({len(problems)} problem(s)); nothing changed", file=sys.stderr)
        return None
    return text, str(path)


def _call(args: argparse.Namespace, op: str, **params: Any) -> dict[str, Any] | int:
    """One request to the helper; an exit status when it failed (after printing why)."""
    from appliance.net import protocol
    from appliance.net.client import HelperUnavailable, request
    from appliance.net.protocol import ProtocolError

    try:
        return asyncio.run(request(_socket_path(args), op, wait=args.wait, **params))
    except HelperUnavailable as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_FAILED
    except ProtocolError as exc:
        for problem in exc.details.get("problems", []):
            print(problem, file=sys.stderr)
        print(exc.message, file=sys.stderr)
        result = exc.details.get("result")
        if isinstance(result, dict):
            for line in result.get("undone", []):
                print(f"  undone: {line}", file=sys.stderr)
            for line in result.get("undo_errors", []):
                print(f"  undo failed: {line}", file=sys.stderr)
        return EXIT_INVALID if exc.code == protocol.INVALID_CONFIG else EXIT_FAILED


def _when(seconds: float | None) -> str:
    if seconds is None:
        return ""
    at = time.strftime("%H:%M:%S", time.localtime(time.time() + seconds))
    return f"at {at} (in {seconds:.0f} s)"


def render_show(result: dict[str, Any]) -> str:
    """The human-readable ``net show``."""
    from appliance.net.model import PROTOCOL_NAMES, NetState

    state = NetState.from_json(result["state"])
    managed = set(result.get("managed", []))
    leases: dict[str, Any] = result.get("leases", {})
    lines: list[str] = []
    for link in sorted(state.links, key=lambda item: item.index):
        flags = [
            "up" if link.up else "down",
            "carrier" if link.carrier else "no-carrier",
            f"mtu {link.mtu}",
        ]
        if link.kind == "vlan":
            flags.append(f"vlan {link.vlan_id} on {link.parent}")
        elif link.kind:
            flags.append(link.kind)
        if link.mac:
            flags.append(link.mac)
        if link.name in managed:
            flags.append("managed")
        lines.append(f"{link.name:<15} " + "  ".join(flags))
        lease = leases.get(link.name)
        lease_address = lease.get("address") if lease else ""
        for address in state.addresses_of(link.name):
            notes = []
            if address.cidr == lease_address:
                left = lease.get("seconds_left") if lease else None
                notes.append(f"dhcp {lease['state'] if lease else ''}, {left:.0f} s left")
            elif not address.permanent:
                notes.append(f"dynamic, {address.valid_lft} s left")
            if address.secondary:
                notes.append("secondary")
            suffix = f"  ({'; '.join(notes)})" if notes else ""
            lines.append(f"    {address.cidr}{suffix}")
        if lease and not lease_address:
            lines.append(f"    dhcp: {lease['state']}")
    lines.append("routes (main table):")
    for route in state.routes:
        protocol = PROTOCOL_NAMES.get(route.protocol, str(route.protocol))
        lines.append(f"    {route.describe()} ({protocol})")
    if not state.routes:
        lines.append("    none")
    dns = result.get("dns") or []
    if result.get("manage"):
        lines.append(f"DNS: {', '.join(dns) or 'none'} (in {result.get('resolv_conf')})")
    else:
        lines.append("network management: off ([network] manage = false or nothing applied)")
    pending = result.get("pending")
    if pending and pending.get("status") == "pending":
        lines.append(
            f"A try is pending: it rolls back {_when(pending.get('seconds_left'))} unless "
            "`appliance net confirm`."
        )
    elif pending and pending.get("status") == "done":
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(pending.get("created", 0)))
        what = "apply" if pending.get("mode") == "apply" else "confirmed try"
        lines.append(f"`appliance net rollback` would undo the {what} of {at}.")
    last = result.get("last_rollback")
    if last:
        exact = "restored exactly" if last.get("exact") else "NOT restored exactly"
        at = time.strftime("%H:%M:%S", time.localtime(last.get("at", 0)))
        lines.append(f"Last rollback at {at}: {last.get('reason')} ({exact})")
    return "\n".join(lines)


def _show(args: argparse.Namespace) -> int:
    result = _call(args, "show")
    if isinstance(result, int):
        return result
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(render_show(result))
    return 0


def _print_steps(steps: list[str], deferred: list[str], empty: str) -> None:
    for step in steps:
        print(f"  {step}")
    if not steps:
        print(empty)
    for route in deferred:
        print(f"  (waiting for a DHCP lease) route {route}")


def _diff(args: argparse.Namespace) -> int:
    config = _read_config(args)
    if config is None:
        return EXIT_INVALID
    result = _call(args, "diff", config=config[0], file=config[1])
    if isinstance(result, int):
        return result
    if not result.get("manage"):
        print(f"{config[1]}: [network] manage = false: nothing would change")
        return 0
    _print_steps(result["steps"], result["deferred"], "nothing to change")
    return 0


def _apply(args: argparse.Namespace) -> int:
    config = _read_config(args)
    if config is None:
        return EXIT_INVALID
    op = "try" if args.command_net == "try" else "apply"
    params: dict[str, Any] = {"config": config[0], "file": config[1]}
    if op == "try":
        params["timeout"] = args.timeout
    result = _call(args, op, **params)
    if isinstance(result, int):
        return result
    if not result.get("manage"):
        print(f"{config[1]}: [network] manage = false: network management is off")
        return 0
    _print_steps(result["steps"], result["deferred"], "nothing changed: already as configured")
    if op == "try":
        print(
            f"Rolls back {_when(result.get('seconds_left'))} unless you run "
            "`appliance net confirm`."
        )
    return 0


def _confirm(args: argparse.Namespace) -> int:
    result = _call(args, "confirm")
    if isinstance(result, int):
        return result
    print("Confirmed: the network stays as tried and is restored at boot.")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    result = _call(args, "rollback")
    if isinstance(result, int):
        return result
    _print_steps(result.get("steps", []), [], "nothing to change")
    for error in result.get("errors", []):
        print(f"  failed: {error}", file=sys.stderr)
    if result.get("exact"):
        print("Rolled back: the previous state is restored exactly.")
        return 0
    print("Rolled back, but the previous state could not be restored exactly.", file=sys.stderr)
    return EXIT_FAILED


def _helper(args: argparse.Namespace) -> int:
    import logging

    from appliance.net.helper import serve
    from appliance.runtime.logs import setup_logging

    setup_logging(args.log_level)
    logging.getLogger("pyroute2").setLevel(logging.WARNING)  # its debug lines are per message
    return asyncio.run(serve(args))


def add_commands(commands: Any) -> None:
    """Add ``net`` and ``net-helper`` to the ``appliance`` sub-commands."""
    net = commands.add_parser("net", help="show or change the box's network (via appliance-net)")
    actions = net.add_subparsers(dest="command_net", required=True, metavar="ACTION")

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--config",
            type=Path,
            default=BOX_CONFIG,
            help=f"configuration file (default {BOX_CONFIG})",
        )
        parser.add_argument(
            "--socket",
            type=Path,
            default=None,
            help="helper socket (default: [network] helper_socket)",
        )
        parser.add_argument(
            "--wait", type=float, default=120.0, help="seconds to wait for the helper's answer"
        )

    show = actions.add_parser("show", help="the actual network state")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    common(show)
    show.set_defaults(func=_show)

    diff = actions.add_parser("diff", help="what apply would change")
    common(diff)
    diff.set_defaults(func=_diff)

    apply = actions.add_parser("apply", help="make the network as configured")
    common(apply)
    apply.set_defaults(func=_apply)

    try_ = actions.add_parser("try", help="apply, and roll back unless confirmed in time")
    try_.add_argument(
        "--timeout", type=float, default=120.0, help="seconds before rolling back (default 120)"
    )
    common(try_)
    try_.set_defaults(func=_apply)

    confirm = actions.add_parser("confirm", help="keep the network of a pending try")
    common(confirm)
    confirm.set_defaults(func=_confirm)

    rollback = actions.add_parser("rollback", help="restore the state before the last change")
    common(rollback)
    rollback.set_defaults(func=_rollback)

    helper = commands.add_parser(
        "net-helper", help="run the privileged network helper (appliance-net.service)"
    )
    add_helper_arguments(helper)
    helper.set_defaults(func=_helper)


def add_helper_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``appliance net-helper`` options."""
    parser.add_argument(
        "--socket",
        type=Path,
        default=None,
        help=f"listen here (mode 0660) unless socket-activated (systemd: {DEFAULT_SOCKET})",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("STATE_DIRECTORY", str(DEFAULT_STATE)).split(":")[0]),
        help="rollback record, applied network, DHCP leases (default: $STATE_DIRECTORY or "
        f"{DEFAULT_STATE})",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="configuration applied at start when no network was applied before",
    )
    parser.add_argument(
        "--resolv-conf",
        type=Path,
        default=DEFAULT_RESOLV,
        help=f"resolver file to write (default {DEFAULT_RESOLV})",
    )
    parser.add_argument(
        "--networkd-dir",
        type=Path,
        default=DEFAULT_NETWORKD,
        help=f"where to write systemd-networkd Unmanaged=yes markers (default {DEFAULT_NETWORKD})",
    )
    parser.add_argument(
        "--group", default="appliance", help="group allowed to use the socket (default appliance)"
    )
    parser.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], default="info"
    )
