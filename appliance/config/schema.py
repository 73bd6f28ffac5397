"""The configuration schema: one frozen dataclass per TOML table.

The field metadata (see :mod:`appliance.config.fields`) is the single source for the
validator's limits, the README's configuration reference and the default-config test.
A section may define ``problems()`` for rules that span several of its keys; it returns
``(key, message)`` pairs.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

from appliance.config.fields import (
    absolute_path,
    each,
    hostname_or_address,
    ice_server_url,
    interface_name,
    ip_address,
    ip_interface,
    ip_network,
    ip_network_or_default,
    optional,
    readable_file,
    scrypt_hash,
    serial_path,
    setting,
    sip_uri,
    sip_user,
)

LogLevel = Literal["debug", "info", "warning", "error"]


@dataclass(frozen=True)
class ServiceConfig:
    """[service]: the process itself."""

    name: str = setting(
        "psap-gateway",
        "Name of this box, shown on the page, in logs and in the SIP User-Agent header.",
    )
    state_dir: str = setting(
        "",
        "Directory for certificates, registrations and text transcripts. Empty: systemd's "
        "$STATE_DIRECTORY when set, else $XDG_STATE_HOME/appliance (~/.local/state/appliance).",
    )
    log_level: LogLevel = setting("info", "Lowest level logged: debug, info, warning or error.")
    shutdown_timeout: float = setting(
        10.0,
        "Time allowed for a graceful stop (hang up calls, unregister) before exiting anyway.",
        minimum=1.0,
        maximum=120.0,
        unit="s",
    )
    loop_lag_limit: float = setting(
        1.0,
        "Event-loop lag above which the service counts as unhealthy and stops the systemd "
        "watchdog pings, so a stuck service is restarted.",
        minimum=0.05,
        maximum=30.0,
        unit="s",
    )


@dataclass(frozen=True)
class WebConfig:
    """[web]: the HTTPS server for the call-takers' page, /healthz and /metrics."""

    addresses: list[str] = setting(
        doc="Addresses to listen on. Empty: every address of the box (IPv4 and IPv6).",
        factory=list,
        check=each(ip_address),
    )
    port: int = setting(8443, "HTTPS port.", minimum=1, maximum=65535)
    certificate: str = setting(
        "",
        "PEM certificate chain (absolute path). Empty: a self-signed certificate is made in "
        "the state directory on first start.",
        check=optional(readable_file),
    )
    private_key: str = setting(
        "", "PEM private key for `certificate` (absolute path).", check=optional(readable_file)
    )
    session_lifetime: int = setting(
        43200,
        "How long an operator's login session lasts.",
        minimum=300,
        maximum=604800,
        unit="s",
    )
    metrics_token: str = setting(
        "",
        "Bearer token that lets a monitoring system read /metrics without logging in. "
        "Empty: /metrics needs an operator's login.",
    )
    allowed_origins: list[str] = setting(
        doc="Extra origins (https://host:port) allowed to open the WebSocket API, besides "
        "the box's own.",
        factory=list,
    )

    def problems(self) -> list[tuple[str, str]]:
        """A certificate needs its key, and the other way round."""
        if bool(self.certificate) != bool(self.private_key):
            key = "private_key" if self.certificate else "certificate"
            return [(key, "expected certificate and private_key to be set together")]
        return []


