"""A throwaway PKI for TLS tests, made with ``cryptography``: a CA, a server certificate for
127.0.0.1/localhost, client certificates, and a second CA nobody trusts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_Key = ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Pair:
    """A certificate and its key, as PEM files."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    """The files of the test PKI."""

    ca: Path
    """The CA certificate the server's certificate chains to (clients trust it)."""
    server: Pair
    """Server certificate for 127.0.0.1, ::1 and localhost, signed by ``ca``."""
    client: Pair
    """Client certificate signed by ``ca``."""
    other_ca: Path
    """A CA that signed nothing the server uses."""
    other_server: Pair
    """Server certificate signed by ``other_ca``."""
    other_client: Pair
    """Client certificate signed by ``other_ca``."""


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(path: Path, cert: x509.Certificate, key: _Key | None = None) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.with_suffix(".key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
    return path


def _ca(common_name: str) -> tuple[x509.Certificate, _Key]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(common_name))
            .issuer_name(_name(common_name)).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def _leaf(ca: tuple[x509.Certificate, _Key], common_name: str, *,
          server: bool) -> tuple[x509.Certificate, _Key]:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(common_name))
               .issuer_name(ca_cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(minutes=5))
               .not_valid_after(now + timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca_key.public_key()), critical=False)
               .add_extension(x509.ExtendedKeyUsage(
                   [ExtendedKeyUsageOID.SERVER_AUTH if server
                    else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(IPv4Address("127.0.0.1")),
            x509.IPAddress(IPv6Address("::1"))]), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def make_pki(folder: Path) -> Pki:
    """Write the test PKI into ``folder`` (keys beside their certificates, ``.key``)."""
    folder.mkdir(parents=True, exist_ok=True)

    def pair(name: str, ca: tuple[x509.Certificate, _Key], server: bool) -> Pair:
        cert, key = _leaf(ca, name, server=server)
        path = _write(folder / f"{name}.pem", cert, key)
        return Pair(path, path.with_suffix(".key"))

    ca, other = _ca("MentatLab test CA"), _ca("Someone else's CA")
    return Pki(ca=_write(folder / "ca.pem", ca[0]),
               server=pair("server", ca, True), client=pair("client", ca, False),
               other_ca=_write(folder / "other-ca.pem", other[0]),
               other_server=pair("other-server", other, True),
               other_client=pair("other-client", other, False))
