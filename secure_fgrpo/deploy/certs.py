"""TLS for the SuperLink: a private CA and one server certificate, made with ``cryptography``.

Flower's TLS is server-authenticated: every SuperNode and the ``flwr`` CLI trust ``ca.crt`` and
check the SuperLink's certificate against the host name or IP they dial. Institutions are
authenticated separately, by their SuperNode keys (node_keys.py). Private keys are written 0600
in a 0700 folder (fileio.write_private); certificates are public.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..fileio import write_private

log = logging.getLogger(__name__)

CA_CERT, CA_KEY = "ca.crt", "ca.key"
SERVER_CERT, SERVER_KEY = "server.pem", "server.key"


@dataclass(frozen=True)
class CertPaths:
    """What ``make_certs`` wrote: the SuperLink needs all three ``server`` paths and the CA
    certificate; SuperNodes and ``flwr`` need only ``ca_cert``."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _names(hosts: list[str]) -> list[x509.GeneralName]:
    """Each host as an IP address SAN when it parses as one, else as a DNS name."""
    out: list[x509.GeneralName] = []
    for host in hosts:
        host = host.strip()
        if not host:
            raise ValueError("deploy certs: an empty host name was given")
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            out.append(x509.DNSName(host))
    return out


def _builder(subject: x509.Name, issuer: x509.Name, public: ec.EllipticCurvePublicKey,
             days: int) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days)))


def make_certs(out: Path, hosts: list[str], days: int = 365) -> CertPaths:
    """Write a CA and a SuperLink certificate valid for ``hosts``; refuse to overwrite.

    Overwriting would silently invalidate every SuperNode's trust anchor, so an existing file
    stops the command, naming it.
    """
    if not hosts:
        raise ValueError("deploy certs: give at least one --host (the SuperLink's name or IP)")
    if days < 1:
        raise ValueError(f"deploy certs: --days must be >= 1, got {days}")
    out = Path(out)
    paths = CertPaths(out / CA_CERT, out / CA_KEY, out / SERVER_CERT, out / SERVER_KEY)
    for p in (paths.ca_cert, paths.ca_key, paths.server_cert, paths.server_key):
        if p.exists():
            raise ValueError(f"deploy certs: {p} already exists; choose another --out or remove it yourself")
    sans = _names(hosts)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "secure_fgrpo federation CA")])
    ca = (_builder(ca_name, ca_name, ca_key.public_key(), days)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA384()))
    server_key = ec.generate_private_key(ec.SECP384R1())
    server_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0].strip())])
    server = (_builder(server_name, ca_name, server_key.public_key(), days)
              .add_extension(x509.SubjectAlternativeName(sans), critical=False)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
              .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                             critical=False)
              .sign(ca_key, hashes.SHA384()))
    write_private(paths.ca_key, _pem_key(ca_key))
    write_private(paths.server_key, _pem_key(server_key))
    paths.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths.server_cert.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    log.info("wrote a CA and a SuperLink certificate for %s under %s", ", ".join(hosts), out)
    return paths