@dataclass(frozen=True)
class RegistrarConfig:
    """[sip.registrar]: bindings of LAN phones (RFC 3261 §10)."""

    require_auth: bool = setting(
        True, "Phones must authenticate with an account from [[sip.accounts]] (RFC 3261 §22)."
    )
    min_expires: int = setting(
        60, "Shortest registration accepted (423 below it).", minimum=1, maximum=86400, unit="s"
    )
    max_expires: int = setting(
        3600, "Longest registration granted.", minimum=60, maximum=604800, unit="s"
    )
    default_expires: int = setting(
        3600, "Registration time when a phone asks for none.", minimum=60, maximum=604800, unit="s"
    )
    digest_algorithms: list[Literal["SHA-256", "MD5"]] = setting(
        doc="Digest algorithms challenged with, most preferred first (RFC 8760 §2.4). Phones "
        "use the first they support; put MD5 first for phones that only read the first "
        "challenge and know only MD5.",
        factory=lambda: ["SHA-256", "MD5"],
    )

    def problems(self) -> list[tuple[str, str]]:
        """RFC 3261 §10.3 step 7: min <= default <= max; at least one digest algorithm."""
        out = []
        if not self.digest_algorithms or len(set(self.digest_algorithms)) != len(
            self.digest_algorithms
        ):
            out.append(("digest_algorithms", "expected one or more distinct algorithms"))
        if self.min_expires > self.max_expires:
            out.append(("min_expires", "expected min_expires <= max_expires"))
        if not self.min_expires <= self.default_expires <= self.max_expires:
            out.append(
                ("default_expires", "expected min_expires <= default_expires <= max_expires")
            )
        return out


@dataclass(frozen=True)
class SipAccount:
    """[[sip.accounts]]: a LAN phone allowed to register and call."""

    user: str = setting(doc="SIP user name (the phone's address is sip:USER@box).", check=sip_user)
    password: str = setting(doc="Digest password (RFC 3261 §22, RFC 7616).")
    display_name: str = setting("", "Name shown to call-takers for this phone.")

    def problems(self) -> list[tuple[str, str]]:
        """Digest secrets shorter than 8 characters are refused."""
        if len(self.password) < 8:
            return [("password", "expected at least 8 characters")]
        return []


@dataclass(frozen=True)
class UpstreamConfig:
    """[sip.upstream]: optional registration to a PBX or trunk for the operators' identities."""

    enabled: bool = setting(False, "Register operators' identities with an upstream registrar.")
    registrar: str = setting(
        "", "Registrar URI, such as sip:pbx.example.net.", check=optional(sip_uri)
    )
    outbound_proxy: str = setting(
        "",
        "URI every request goes through first (RFC 3261 §8.1.2). Empty: none.",
        check=optional(sip_uri),
    )
    username: str = setting("", "Authentication user name.")
    password: str = setting("", "Authentication password.")
    expires: int = setting(600, "Registration time asked for.", minimum=60, maximum=86400, unit="s")
    keepalive_interval: int = setting(
        30, "OPTIONS keepalive toward the upstream; 0 disables.", minimum=0, maximum=3600, unit="s"
    )

    def problems(self) -> list[tuple[str, str]]:
        """An enabled upstream needs a registrar."""
        if self.enabled and not self.registrar:
            return [("registrar", "expected a registrar URI when enabled = true")]
        return []


