"""The box's own network: desired state from ``[network]``, netlink state, plans, the helper.

Layers, from pure to I/O:

* :mod:`~appliance.net.model` — snapshots of links, addresses and routes, and the desired state
  built from the configuration (no netlink).
* :mod:`~appliance.net.checks` — problems found by comparing the configuration with the box
  (unknown interface, conflicting routes), before anything is touched.
* :mod:`~appliance.net.plan` — desired + actual → ordered steps, each with its inverse.
* :mod:`~appliance.net.netlink` — reads the state and runs steps with pyroute2.
* :mod:`~appliance.net.helper` — the privileged helper process (``appliance net-helper``).
* :mod:`~appliance.net.monitor` — read-only link monitoring in the service.
"""
