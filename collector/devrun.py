"""`make run`: a collector and an agent on loopback with an embedded store under ./.ferry/.

The secure path, as a fleet would run it: a development CA, certificates and tokens under
./.ferry/tls/ (made once, `ferry.collector.devcerts`), the collector serving TLS with client
certificates required (mTLS) and an auth file, the agent presenting its certificate and token.
Starts both as child processes, waits until the collector answers its health check, prints the
commands to try (the `ferry` CLI finds the CA, its certificate and its token in the environment
variables printed first), and on Ctrl-C (or SIGTERM) stops the agent, then the collector.
"""

from __future__ import annotations

import argparse
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ferry import transport


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago, below the kernel's ephemeral range.

    Outside that range no outgoing connection is ever given the port, so an agent dialling it
    before anything listens cannot TCP self-connect and take it from the collector.
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(200):
        port = random.randrange(10_000, max(10_001, low))
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free TCP port below the ephemeral range")


def collector_command(addr: str, store_dir: Path, metrics: str, *extra: str) -> list[str]:
    """The command line of a collector on `addr` with an embedded store in `store_dir`."""
    return [
        sys.executable,
        "-m",
        "ferry.collector.main",
        "--listen",
        addr,
        "--store",
        f"chdb://{store_dir}",
        "--metrics-listen",
        metrics,
        *extra,
    ]


def agent_command(collector: str, metrics: str, *extra: str) -> list[str]:
    """The command line of an agent shipping to `collector`; its Local service and its OTLP
    receiver are off unless `extra` sets --local-listen / --local-socket / --otlp-listen (so
    agents side by side, as the tests and benches start them, never clash on a port)."""
    return [
        sys.executable,
        "-m",
        "ferry.agent.main",
        "--collector",
        collector,
        "--metrics-listen",
        metrics,
        "--local-listen",
        "",
        "--local-socket",
        "",
        "--otlp-listen",
        "",
        *extra,
    ]


_PROMPT_RECONNECT = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 200),
)


def wait_healthy(
    addr: str | transport.Endpoint, timeout_s: float = 60.0, proc: subprocess.Popen | None = None
) -> None:
    """Block until the gRPC health service at `addr` says SERVING; raise TimeoutError otherwise.

    The channel reconnects within 0.1-0.2 s of the port opening: with gRPC's default backoff
    (1 s, then 1.6 s, 2.56 s, ...) a process that started listening just after an attempt was
    seen up to ~1.6 s late."""
    deadline = time.monotonic() + timeout_s
    addr = transport.endpoint(addr)
    addr = replace(addr, options=(*addr.options, *_PROMPT_RECONNECT))
    with transport.channel(addr) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(
                    f"process exited with status {proc.returncode} before serving on {addr.address}"
                )
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.05)
    raise TimeoutError(f"nothing healthy on {addr.address} after {timeout_s}s")


@dataclass(frozen=True)
class DevSecrets:
    """The files of make run's secure path."""

    dir: Path

    def path(self, name: str) -> Path:
        return self.dir / name

    def collector_flags(self) -> list[str]:
        p = self.path
        return [
            *("--tls-cert", str(p("collector.pem")), "--tls-key", str(p("collector.key"))),
            *("--tls-client-ca", str(p("ca.pem")), "--auth", str(p("auth.toml"))),
        ]

    def client_flags(self, who: str) -> list[str]:
        p = self.path
        return [
            *("--tls-ca", str(p("ca.pem")), "--tls-cert", str(p(f"{who}.pem"))),
            *("--tls-key", str(p(f"{who}.key")), "--token-file", str(p(f"{who}.token"))),
        ]

    def cli_env(self) -> dict[str, str]:
        p = self.path
        return {
            "FERRY_TLS_CA": str(p("ca.pem")),
            "FERRY_TLS_CERT": str(p("cli.pem")),
            "FERRY_TLS_KEY": str(p("cli.key")),
            "FERRY_TOKEN_FILE": str(p("cli.token")),
        }

    def endpoint(self, addr: str) -> transport.Endpoint:
        """The CLI's view of the collector (for the health check: its certificate and CA)."""
        p = self.path
        tls = transport.ClientTLS.from_files(str(p("ca.pem")), str(p("cli.pem")), str(p("cli.key")))
        return transport.Endpoint(addr, tls=tls)


def dev_secrets(base: Path, agent_id: str = "*") -> DevSecrets:
    """Make the development CA, the collector's, agent's and CLI's certificates and tokens, and
    the auth file, unless a previous run made them (delete the folder to start again)."""
    from ferry.collector.auth.tokens import new_token, principal_table, write_secret
    from ferry.collector.devcerts import DevCA

    secrets = DevSecrets(base / "tls")
    if secrets.path("auth.toml").exists():
        return secrets
    secrets.dir.mkdir(parents=True, exist_ok=True)
    secrets.dir.chmod(0o700)
    ca = DevCA.create("ferry make-run CA")
    ca.write_ca(secrets.path("ca.pem"))
    ca.issue("ferry-collector", ["localhost", "127.0.0.1", "::1"]).write(secrets.path("collector"))
    tables = []
    for who, roles in (("agent", ["ingest"]), ("cli", ["query", "admin"])):
        ca.issue(f"dev-{who}", client=True).write(secrets.path(who))
        token = new_token()
        write_secret(secrets.path(f"{who}.token"), token)
        tables.append(principal_table(f"dev-{who}", token, roles, [agent_id]))
    env = "".join(f"export {k}={v}\n" for k, v in secrets.cli_env().items())
    secrets.path("env").write_text("# . this file: the `ferry` CLI then reaches make run's collector\n" + env)
    secrets.path("auth.toml").write_text(
        "# made by make run (ferry.collector.devrun); ferry-collector token new adds principals\n\n"
        + "\n".join(tables)
    )
    return secrets


