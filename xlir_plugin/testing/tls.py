"""A certificate authority and an HTTPS certificate for a local node, made with `cryptography`.

The integ-test distribution has no `elasticsearch-certutil`, so the project makes its own:
a self-signed CA (`ca.crt`, the bundle clients verify with: `--es-ca-certs`) and a node
certificate for 127.0.0.1 / localhost signed by it. `cryptography` comes with the `[dev]`
extra; the serving install does not need it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from ..errors import XlirError

CA_FILE = "ca.crt"


def _require_cryptography():
    try:
        from cryptography import x509  # noqa: F401
    except ImportError:
        raise XlirError(
            "a TLS node needs the `cryptography` package: pip install cryptography "
            "(it comes with the [dev] extra)"
        ) from None


def _key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_certs(
    directory: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"), days: int = 30
) -> dict[str, Path]:
    """Write ca.crt, node.crt, node.key (PEM) into `directory`; return their paths."""
    _require_cryptography()
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    ca_key, node_key = _key(), _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "xlir local CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    node = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(node_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        "ca": directory / CA_FILE,
        "cert": directory / "node.crt",
        "key": directory / "node.key",
    }
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(node.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(_pem_key(node_key))
    paths["key"].chmod(0o600)
    return paths


def write_node_certs(config_dir: Path) -> tuple[str, dict[str, str | None]]:
    """Certificates in the node's config dir: (the CA bundle's path, the HTTPS settings)."""
    paths = make_certs(config_dir / "xlir-tls")
    settings: dict[str, str | None] = {
        "xpack.security.http.ssl.enabled": "true",
        "xpack.security.http.ssl.certificate": str(paths["cert"]),
        "xpack.security.http.ssl.key": str(paths["key"]),
        "xpack.security.http.ssl.certificate_authorities": str(paths["ca"]),
    }
    return str(paths["ca"]), settings