@dataclass(frozen=True)
class SipConfig:
    """[sip]: the SIP user agent, registrar and transports (RFC 3261)."""

    domain: str = setting(
        "",
        "Domain of the box's SIP addresses (sip:user@DOMAIN). Empty: the host name.",
        check=optional(hostname_or_address),
    )
    addresses: list[str] = setting(
        doc="Addresses to listen on. Empty: every address of the box.",
        factory=list,
        check=each(ip_address),
    )
    udp_port: int = setting(5060, "UDP port; 0 disables UDP.", minimum=0, maximum=65535)
    tcp_port: int = setting(5060, "TCP port; 0 disables TCP.", minimum=0, maximum=65535)
    tls_port: int = setting(5061, "TLS port; 0 disables TLS.", minimum=0, maximum=65535)
    tls_certificate: str = setting(
        "",
        "PEM certificate for SIP over TLS (absolute path). Empty: the web certificate.",
        check=optional(readable_file),
    )
    tls_private_key: str = setting(
        "", "PEM key for `tls_certificate` (absolute path).", check=optional(readable_file)
    )
    t1: int = setting(
        500,
        "Timer T1, the round-trip estimate (RFC 3261 §17.1.1.1).",
        minimum=100,
        maximum=5000,
        unit="ms",
    )
    t2: int = setting(
        4000,
        "Timer T2, the longest retransmit interval (RFC 3261 §17.1.2.2).",
        minimum=1000,
        maximum=16000,
        unit="ms",
    )
    t4: int = setting(
        5000,
        "Timer T4, how long a message may stay in the network (RFC 3261 §17.1.2.2).",
        minimum=1000,
        maximum=16000,
        unit="ms",
    )
    session_expires: int = setting(
        1800,
        "Session refresh interval offered (RFC 4028 §4); 0 disables session timers.",
        minimum=0,
        maximum=86400,
        unit="s",
    )
    max_message_size: int = setting(
        65535,
        "Largest SIP message accepted on any transport.",
        minimum=4096,
        maximum=1048576,
        unit="bytes",
    )
    trusted_peers: list[str] = setting(
        doc="Networks whose requests need no digest authentication, such as a PBX or "
        "gateway (192.0.2.5/32). Everyone else authenticates with [[sip.accounts]].",
        factory=list,
        check=each(ip_network),
    )
    registrar: RegistrarConfig = setting(doc="", factory=RegistrarConfig)
    upstream: UpstreamConfig = setting(doc="", factory=UpstreamConfig)
    accounts: list[SipAccount] = setting(doc="", factory=list)

    def problems(self) -> list[tuple[str, str]]:
        """TLS needs its own port; the timers keep T1 <= T2 (RFC 3261 §17.1.2.2)."""
        out = []
        if self.tls_port and self.tls_port in {self.udp_port, self.tcp_port} - {0}:
            out.append(("tls_port", f"expected a port other than {self.tls_port}, used by UDP/TCP"))
        if self.t1 > self.t2:
            out.append(("t1", "expected t1 <= t2"))
        if bool(self.tls_certificate) != bool(self.tls_private_key):
            key = "tls_private_key" if self.tls_certificate else "tls_certificate"
            out.append((key, "expected tls_certificate and tls_private_key to be set together"))
        return out


@dataclass(frozen=True)
class TurnServer:
    """[[webrtc.turn_servers]]: a TURN relay for browsers on routed networks (RFC 8656)."""

    url: str = setting(doc="turn: or turns: URL.", check=ice_server_url)
    username: str = setting("", "TURN user name.")
    credential: str = setting("", "TURN password.")


@dataclass(frozen=True)
class WebRtcConfig:
    """[webrtc]: the browser leg of each call (ICE, DTLS-SRTP, SCTP data channels)."""

    ice_addresses: list[str] = setting(
        doc="Addresses offered to browsers as ICE host candidates. Empty: every non-loopback "
        "address of the box. Loopback addresses are used only when listed here.",
        factory=list,
        check=each(ip_address),
    )
    ice_interfaces: list[str] = setting(
        doc="Interfaces whose addresses are offered as host candidates. Empty: all.",
        factory=list,
        check=each(interface_name),
    )
    stun_servers: list[str] = setting(
        doc="STUN servers, such as stun:192.0.2.1:3478 (RFC 7064).",
        factory=list,
        check=each(ice_server_url),
    )
    turn_servers: list[TurnServer] = setting(doc="", factory=list)
    ice_timeout: int = setting(
        15, "A lost ICE connection ends the call after this long.", minimum=3, maximum=120, unit="s"
    )


