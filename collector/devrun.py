"""`make run`: a collector and an agent on loopback with an embedded store under ./.ferry/.

Starts both as child processes, waits until the collector answers its health check, prints the
commands to try, and on Ctrl-C (or SIGTERM) stops the agent, then the collector.
"""

from __future__ import annotations

import argparse
import random
import signal
import socket
import subprocess
import sys
import time
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
    """The command line of an agent shipping to `collector`; its Local service is off unless
    `extra` sets --local-listen / --local-socket (so agents side by side do not clash)."""
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
        *extra,
    ]


def wait_healthy(addr: str, timeout_s: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    """Block until the gRPC health service at `addr` says SERVING; raise TimeoutError otherwise."""
    deadline = time.monotonic() + timeout_s
    with transport.channel(addr) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"process exited with status {proc.returncode} before serving on {addr}")
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise TimeoutError(f"nothing healthy on {addr} after {timeout_s}s")


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
    args = p.parse_args(argv)
    # explicit: a shell starting us in the background may have left SIGINT ignored, and then
    # Python would not raise KeyboardInterrupt; SIGTERM stops us the same way
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    base = Path(args.dir).resolve()
    base.mkdir(parents=True, exist_ok=True)
    collector = subprocess.Popen(
        collector_command(args.collector, base / "store", args.collector_metrics),
        start_new_session=True,  # Ctrl-C reaches only us; we stop the agent first so it can drain
    )
    agent = None
    try:
        wait_healthy(args.collector, proc=collector)
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
            ),
            start_new_session=True,
        )
        bin_dir = Path(sys.executable).parent
        print(
            f"\nFerry is running: collector on {args.collector}, agent every {args.interval}, "
            f"store in {base / 'store'}.\nIn another terminal, within a few seconds:\n\n"
            f"  {bin_dir / 'ferry'} query system.memory.usage --since 1m --format json\n"
            f"  {bin_dir / 'ferry'} series 'system.cpu.time{{cpu=\"cpu0\"}}'\n"
            f"  {bin_dir / 'ferry'} send app.hello 1 --label from=me --agent unix:{base / 'agent.sock'}\n\n"
            f"Self-metrics: http://{args.collector_metrics}/metrics (collector), "
            f"http://{args.agent_metrics}/metrics (agent).\n"
            "Ctrl-C stops both.\n",
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
