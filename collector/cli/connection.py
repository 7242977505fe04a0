"""How `ferry` reaches the collector: TLS and a token, from flags or the environment.

    --tls-ca FILE          FERRY_TLS_CA            trust the collector's certificate (turns TLS on)
    --tls-cert/--tls-key   FERRY_TLS_CERT/_KEY     client certificate for mTLS
    --tls-server-name N    FERRY_TLS_SERVER_NAME   the name its certificate carries (an IP address)
    --token-file FILE      FERRY_TOKEN_FILE        the bearer token, or FERRY_TOKEN itself
Flags win over the environment.
"""

from __future__ import annotations

import argparse
import os

from ferry import transport
from ferry.collector.cli import UsageError

ENV = {
    "tls_ca": "FERRY_TLS_CA",
    "tls_cert": "FERRY_TLS_CERT",
    "tls_key": "FERRY_TLS_KEY",
    "tls_server_name": "FERRY_TLS_SERVER_NAME",
    "token_file": "FERRY_TOKEN_FILE",
}


def add_arguments(sp: argparse.ArgumentParser) -> None:
    helps = {
        "tls_ca": "CA to trust for the collector's certificate; turns TLS on",
        "tls_cert": "client certificate (mTLS)",
        "tls_key": "its private key",
        "tls_server_name": "name the collector's certificate must carry (default: --addr's host)",
        "token_file": "file holding the bearer token (else env FERRY_TOKEN)",
    }
    for key, env in ENV.items():
        sp.add_argument(
            "--" + key.replace("_", "-"),
            dest=key,
            default=None,
            metavar="NAME" if key == "tls_server_name" else "FILE",
            help=f"{helps[key]} (env {env})",
        )


def _value(args: argparse.Namespace, key: str) -> str:
    given = getattr(args, key, None)
    return given if given is not None else os.environ.get(ENV[key], "")


def endpoint(args: argparse.Namespace, **limits) -> transport.Endpoint:
    """The collector's Endpoint from --addr and the TLS/token flags (or their environment)."""
    ca, cert, key, name = (_value(args, k) for k in ("tls_ca", "tls_cert", "tls_key", "tls_server_name"))
    token_file = _value(args, "token_file")
    try:
        tls = transport.ClientTLS.from_files(ca, cert, key, name) if (ca or cert) else None
        if token_file:
            token = transport.read_token(token_file)
        else:
            token = os.environ.get("FERRY_TOKEN", "").strip()
            if token:
                transport.check_token(token, "FERRY_TOKEN")
    except transport.CredentialsError as exc:
        raise UsageError(str(exc)) from None
    if token and tls is None:
        raise UsageError("a token needs TLS (--tls-ca or FERRY_TLS_CA): it must not travel in plaintext")
    return transport.Endpoint(args.addr, tls=tls, token=token, **limits)
