"""The operators the service knows: the configured ones, or a generated first operator.

A fresh box has no ``[[operators]]``. Its first start makes one, ``operator``, with a
random password written to ``<state>/first-operator.txt`` (0600) for the person setting
the box up; the hash is kept in ``<state>/operators.json`` so later starts reuse it.
"""

from __future__ import annotations

import json
import logging
import secrets
from pathlib import Path

from appliance.auth.passwords import hash_password
from appliance.config.edit import atomic_write
from appliance.config.schema import Config, Operator

log = logging.getLogger(__name__)

FIRST_NAME = "operator"
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i


def new_password() -> str:
    """Four groups of five unambiguous characters (~99 bits)."""
    return "-".join("".join(secrets.choice(_ALPHABET) for _ in range(5)) for _ in range(4))


def effective_operators(config: Config, state_dir: Path) -> list[Operator]:
    """The configured operators, or the generated first operator when there are none."""
    if config.operators:
        return list(config.operators)
    stored = state_dir / "operators.json"
    try:
        data = json.loads(stored.read_text())
        log.info(
            "no [[operators]] configured: first operator %r (password in %s)",
            FIRST_NAME, state_dir / "first-operator.txt",
        )  # fmt: skip
        return [Operator(name=str(data["name"]), password_hash=str(data["password_hash"]),
                         display_name="First operator")]  # fmt: skip
    except FileNotFoundError:
        pass
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("%s is unreadable (%s); making a new first operator", stored, exc)
    password = new_password()
    operator = Operator(name=FIRST_NAME, password_hash=hash_password(password),
                        display_name="First operator")  # fmt: skip
    notice = state_dir / "first-operator.txt"
    atomic_write(
        notice,
        (
            f"User name: {FIRST_NAME}\nPassword:  {password}\n\n"
            "This account exists while the configuration has no [[operators]]. Add your\n"
            "operators to the configuration (password_hash from `appliance hash-password`);\n"
            "this account then stops working.\n"
        ).encode(),
        mode=0o600,
    )
    atomic_write(
        stored,
        json.dumps({"name": operator.name, "password_hash": operator.password_hash}).encode(),
        mode=0o600,
    )
    log.info("first operator %r made; its password is in %s", FIRST_NAME, notice)
    return [operator]
