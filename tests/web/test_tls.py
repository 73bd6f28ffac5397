"""The web certificate: configured, or self-signed and renewed when unusable."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from appliance.web.tls import TlsFiles, ensure_certificate, fingerprint, server_context


def test_self_signed_is_made_private_and_reused(tmp_path: Path) -> None:
    files = ensure_certificate("", "", tmp_path, "box 1")
    assert files.certificate == tmp_path / "tls" / "web.crt"
    assert files.private_key.stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate(files.certificate.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert {str(a) for a in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "box 1"
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    first = fingerprint(files.certificate)
    assert ensure_certificate("", "", tmp_path, "box 1") == files
    assert fingerprint(files.certificate) == first
    server_context(files)  # loads as a TLS server identity


def _write_expired(files: TlsFiles) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=400))
        .not_valid_after(now + datetime.timedelta(days=10))  # inside the renewal window
        .sign(key, hashes.SHA256())
    )
    files.certificate.parent.mkdir(parents=True, exist_ok=True)
    files.certificate.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.private_key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def test_expiring_certificate_is_renewed(tmp_path: Path) -> None:
    files = TlsFiles(tmp_path / "tls" / "web.crt", tmp_path / "tls" / "web.key")
    _write_expired(files)
    old = fingerprint(files.certificate)
    ensure_certificate("", "", tmp_path, "box")
    assert fingerprint(files.certificate) != old


def test_mismatched_or_broken_files_are_replaced(tmp_path: Path) -> None:
    files = ensure_certificate("", "", tmp_path, "box")
    other = tmp_path / "other"
    other_files = ensure_certificate("", "", other, "box")
    files.private_key.write_bytes(other_files.private_key.read_bytes())
    old = fingerprint(files.certificate)
    ensure_certificate("", "", tmp_path, "box")
    assert fingerprint(files.certificate) != old
    files.certificate.write_text("garbage")
    ensure_certificate("", "", tmp_path, "box")
    fingerprint(files.certificate)
    ssl.create_default_context(cafile=str(files.certificate))


def test_configured_files_are_used_as_they_are(tmp_path: Path) -> None:
    made = ensure_certificate("", "", tmp_path / "a", "box")
    files = ensure_certificate(str(made.certificate), str(made.private_key), tmp_path / "b", "x")
    assert files == made
    assert not (tmp_path / "b").exists()
