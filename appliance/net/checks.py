"""Problems found by holding a valid ``[network]`` section against the box, before any change.

The schema already refuses what the file alone shows (bad CIDR, a gateway outside every
subnet, duplicate addresses). These rules need the actual state: an interface that does not
exist, a VLAN name taken by another kind of link, a route that would collide with one this
configuration does not manage. Keys are relative to ``[network]`` in the schema's
``problems()`` form (``interfaces.1.parent``), so :func:`issues` names file, line and table
like ``appliance check-config`` does.
"""

from __future__ import annotations

from appliance.config.locate import Locator
from appliance.config.schema import NetworkConfig
from appliance.config.validate import ConfigIssue
from appliance.net.model import PROTOCOL_NAMES, NetState, desired_from_config


def _known(actual: NetState) -> str:
    names = [link.name for link in actual.links if link.name != "lo"]
    return ", ".join(names) if names else "none"


def check(network: NetworkConfig, actual: NetState) -> list[tuple[str, str]]:
    """``(key, message)`` for each reason ``network`` cannot be applied to ``actual``."""
    out: list[tuple[str, str]] = []
    configured = {iface.name: iface for iface in network.interfaces}
    for index, iface in enumerate(network.interfaces):
        key = f"interfaces.{index}"
        link = actual.link(iface.name)
        if iface.vlan_id:
            if link is not None and link.kind != "vlan":
                out.append(
                    (
                        f"{key}.name",
                        f"expected a name for the VLAN, found {iface.name!r}, which exists "
                        f"and is a {link.kind or 'network device'}",
                    )
                )
            parent = actual.link(iface.parent)
            if parent is None and iface.parent not in configured:
                out.append(
                    (
                        f"{key}.parent",
                        f"expected an interface of this box ({_known(actual)}), "
                        f"found {iface.parent!r}",
                    )
                )
            elif iface.mtu:
                parent_mtu = configured[iface.parent].mtu if iface.parent in configured else 0
                if not parent_mtu and parent is not None:
                    parent_mtu = parent.mtu
                if parent_mtu and iface.mtu > parent_mtu:
                    out.append(
                        (
                            f"{key}.mtu",
                            f"expected at most the MTU of {iface.parent} ({parent_mtu}), "
                            f"found {iface.mtu}",
                        )
                    )
        elif link is None:
            out.append(
                (
                    f"{key}.name",
                    f"expected an interface of this box ({_known(actual)}), found {iface.name!r}",
                )
            )
    desired = desired_from_config(network)
    for index, route in enumerate(desired.routes):
        for other in actual.routes:
            if other.key != route.key or (other.admin and other.interface in desired.scope):
                continue
            protocol = PROTOCOL_NAMES.get(other.protocol, str(other.protocol))
            out.append(
                (
                    f"routes.{index}.destination",
                    f"expected no other route with this destination and metric "
                    f"{route.metric}, found {other.describe()} (protocol {protocol}), "
                    f"which this configuration does not manage",
                )
            )
    return out


def issues(
    problems: list[tuple[str, str]], *, file: str, source: str, table: str = "network"
) -> list[ConfigIssue]:
    """Turn ``(key, message)`` pairs relative to ``[table]`` into located config issues."""
    locator = Locator(source)
    out = []
    for key, message in problems:
        *sub, leaf = key.split(".")
        path = (table, *(int(p) if p.isdigit() else p for p in sub))
        out.append(ConfigIssue(file, locator.line_of(path, leaf), path, leaf, message))
    return sorted(out, key=lambda i: i.line or 0)
