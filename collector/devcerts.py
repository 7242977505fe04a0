"""A development certificate authority: the CA, server and client certificates `make run` and
the tests use (with `cryptography`). Not for production: keys are written unencrypted (mode 0600)
and the CA's own key is never written (a new CA is made to issue more); docs/security.md says
how to use openssl or a company CA instead.

    ca = DevCA.create("ferry dev CA")
    ca.write_ca(dir / "ca.pem")
    ca.issue("collector", ["localhost", "127.0.0.1"]).write(dir / "collector")  # .pem + .key
    ca.issue("web-1", client=True).write(dir / "web-1")
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_DAY = dt.timedelta(days=1)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _names(sans: Sequence[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in sans:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


@dataclass(frozen=True)
class Issued:
    """A certificate and its key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def write(self, stem: Path) -> tuple[Path, Path]:
        """`stem`.pem and `stem`.key (the key readable by its owner only)."""
        from ferry.collector.auth.tokens import write_private

        cert, key = stem.with_suffix(".pem"), stem.with_suffix(".key")
        cert.write_bytes(self.cert_pem)
        write_private(key, self.key_pem)
        return cert, key


@dataclass(frozen=True)
class DevCA(Issued):
    """A self-signed CA that issues server and client certificates."""

    @classmethod
    def create(cls, name: str = "ferry dev CA", days: int = 365) -> DevCA:
        key = _key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY)
            .not_valid_after(now + days * _DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    def issue(
        self,
        common_name: str,
        sans: Sequence[str] = (),
        *,
        client: bool = False,
        days: float = 90,
        starts_days_ago: float = 1,
    ) -> Issued:
        """A leaf certificate for a server (`sans`: DNS names and IPs it answers on) or a client
        (`client=True`: CN and `sans` name it). `starts_days_ago` > `days` makes an expired one."""
        key = _key()
        now = _now()
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - starts_days_ago * _DAY)
            .not_valid_after(now - starts_days_ago * _DAY + days * _DAY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        names = _names(sans or [common_name])
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return Issued(builder.sign(self.key, hashes.SHA256()), key)

    def write_ca(self, path: Path) -> Path:
        path.write_bytes(self.cert_pem)
        return path
