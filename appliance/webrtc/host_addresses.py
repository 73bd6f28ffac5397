"""The addresses the box offers browsers as ICE host candidates (RFC 8445 §5.1.1.1).

``[webrtc] ice_addresses`` fixes them; otherwise they are the addresses of the
``ice_interfaces`` (all interfaces when none are named), read at start and again whenever the
network monitor reports that the box's addresses changed, so a call set up after a DHCP lease
or an ``appliance net apply`` offers the addresses the box has now.
"""

from __future__ import annotations

import logging

from appliance.config.schema import WebRtcConfig
from appliance.runtime.metrics import Metrics
from appliance.webrtc.hooks import interface_addresses, set_host_addresses

log = logging.getLogger(__name__)


class HostAddresses:
    """The current host-candidate addresses, handed to aioice through the hook."""

    def __init__(self, config: WebRtcConfig, metrics: Metrics) -> None:
        self.config = config
        self.current: list[str] = []
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
        set_host_addresses(addresses, self.config.ice_interfaces)
        if addresses == self.current:
            return False
        self.current = addresses
        log.info("ICE host candidates: %s", ", ".join(addresses) or "none (no address yet)")
        return True
