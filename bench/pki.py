"""Certificates, tokens and an auth file for the benchmarks of the secure path (`bench.fleet
--secure`, bench.security), made in a folder of the run's with ferry.collector.devcerts as
`make run` makes its own.

The fleet's streams present one client certificate (mTLS) and the token of one of `principals`
ingest principals, chosen by the last digits of the simulated agent's index (principal p may
write as `fleet-*{p}`: the agent ids bench.fleet gives, `fleet-{tag}-{index:05d}`). Each
principal has rate limits far above what the bench sends, so every frame goes through the
token-bucket check without ever being refused. A `query` principal reads the store back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ferry.collector.auth.principals import token_hash
from ferry.collector.auth.tokens import new_token
from ferry.collector.devcerts import DevCA
from ferry.transport import ClientTLS, Endpoint

# limits no bench reaches (a 2-core machine acks ~10^4 frames/s of 300 points in all)
POINTS_PER_S = 1e9
FRAMES_PER_S = 1e7


@dataclass(frozen=True)
class BenchSecrets:
    dir: Path
    ingest_tokens: tuple[str, ...]  # token i: principal fleet-p{i}, agent ids ending in i
    query_token: str

    def p(self, name: str) -> str:
        return str(self.dir / name)

    def collector_flags(self, mtls: bool = True, auth: bool = True) -> list[str]:
        """TLS, with client certificates required (`mtls`) and the auth file (`auth`)."""
        flags = ["--tls-cert", self.p("collector.pem"), "--tls-key", self.p("collector.key")]
        if mtls:
            flags += ["--tls-client-ca", self.p("ca.pem")]
        if auth:
            flags += ["--auth", self.p("auth.toml")]
        return flags

    def client_tls(self, cert: bool = True) -> ClientTLS:
        """The CA to trust, with the fleet's client certificate unless `cert` is False."""
        if not cert:
            return ClientTLS.from_files(self.p("ca.pem"))
        return ClientTLS.from_files(self.p("ca.pem"), self.p("client.pem"), self.p("client.key"))

    def token_for(self, index: int) -> str:
        """The token of the principal that may write as simulated agent `index`."""
        return self.ingest_tokens[index % len(self.ingest_tokens)]

    def query_endpoint(self, addr: str) -> Endpoint:
        return Endpoint(addr, tls=self.client_tls(), token=self.query_token)


def make(d: Path, principals: int = 10) -> BenchSecrets:
    """`principals`: 1, 10, 100 ... (each takes the agent ids ending in its number's digits)."""
    digits = round(math.log10(principals))
    if principals < 1 or 10**digits != principals:
        raise ValueError(f"principals {principals}: a power of 10 (1, 10, 100, ...) is needed")
    d.mkdir(parents=True, exist_ok=True)
    ca = DevCA.create("ferry bench CA")
    ca.write_ca(d / "ca.pem")
    ca.issue("ferry-collector", ["127.0.0.1", "localhost"]).write(d / "collector")
    ca.issue("fleet-agents", client=True).write(d / "client")
    secrets = BenchSecrets(d, tuple(new_token() for _ in range(principals)), new_token())
    tables = []
    for i, token in enumerate(secrets.ingest_tokens):
        suffix = f"{i:0{digits}d}" if digits else ""
        tables.append(
            f'[[principals]]\nname = "fleet-p{i}"\ntoken_sha256 = "{token_hash(token).hex()}"\n'
            f'roles = ["ingest"]\nagent_ids = ["fleet-*{suffix}"]\nhosts = ["*"]\n'
            f"points_per_second = {POINTS_PER_S:.0f}\nframes_per_second = {FRAMES_PER_S:.0f}\n"
        )
    tables.append(
        f'[[principals]]\nname = "bench-reader"\ntoken_sha256 = "{token_hash(secrets.query_token).hex()}"\n'
        'roles = ["query"]\n'
    )
    (d / "auth.toml").write_text("\n".join(tables))
    return secrets