@dataclass(frozen=True)
class MediaConfig:
    """[media]: the SIP side of audio and text (RTP, SRTP)."""

    rtp_port_min: int = setting(
        20000, "Lowest RTP port toward phones.", minimum=1024, maximum=65534
    )
    rtp_port_max: int = setting(
        30000, "Highest RTP port toward phones.", minimum=1025, maximum=65535
    )
    rtp_timeout: int = setting(
        30,
        "No RTP from a phone for this long ends an audio call; 0 never.",
        minimum=0,
        maximum=3600,
        unit="s",
    )
    srtp: Literal["offer", "require", "off"] = setting(
        "offer",
        "SDES-SRTP toward phones (RFC 4568): offer it and accept plain RTP, require it, or off.",
    )
    codecs: list[Literal["opus", "G722", "PCMU", "PCMA", "telephone-event"]] = setting(
        doc="Audio codecs bridged, in order of preference. The box relays, never transcodes.",
        factory=lambda: ["opus", "G722", "PCMU", "PCMA", "telephone-event"],
    )

    def problems(self) -> list[tuple[str, str]]:
        """RTP uses even ports with RTCP on the next odd one (RFC 3550 §11)."""
        if self.rtp_port_max - self.rtp_port_min < 3:
            return [("rtp_port_max", "expected rtp_port_max to be at least rtp_port_min + 3")]
        return []


@dataclass(frozen=True)
class RttConfig:
    """[rtt]: real-time text (RFC 4103 with RFC 2198 redundancy; RFC 8865 data channels)."""

    buffer_time: int = setting(
        300,
        "T.140 buffering interval on the RTP side (RFC 4103 §5.1: 300 ms, at most 500 ms).",
        minimum=100,
        maximum=500,
        unit="ms",
    )
    redundancy: int = setting(
        2,
        "Redundant generations sent with each text packet (RFC 4103 §4.2).",
        minimum=0,
        maximum=3,
    )
    cps: int = setting(
        30,
        "Characters per second the box accepts, announced with a=fmtp cps (RFC 4103 §6).",
        minimum=1,
        maximum=1000,
    )
    keepalive_interval: int = setting(
        10,
        "While idle, a BOM is sent this often to keep NAT and timers alive; 0 never.",
        minimum=0,
        maximum=300,
        unit="s",
    )
    transcripts: bool = setting(
        True, "Keep each call's text (both directions, with loss marks) in the state directory."
    )


@dataclass(frozen=True)
class MsrpConfig:
    """[msrp]: session-mode chat (RFC 4975 over TCP; RFC 8873 over data channels)."""

    port: int = setting(
        2855, "TCP port for MSRP toward phones; 0 disables chat.", minimum=0, maximum=65535
    )
    max_message_size: int = setting(
        1048576,
        "Largest chat message accepted (announced as a=max-size, RFC 4975 §8.6).",
        minimum=1024,
        maximum=67108864,
        unit="bytes",
    )


@dataclass(frozen=True)
class InterfaceConfig:
    """[[network.interfaces]]: desired state of one interface."""

    name: str = setting(doc="Interface name, such as eth0.", check=interface_name)
    enabled: bool = setting(
        True,
        "Administrative state (link up). A link that is down keeps its IPv4 addresses only.",
    )
    dhcp: bool = setting(
        False, "Get an IPv4 address, default route and DNS servers by DHCP (RFC 2131)."
    )
    addresses: list[str] = setting(
        doc="Static addresses with prefix, such as 192.0.2.10/24. The first address of each "
        "IPv4 subnet is the primary one (the source address the kernel prefers).",
        factory=list,
        check=each(ip_interface),
    )
    mtu: int = setting(0, "MTU; 0 leaves the current value.", minimum=0, maximum=65535)
    vlan_id: int = setting(
        0,
        "802.1Q VLAN id; non-zero makes this a VLAN sub-interface of `parent`.",
        minimum=0,
        maximum=4094,
    )
    parent: str = setting("", "Parent interface of a VLAN.", check=optional(interface_name))

    def problems(self) -> list[tuple[str, str]]:
        """A VLAN needs its parent; MTU below 68 is invalid for IPv4 (RFC 791)."""
        out = []
        if self.name == "lo":
            out.append(("name", "expected an interface other than lo (loopback is never managed)"))
        if self.vlan_id and not self.parent:
            out.append(("parent", "expected a parent interface when vlan_id is set"))
        if self.parent and not self.vlan_id:
            out.append(("vlan_id", "expected a VLAN id when parent is set"))
        if self.parent and self.parent == self.name:
            out.append(("parent", "expected a parent other than the interface itself"))
        if 0 < self.mtu < 68:
            out.append(("mtu", f"expected 0 or at least 68, found {self.mtu}"))
        if self.dhcp and not self.enabled:
            out.append(("dhcp", "expected enabled = true when dhcp = true"))
        return out


