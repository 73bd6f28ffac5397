"""SDES-SRTP toward phones: ``a=crypto`` (RFC 4568) and SRTP contexts (RFC 3711, pylibsrtp).

Each side sends with its own key and receives with the key the other side declared
(RFC 4568 §6.1). The answer takes the tag and suite of the first acceptable offered
line and carries a fresh key of ours (§7.1.3, §7.1.2).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass

import pylibsrtp

from appliance.media.srtp import protector, unprotector

SUITES = {
    "AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
    "AEAD_AES_128_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    "AEAD_AES_256_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
}
KEY_SALT_LENGTHS = {
    "AES_CM_128_HMAC_SHA1_80": 30,  # 128-bit master key + 112-bit salt (RFC 4568 §6.2.1)
    "AES_CM_128_HMAC_SHA1_32": 30,  # RFC 4568 §6.2.2
    "AEAD_AES_128_GCM": 28,  # 128-bit master key + 96-bit salt (RFC 7714 §12, §14.2)
    "AEAD_AES_256_GCM": 44,  # 256-bit master key + 96-bit salt (RFC 7714 §12, §14.2)
}
_CRYPTO = re.compile(r"^(\d{1,9})\s+(\S+)\s+(\S+)(?:\s+(.*))?$")


class SdesError(ValueError):
    """An ``a=crypto`` line that cannot be used."""


class SrtpError(ValueError):
    """A packet that failed SRTP authentication or replay checks (RFC 3711 §3.3)."""


@dataclass(frozen=True)
class CryptoAttribute:
    """``a=crypto:<tag> <suite> inline:<key||salt>[|lifetime][|MKI:len] [params]``."""

    tag: int
    suite: str
    key_salt: bytes
    lifetime: str = ""
    mki: str = ""
    session_params: str = ""

    @classmethod
    def parse(cls, value: str) -> CryptoAttribute:
        """Parse the value of an ``a=crypto`` line (RFC 4568 §9.1)."""
        match = _CRYPTO.match(value.strip())
        if match is None:
            raise SdesError(f"malformed a=crypto: {value[:60]!r}")
        tag, suite, params, session = match.groups()
        first = params.split(";")[0]  # several key-params: the first one is used
        if not first.startswith("inline:"):
            raise SdesError(f"a=crypto key method is not inline: {first[:20]!r}")
        fields = first[len("inline:") :].split("|")
        try:
            key_salt = base64.b64decode(fields[0] + "=" * (-len(fields[0]) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise SdesError("a=crypto key is not base64") from None
        lifetime = mki = ""
        for extra in fields[1:]:
            if ":" in extra:
                mki = extra
            else:
                lifetime = extra
        return cls(int(tag), suite, key_salt, lifetime, mki, session or "")

    def __str__(self) -> str:
        key = base64.b64encode(self.key_salt).decode().rstrip("=")
        extras = "".join(f"|{x}" for x in (self.lifetime, self.mki) if x)
        session = f" {self.session_params}" if self.session_params else ""
        return f"{self.tag} {self.suite} inline:{key}{extras}{session}"

    @property
    def usable(self) -> bool:
        """A suite we support, its whole key, no MKI and no session parameters (§6.3)."""
        return (
            self.suite in SUITES
            and len(self.key_salt) == KEY_SALT_LENGTHS[self.suite]
            and not self.mki
            and not self.session_params
        )


def new_crypto(tag: int, suite: str) -> CryptoAttribute:
    """Our own attribute with a fresh random master key and salt."""
    if suite not in SUITES:
        raise SdesError(f"unsupported crypto suite {suite}")
    return CryptoAttribute(tag, suite, os.urandom(KEY_SALT_LENGTHS[suite]))


def choose_answer(
    offered: list[CryptoAttribute],
) -> tuple[CryptoAttribute, CryptoAttribute] | None:
    """(their offered line, our answer line) for the first usable offer, or None (§7.1.2)."""
    for attribute in offered:
        if attribute.usable:
            return attribute, new_crypto(attribute.tag, attribute.suite)
    return None


class SrtpContext:
    """Protect what we send with our key; unprotect what we receive with theirs."""

    def __init__(self, ours: CryptoAttribute, theirs: CryptoAttribute) -> None:
        for attribute in (ours, theirs):
            if not attribute.usable:
                raise SdesError(f"unusable crypto attribute (suite {attribute.suite})")
        outbound = pylibsrtp.Policy(
            key=ours.key_salt,
            ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
            srtp_profile=SUITES[ours.suite],
        )
        outbound.allow_repeat_tx = True
        inbound = pylibsrtp.Policy(
            key=theirs.key_salt,
            ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
            srtp_profile=SUITES[theirs.suite],
        )
        self._tx = pylibsrtp.Session(outbound)
        self._rx = pylibsrtp.Session(inbound)
        self._protect = protector(self._tx)
        self._unprotect = unprotector(self._rx)

    def protect(self, packet: bytes) -> bytes:
        """SRTP-protect an RTP packet."""
        return self._protect(packet)

    def unprotect(self, packet: bytes) -> bytes:
        """Verify and decrypt an SRTP packet; SrtpError if it fails (one that is
        too long for libsrtp's buffer included)."""
        try:
            return self._unprotect(packet)
        except pylibsrtp.Error as exc:
            raise SrtpError(str(exc)) from None

    def protect_rtcp(self, packet: bytes) -> bytes:
        """SRTCP-protect a compound RTCP packet."""
        return bytes(self._tx.protect_rtcp(packet))

    def unprotect_rtcp(self, packet: bytes) -> bytes:
        """Verify and decrypt an SRTCP packet; SrtpError if it fails."""
        try:
            return bytes(self._rx.unprotect_rtcp(packet))
        except (pylibsrtp.Error, ValueError) as exc:  # ValueError: too long for its buffer
            raise SrtpError(str(exc)) from None
