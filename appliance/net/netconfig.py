"""The ``[network]`` section on its own: parsed from a whole file, stored as JSON.

The helper validates only this section of the file a client sends (it need not be able to
read the web certificate named elsewhere), with the same validator and the same messages as
``appliance check-config``. It stores the applied section as JSON in its state directory,
never the whole file (which holds passwords).
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from typing import Any

from appliance.config.schema import NetworkConfig
from appliance.config.validate import ConfigIssue, build_config, describe


def parse_network(text: str, file: str) -> tuple[NetworkConfig | None, list[ConfigIssue]]:
    """The validated ``[network]`` section of TOML ``text`` (defaults when it is absent)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return None, [ConfigIssue(file, None, (), "", f"invalid TOML: {exc}")]
    section = data.get("network", {})
    if not isinstance(section, dict):
        return None, [
            ConfigIssue(file, None, (), "network", f"expected a table, found {describe(section)}")
        ]
    config, issues = build_config(
        section, file=file, source=text, cls=NetworkConfig, table=("network",)
    )
    return config, issues


def network_to_json(network: NetworkConfig) -> dict[str, Any]:
    """A JSON-ready dictionary of the section."""
    return dataclasses.asdict(network)


def network_from_json(data: Any, file: str = "(stored network)") -> NetworkConfig:
    """Inverse of :func:`network_to_json`, validated again.

    Raises ``TypeError`` when ``data`` is no table, ``ValueError`` when it is invalid.
    """
    if not isinstance(data, dict):
        raise TypeError(f"{file}: expected a table for [network]")
    config, issues = build_config(
        data, file=file, source=json.dumps(data), cls=NetworkConfig, table=("network",)
    )
    if config is None:
        raise ValueError("; ".join(str(i) for i in issues))
    assert isinstance(config, NetworkConfig)
    return config


def dhcp_interfaces(network: NetworkConfig | None) -> set[str]:
    """Names of the interfaces that get their address by DHCP."""
    if network is None or not network.manage:
        return set()
    return {iface.name for iface in network.interfaces if iface.dhcp and iface.enabled}