@dataclass(frozen=True)
class RouteConfig:
    """[[network.routes]]: a static route."""

    destination: str = setting(doc='Network, or "default".', check=ip_network_or_default)
    gateway: str = setting(doc="Next-hop address.", check=ip_address)
    metric: int = setting(
        0,
        "Route metric (lower wins); an IPv6 route with 0 gets the kernel's 1024.",
        minimum=0,
        maximum=4294967295,
    )


@dataclass(frozen=True)
class NetworkConfig:
    """[network]: the box's own network, managed over netlink."""

    manage: bool = setting(
        False, "Apply this section to the box's interfaces. False: leave the network to the OS."
    )
    dns_servers: list[str] = setting(
        doc="DNS servers written for the system resolver, before those learnt by DHCP.",
        factory=list,
        check=each(ip_address),
    )
    helper_socket: str = setting(
        "/run/appliance-net/net.sock",
        "AF_UNIX socket of the network helper (appliance-net.service): `appliance net` and "
        "the service's link monitor reach it there.",
        check=absolute_path,
    )
    interfaces: list[InterfaceConfig] = setting(doc="", factory=list)
    routes: list[RouteConfig] = setting(doc="", factory=list)

    def problems(self) -> list[tuple[str, str]]:
        """Interfaces are named once; a gateway lies in a configured subnet or a DHCP link."""
        out: list[tuple[str, str]] = []
        names: set[str] = set()
        hosts: set[str] = set()
        for index, iface in enumerate(self.interfaces):
            if iface.name in names:
                out.append(
                    (
                        f"interfaces.{index}.name",
                        f"expected each interface once, found {iface.name!r} again",
                    )
                )
            names.add(iface.name)
            for address in iface.addresses:
                host = address.split("/")[0]
                if host in hosts:
                    out.append(
                        (
                            f"interfaces.{index}.addresses",
                            f"expected each address once, found {host} again",
                        )
                    )
                hosts.add(host)
        subnets = [ipaddress.ip_interface(a).network for i in self.interfaces for a in i.addresses]
        enabled = [
            ipaddress.ip_interface(a).network
            for i in self.interfaces
            if i.enabled
            for a in i.addresses
        ]
        has_dhcp = any(i.dhcp for i in self.interfaces)
        seen: set[tuple[str, int]] = set()
        for index, route in enumerate(self.routes):
            gateway = ipaddress.ip_address(route.gateway)
            if route.destination != "default":
                family = ipaddress.ip_network(route.destination).version
                if gateway.version != family:
                    out.append(
                        (
                            f"routes.{index}.gateway",
                            f"expected an IPv{family} gateway for {route.destination}, "
                            f"found {gateway}",
                        )
                    )
                    continue
            if not has_dhcp and not any(gateway in net for net in subnets):
                out.append(
                    (
                        f"routes.{index}.gateway",
                        f"expected a gateway inside a configured subnet, found {gateway}",
                    )
                )
            elif not has_dhcp and not any(gateway in net for net in enabled):
                out.append(
                    (
                        f"routes.{index}.gateway",
                        f"expected a gateway inside the subnet of an enabled interface, "
                        f"found {gateway} (the kernel drops routes through a link that is down)",
                    )
                )
            if route.destination == "default":
                destination = "0.0.0.0/0" if gateway.version == 4 else "::/0"
            else:
                destination = str(ipaddress.ip_network(route.destination))
            metric = route.metric or (1024 if ":" in destination else 0)
            if (destination, metric) in seen:
                out.append(
                    (
                        f"routes.{index}.destination",
                        f"expected each destination and metric once, found {route.destination} "
                        f"metric {route.metric} again",
                    )
                )
            seen.add((destination, metric))
        return out


