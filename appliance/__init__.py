"""PSAP edge gateway: SIP phones on the LAN to WebRTC call-takers' consoles."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("appliance")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
