"""The addresses the box offers browsers as ICE host candidates (RFC 8445 §5.1.1.1).

``[webrtc] ice_addresses`` fixes them; otherwise they are the addresses of the
``ice_interfaces`` (all interfaces when none are named), read at start and again whenever the
network monitor reports that the box's addresses changed, so a call set up after a DHCP lease
or an ``appliance net apply`` offers the addresses the box has now.

Reading addresses needs only ``ifaddr``; handing them to aioice needs the WebRTC stack,
which loads on demand (:mod:`appliance.webrtc.stack`): the hook is attached when it has.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import ifaddr

from appliance.config.schema import WebRtcConfig
from appliance.runtime.metrics import Metrics

log = logging.getLogger(__name__)

Installer = Callable[[list[str], list[str]], None]


def interface_addresses(interfaces: Iterable[str] = (), *, loopback: bool = False) -> list[str]:
    """Addresses of the named interfaces (all when none are named), IPv4 and global IPv6."""
    wanted = set(interfaces)
    out: list[str] = []
    for adapter in ifaddr.get_adapters():
        if wanted and adapter.nice_name not in wanted and adapter.name not in wanted:
            continue
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                if loopback or not ip.ip.startswith("127."):
                    out.append(ip.ip)
            elif (
                ip.ip[2] == 0
                and (loopback or ip.ip[0] != "::1")
                and not ip.ip[0].startswith("fe80")
            ):
                out.append(ip.ip[0])
    return out


class HostAddresses:
    """The current host-candidate addresses, handed to aioice through the hook."""

    def __init__(self, config: WebRtcConfig, metrics: Metrics) -> None:
        self.config = config
        self.current: list[str] = []
        self._install: Installer | None = None
        metrics.gauge(
            "appliance_webrtc_host_address",
            "1 for each address offered to browsers as an ICE host candidate.",
            ["address"],
            read=lambda: {(address,): 1.0 for address in self.current},
        )

    def refresh(self) -> bool:
        """Read the addresses again and install them; True when they changed."""
        fixed = list(self.config.ice_addresses)
        addresses = fixed or interface_addresses(self.config.ice_interfaces)
        # An empty list makes the hook read the interfaces at each gathering instead.
        if self._install is not None:
            self._install(addresses, list(self.config.ice_interfaces))
        if addresses == self.current:
            return False
        self.current = addresses
        log.info("ICE host candidates: %s", ", ".join(addresses) or "none (no address yet)")
        return True

    def attach(self, install: Installer) -> None:
        """The WebRTC stack is loaded: hand it the addresses of the last refresh, and
        those of every refresh from now on (``install`` is
        :func:`appliance.webrtc.hooks.set_host_addresses`)."""
        self._install = install
        install(list(self.current), list(self.config.ice_interfaces))