@dataclass(frozen=True)
class SerialDevice:
    """[[serial.devices]]: a text terminal or TTY device that can join calls as a text party."""

    name: str = setting(doc='Name shown to call-takers, such as "TTY desk 1".')
    path: str = setting(doc="Device path.", check=serial_path)
    mode: Literal["ascii", "baudot"] = setting(
        "ascii", "Character code: ascii, or US Baudot (ITU-T V.18 Annex A, 5-bit)."
    )
    baudrate: int = setting(
        9600, "Line speed; US Baudot TTYs use 45 or 50.", minimum=45, maximum=921600
    )


@dataclass(frozen=True)
class SerialConfig:
    """[serial]: serial text terminals and TTY devices."""

    devices: list[SerialDevice] = setting(doc="", factory=list)

    def problems(self) -> list[tuple[str, str]]:
        """A device path is used once."""
        out: list[tuple[str, str]] = []
        seen: set[str] = set()
        for index, device in enumerate(self.devices):
            if device.path in seen:
                out.append(
                    (
                        f"devices.{index}.path",
                        f"expected each device path once, found {device.path!r} again",
                    )
                )
            seen.add(device.path)
        return out


@dataclass(frozen=True)
class Operator:
    """[[operators]]: a call-taker who logs in to the page."""

    name: str = setting(doc="Login name.", check=sip_user)
    password_hash: str = setting(
        doc="Password hash from `appliance hash-password`.", check=scrypt_hash
    )
    sip_user: str = setting(
        "",
        "SIP user of this operator (sip:USER@domain). Empty: the login name.",
        check=optional(sip_user),
    )
    display_name: str = setting("", "Name shown to callers and in the page.")


@dataclass(frozen=True)
class Config:
    """The whole configuration file."""

    service: ServiceConfig = setting(doc="", factory=ServiceConfig)
    web: WebConfig = setting(doc="", factory=WebConfig)
    sip: SipConfig = setting(doc="", factory=SipConfig)
    webrtc: WebRtcConfig = setting(doc="", factory=WebRtcConfig)
    media: MediaConfig = setting(doc="", factory=MediaConfig)
    rtt: RttConfig = setting(doc="", factory=RttConfig)
    msrp: MsrpConfig = setting(doc="", factory=MsrpConfig)
    network: NetworkConfig = setting(doc="", factory=NetworkConfig)
    serial: SerialConfig = setting(doc="", factory=SerialConfig)
    operators: list[Operator] = setting(doc="", factory=list)

    def problems(self) -> list[tuple[str, str]]:
        """Listening TCP ports must not collide; operator names are unique."""
        out: list[tuple[str, str]] = []
        tcp = {
            "web.port": self.web.port,
            "sip.tcp_port": self.sip.tcp_port,
            "sip.tls_port": self.sip.tls_port,
            "msrp.port": self.msrp.port,
        }
        owners: dict[int, str] = {}
        for key, port in tcp.items():
            if port == 0:
                continue
            if port in owners:
                other = owners[port]
                out.append(
                    (
                        f"{other}|{key}",
                        f"expected different TCP ports for {other} and "
                        f"{key}, found {port} for both",
                    )
                )
            owners.setdefault(port, key)
        seen: set[str] = set()
        for index, operator in enumerate(self.operators):
            if operator.name in seen:
                out.append(
                    (
                        f"operators.{index}.name",
                        f"expected each operator name once, found {operator.name!r} again",
                    )
                )
            seen.add(operator.name)
        return out
