"""The collector's TLS and auth as configured: read at start (a bad file stops it, exit 2) and
again on SIGHUP (a bad file keeps the old one and says why; established streams keep going)."""

from __future__ import annotations

import logging

from ferry import transport
from ferry.collector.auth.audit import Audit
from ferry.collector.auth.gate import Gate
from ferry.collector.auth.principals import Principals
from ferry.collector.config import CollectorConfig, is_loopback
from ferry.runtime.config import ConfigError

log = logging.getLogger("ferry.collector.auth")


def _server_tls(cfg: CollectorConfig) -> transport.ServerTLS:
    try:
        return transport.ServerTLS.from_files(cfg.tls_cert, cfg.tls_key, cfg.tls_client_ca)
    except transport.CredentialsError as exc:
        raise ConfigError(str(exc)) from None


class Security:
    """The port's TLS credentials (None: plaintext) and the gate calls pass."""

    def __init__(self, cfg: CollectorConfig, credentials: transport.ServerCredentials | None, gate: Gate):
        self.cfg = cfg
        self.credentials = credentials
        self.gate = gate

    @classmethod
    def load(cls, cfg: CollectorConfig) -> Security:
        """Raises ConfigError naming the file that cannot be used."""
        credentials = transport.ServerCredentials(_server_tls(cfg)) if cfg.tls_cert else None
        principals = Principals.load(cfg.auth) if cfg.auth else None
        return cls(cfg, credentials, Gate(principals, Audit()))

    def describe(self) -> str:
        tls = "off" if self.credentials is None else ("mTLS" if self.cfg.tls_client_ca else "TLS")
        auth = f"{len(self.gate.principals.all)} principals" if self.gate.principals else "off"
        return f"tls {tls}, auth {auth}"

    def warn_if_open(self) -> None:
        if not is_loopback(self.cfg.listen) and not (self.cfg.tls_cert and self.cfg.auth):
            log.warning(
                "--insecure: serving %s with tls %s and auth %s; anyone who reaches it can write as "
                "any agent and read everything",
                self.cfg.listen,
                "on" if self.cfg.tls_cert else "off",
                "on" if self.cfg.auth else "off",
            )

    def reload(self) -> None:
        """Read the certificate, key and auth file again; each that fails keeps its old one."""
        audit = self.gate.audit
        if self.credentials is not None:
            try:
                self.credentials.reload(_server_tls(self.cfg))
            except (ConfigError, transport.CredentialsError) as exc:
                log.error("TLS not reloaded, the old certificate stays: %s", exc)
                audit.record("tls_reload_failed", level=logging.ERROR, message=str(exc))
            else:
                log.info("TLS reloaded: new handshakes use %s", self.cfg.tls_cert)
                audit.record("tls_reloaded", level=logging.INFO, cert=self.cfg.tls_cert)
        if self.cfg.auth:
            try:
                principals = Principals.load(self.cfg.auth)
            except ConfigError as exc:
                log.error("auth file not reloaded, the old principals stay: %s", exc)
                audit.record("auth_reload_failed", level=logging.ERROR, message=str(exc))
            else:
                self.gate.replace(principals)
                log.info("auth file reloaded: %d principals", len(principals.all))
                audit.record(
                    "auth_reloaded", level=logging.INFO, file=self.cfg.auth, principals=len(principals.all)
                )
