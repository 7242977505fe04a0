"""How the agent proves itself to the collector and checks it: TLS files and a bearer token.

Read when the agent starts (a file that cannot be used stops it, exit 2) and again on every
SIGHUP, whether or not the keys changed (certificates are rotated in place): the stream open
keeps going, and the next connection uses the new files. A reload that cannot read them keeps
the ones in use and says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ferry import transport
from ferry.runtime.config import ConfigError, setting


@dataclass
class CredentialsConfig:
    """TLS and the token for the collector."""

    tls_ca: str = setting(
        "", "str", "trust collectors whose certificate chains to this CA (PEM); turns TLS on", metavar="FILE"
    )
    tls_cert: str = setting("", "str", "client certificate for mTLS (PEM; with tls_key)", metavar="FILE")
    tls_key: str = setting("", "str", "the private key of tls_cert (PEM)", metavar="FILE")
    tls_server_name: str = setting(
        "", "str", "the name the collector's certificate must carry (default: the address's host)"
    )
    token_file: str = setting(
        "", "str", "file holding the bearer token sent to the collector (TLS only)", metavar="FILE"
    )

    def check(self) -> None:
        tls_on = self.tls_ca or self.tls_cert
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("tls_cert and tls_key go together: give both or neither")
        if self.token_file and not tls_on:
            raise ConfigError("token_file needs TLS (tls_ca): the token must not travel in plaintext")
        if self.tls_server_name and not tls_on:
            raise ConfigError("tls_server_name needs TLS (tls_ca)")


@dataclass(frozen=True)
class Credentials:
    tls: transport.ClientTLS | None = None
    token: str = field(default="", repr=False)


def load(cfg: CredentialsConfig) -> Credentials:
    """The files read and checked; raises ConfigError naming the one that cannot be used."""
    if not (cfg.tls_ca or cfg.tls_cert):
        return Credentials()
    try:
        tls = transport.ClientTLS.from_files(cfg.tls_ca, cfg.tls_cert, cfg.tls_key, cfg.tls_server_name)
        token = transport.read_token(cfg.token_file) if cfg.token_file else ""
    except transport.CredentialsError as exc:
        raise ConfigError(str(exc)) from None
    return Credentials(tls, token)
