"""The web server's certificate: configured, or self-signed in the state directory.

The self-signed certificate uses ECDSA P-256 (fast to make on a Raspberry Pi, accepted
by every browser), names the host, ``HOST.local``, ``localhost`` and the loopback
addresses, and is made again when missing, unreadable, or within 30 days of expiry.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appliance.config.edit import atomic_write

log = logging.getLogger(__name__)

VALIDITY = datetime.timedelta(days=3650)
RENEW_BEFORE = datetime.timedelta(days=30)


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a certificate chain and its private key."""

    certificate: Path
    private_key: Path


def _usable(files: TlsFiles, now: datetime.datetime) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(files.certificate.read_bytes())
        key = serialization.load_pem_private_key(files.private_key.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return False
    if cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        return False
    return cert.not_valid_after_utc - RENEW_BEFORE > now


def make_self_signed(files: TlsFiles, common_name: str, hostnames: list[str]) -> None:
    """Write a new self-signed certificate and key (0600)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
    alt: list[x509.GeneralName] = [x509.DNSName(h) for h in dict.fromkeys(hostnames) if h]
    alt += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "::1")]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    files.private_key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(
        files.private_key,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        mode=0o600,
    )
    atomic_write(files.certificate, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)


def ensure_certificate(
    certificate: str, private_key: str, state_dir: Path, common_name: str
) -> TlsFiles:
    """The configured files, or a valid self-signed pair under ``state_dir/tls``."""
    if certificate:
        return TlsFiles(Path(certificate), Path(private_key))
    files = TlsFiles(state_dir / "tls" / "web.crt", state_dir / "tls" / "web.key")
    if not _usable(files, datetime.datetime.now(datetime.UTC)):
        host = socket.gethostname()
        make_self_signed(files, common_name, [host, f"{host}.local", "localhost"])
        log.info("made a self-signed certificate %s", files.certificate)
    return files


def fingerprint(path: Path) -> str:
    """The certificate's SHA-256 fingerprint, as browsers show it (AB:CD:...)."""
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """A server-side TLS context (TLS 1.2 or newer) with these files."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(files.certificate, files.private_key)
    return context
