"""The ``appliance`` command line."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from appliance import __version__
from appliance.config import DEFAULT_NAME, default_config_text, read_config

EXIT_INVALID = 2


def _run(args: argparse.Namespace) -> int:
    from appliance.runtime import eventloop
    from appliance.runtime.logs import setup_logging
    from appliance.service import Service

    config, issues = read_config(args.config)
    if config is None:
        for issue in issues:
            print(issue, file=sys.stderr)
        print(
            f"{args.config or DEFAULT_NAME}: not started, {len(issues)} problem(s)", file=sys.stderr
        )
        return EXIT_INVALID
    setup_logging(args.log_level or config.service.log_level)
    return eventloop.run(Service(config).run())


def _check_config(args: argparse.Namespace) -> int:
    config, issues = read_config(args.path)
    for issue in issues:
        print(issue)
    if config is None:
        print(f"{args.path}: invalid ({len(issues)} problem(s))")
        return EXIT_INVALID
    print(f"{args.path}: ok")
    return 0


def _default_config(args: argparse.Namespace) -> int:
    sys.stdout.write(default_config_text())
    return 0


def _hash_password(args: argparse.Namespace) -> int:
    from appliance.auth.passwords import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("the passwords differ", file=sys.stderr)
            return EXIT_INVALID
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 8:
        print("a password needs at least 8 characters", file=sys.stderr)
        return EXIT_INVALID
    print(hash_password(password))
    return 0


def parser() -> argparse.ArgumentParser:
    """The argument parser (also used to document the commands)."""
    top = argparse.ArgumentParser(
        prog="appliance",
        description="PSAP edge gateway: SIP phones to WebRTC call-takers' consoles.",
    )
    top.add_argument("--version", action="version", version=f"appliance {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the service in the foreground")
    run.add_argument(
        "--config",
        type=Path,
        default=None,
        help="configuration file (default: the embedded default config)",
    )
    run.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="override [service] log_level",
    )
    run.set_defaults(func=_run)

    check = commands.add_parser(
        "check-config", help="validate a configuration file (exit 0 valid, 2 invalid)"
    )
    check.add_argument("path", type=Path)
    check.set_defaults(func=_check_config)

    default = commands.add_parser("default-config", help="print the commented default config")
    default.set_defaults(func=_default_config)

    hashpw = commands.add_parser(
        "hash-password", help="hash an operator password for [[operators]] password_hash"
    )
    hashpw.set_defaults(func=_hash_password)

    from appliance.net.cli import add_commands as add_net_commands

    add_net_commands(commands)
    return top


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``appliance`` console script."""
    args = parser().parse_args(argv)
    status: int = args.func(args)
    return status