DEV_RULES = """\
# made by make run: alert rules the collector evaluates every 5 s (docs/alerting.md);
# `ferry alerts` lists what is pending or firing. Edit and `kill -HUP` the collector to reload.

[[alerts]]
name = "HighCPU"
query = 'system.cpu.utilization{state="user"}'
agg = "avg"
by = ["host"]
window = "30s"
condition = "> 80%"
for = "1m"
severity = "warning"
annotations = { summary = "CPU on {{host}} at {{value}}" }

[[alerts]]
name = "LowMemory"
query = 'system.memory.utilization{state="free"}'
agg = "min"
by = ["host"]
window = "30s"
condition = "< 5%"
for = "1m"
severity = "critical"
annotations = { summary = "free memory on {{host}} at {{value}}" }
"""


def dev_rules(base: Path) -> Path:
    """make run's rules file (kept once made: edit it freely)."""
    path = base / "rules.toml"
    if not path.exists():
        path.write_text(DEV_RULES)
    return path


def stop(proc: subprocess.Popen, timeout_s: float = 15.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dir", default=".ferry")
    p.add_argument("--collector", default="127.0.0.1:4770")
    p.add_argument("--interval", default="5s")
    p.add_argument("--collector-metrics", default="127.0.0.1:9470")
    p.add_argument("--agent-metrics", default="127.0.0.1:9471")
    p.add_argument("--agent-local", default="127.0.0.1:4771")
    p.add_argument("--agent-otlp", default="127.0.0.1:4317", help="the agent's OTLP/gRPC receiver ('' off)")
    args = p.parse_args(argv)
    # explicit: a shell starting us in the background may have left SIGINT ignored, and then
    # Python would not raise KeyboardInterrupt; SIGTERM stops us the same way
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    base = Path(args.dir).resolve()
    base.mkdir(parents=True, exist_ok=True)
    secrets = dev_secrets(base)
    collector = subprocess.Popen(
        collector_command(
            args.collector,
            base / "store",
            args.collector_metrics,
            *secrets.collector_flags(),
            *("--rules", str(dev_rules(base)), "--alert-eval-interval", "5s"),
        ),
        start_new_session=True,  # Ctrl-C reaches only us; we stop the agent first so it can drain
    )
    agent = None
    try:
        wait_healthy(secrets.endpoint(args.collector), proc=collector)
        agent = subprocess.Popen(
            agent_command(
                args.collector,
                args.agent_metrics,
                "--interval",
                args.interval,
                "--batch-max-age",
                args.interval,
                "--spool",
                str(base / "spool"),
                "--local-socket",
                str(base / "agent.sock"),
                "--local-listen",
                args.agent_local,
                "--otlp-listen",
                args.agent_otlp,
                *secrets.client_flags("agent"),
            ),
            start_new_session=True,
        )
        bin_dir = Path(sys.executable).parent
        env = " ".join(f"{k}={v}" for k, v in secrets.cli_env().items())
        print(
            f"\nFerry is running: collector on {args.collector} (TLS, client certificates and tokens "
            f"from {secrets.dir}), agent every {args.interval}, store in {base / 'store'}.\n"
            f"In another terminal, within a few seconds (the CLI finds the CA, its certificate and "
            f"its token in these variables):\n\n"
            f"  export {env}\n"
            f"  (or: . {secrets.path('env')})\n"
            f"  {bin_dir / 'ferry'} query system.memory.usage --since 1m --format json\n"
            f"  {bin_dir / 'ferry'} series 'system.cpu.time{{cpu=\"cpu0\"}}'\n"
            f"  {bin_dir / 'ferry'} send app.hello 1 --label from=me --agent unix:{base / 'agent.sock'}\n"
            f"  {bin_dir / 'ferry'} alerts                      # rules in {base / 'rules.toml'}\n\n"
            f"Self-metrics: http://{args.collector_metrics}/metrics (collector), "
            f"http://{args.agent_metrics}/metrics (agent).\n"
            + (
                f"OpenTelemetry SDKs: OTEL_EXPORTER_OTLP_ENDPOINT=http://{args.agent_otlp} (docs/otlp.md).\n"
                if args.agent_otlp
                else ""
            )
            + "Ctrl-C stops both.\n",
            flush=True,
        )
        while collector.poll() is None and agent.poll() is None:
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        print("\nstopping agent and collector...", flush=True)
        return 0
    except (TimeoutError, RuntimeError) as exc:
        print(f"collector did not start: {exc}", file=sys.stderr)
        return 1
    finally:
        if agent is not None:
            stop(agent)
        stop(collector)


if __name__ == "__main__":
    sys.exit(main())
