"""What the secure path costs (issue 17): TLS handshakes, and TLS + mTLS + auth per frame.

(a) New connections per second against a real collector: each a fresh channel (its own TCP
    connection, and with TLS its own handshake) making one health check (open to all, so the
    figure is the connection's cost alone), from `threads` client threads for `seconds`:
    plaintext, TLS (server certificate only) and mTLS (a client certificate too, verified
    against the CA), with the collector's CPU milliseconds per connection.
(b) The fleet bench's max-rate phase (bench/fleet.py, paced phase skipped) plaintext and with
    TLS + mTLS + an auth file of 10 principals (bench/pki.py: every stream's channel sends its
    principal's token, every frame is checked against its agent_ids and rate limits), in
    alternating order in one run; medians of `repeats` of each, their ratio, and the
    collector's CPU microseconds per acked frame in each.
(c) The auth checks alone, in this process: the per-frame checks a Stream makes (its principal
    still admitted, agent id and host against the principal's globs, its token buckets) and the
    per-call token lookup (SHA-256, compared with every principal's hash), in microseconds, with
    bench/pki.py's 10 principals.

Client and collector share the machine: (a)'s rates are of the two together; the collector's
CPU per connection is its own share.

    python -m bench.security            # fleet at 1,000 streams, 3 runs each
    python -m bench.security --quick    # fleet at 200 streams, 3 runs each
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench import fleet, pki
from bench.procs import collector_process
from ferry import transport
from ferry.collector.auth.frames import FrameGuard
from ferry.collector.auth.gate import Caller, Gate
from ferry.collector.auth.principals import Principals
from ferry.collector.ingest import STREAM
from ferry.transport import ClientTLS, Endpoint

FIGURES = (  # what bench/run.py prints
    "tls_handshakes_per_s",
    "tls_only_handshakes_per_s",
    "plain_connections_per_s",
    "tls_handshake_vs_plain",
    "collector_cpu_ms_per_tls_handshake",
    "collector_cpu_ms_per_plain_connection",
    "fleet_frames_per_s_secure",
    "fleet_frames_per_s_plain",
    "secure_vs_plain",
    "fleet_collector_cpu_us_per_frame_secure",
    "fleet_collector_cpu_us_per_frame_plain",
    "auth_check_us_per_frame",
    "token_check_us_per_call",
)

SETTINGS = {
    False: {"streams": 1000, "duration": 20.0, "warm": 3.0, "repeats": 3, "seconds": 10.0},
    True: {"streams": 200, "duration": 6.0, "warm": 1.5, "repeats": 3, "seconds": 4.0},
}
THREADS = 4
WARM_S = 0.5  # connections made before this are not counted


def connections(addr: str, tls: ClientTLS | None, seconds: float, threads: int = THREADS) -> dict:
    """Fresh channels, one health check each, for `seconds`: connections/s and the collector's
    CPU ms per connection (both over the time after WARM_S)."""
    # a subchannel pool of the channel's own: no connection is shared with an earlier channel
    ep = Endpoint(addr, tls=tls, options=(("grpc.use_local_subchannel_pool", 1),))
    collector = fleet._child(addr)
    start = time.monotonic() + WARM_S
    end = start + seconds
    counts, errors = [0] * threads, [0] * threads
    first_error: list[str] = []

    def loop(t: int) -> None:
        request = health_pb2.HealthCheckRequest()
        while (now := time.monotonic()) < end:
            try:
                with transport.channel(ep) as ch:
                    health_pb2_grpc.HealthStub(ch).Check(request, timeout=10)
            except grpc.RpcError as exc:
                errors[t] += 1
                first_error.append(f"{exc.code().name}: {exc.details()}")
                continue
            if now >= start:
                counts[t] += 1

    workers = [threading.Thread(target=loop, args=(t,), daemon=True) for t in range(threads)]
    for w in workers:
        w.start()
    time.sleep(max(0.0, start - time.monotonic()))
    cpu0 = collector.cpu_times()
    time.sleep(max(0.0, end - time.monotonic()))
    cpu1 = collector.cpu_times()
    for w in workers:
        w.join()
    made = sum(counts)
    cpu_s = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    return {
        "connections_per_s": made / seconds,
        "connections": made,
        "errors": sum(errors),
        "first_error": first_error[0] if first_error else "",
        "collector_cpu_ms_per_connection": cpu_s * 1000 / made if made else None,
        "threads": threads,
        "seconds": seconds,
    }


def handshake_figures(seconds: float) -> dict:
    """(a): plaintext, TLS and mTLS collectors in turn."""
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-security-") as tmp:
        secrets = pki.make(Path(tmp) / "pki", principals=1)
        plans = (
            ("plain", [], None),
            ("tls", secrets.collector_flags(mtls=False, auth=False), secrets.client_tls(cert=False)),
            ("mtls", secrets.collector_flags(), secrets.client_tls()),
        )
        for name, flags, tls in plans:
            workdir = Path(tmp) / name
            workdir.mkdir()
            with collector_process(workdir, *flags, tls=tls) as addr:
                out[name] = connections(addr, tls, seconds)
    return out


def fleet_figures(streams: int, duration: float, warm: float, repeats: int) -> dict:
    """(b): the fleet's max rate, plaintext and secure alternating (which goes first alternates
    too, so neither always meets a warmer or a colder machine)."""
    runs: dict[str, list[dict]] = {"plain": [], "secure": []}
    for i in range(repeats):
        order = ("plain", "secure") if i % 2 == 0 else ("secure", "plain")
        for kind in order:
            r = fleet.run_ferry(streams, duration, warm=warm, secure=kind == "secure", paced=False)
            cores = r["cpu_cores_max_phase"]["collector"]
            runs[kind].append(
                {
                    "frames_per_s": r["frames_per_s"],
                    "collector_cpu_us_per_frame": cores * 1e6 / r["frames_per_s"]
                    if r["frames_per_s"]
                    else None,
                    "collector_cores": cores,
                    "collector_rss_mb": r["collector_rss_mb"],
                    "stored_ok": r["stored_ok"],
                    "errors": r["max_phase"]["errors"],
                    "ran_out": r["max_phase"]["ran_out"],
                    "first_error": r["max_phase"]["first_error"],
                }
            )
    return runs


def auth_checks(principals: int = 10, n: int = 200_000, agents: int = 1000) -> dict:
    """(c): a frame's checks as a Stream makes them (ferry.collector.auth.frames.FrameGuard: one
    guard per stream, frames from `agents` streams in turn; its check and its host check), and a
    call's token lookup (Principals.by_token); microseconds, median of 5 timings of `n` each."""
    with tempfile.TemporaryDirectory(prefix="bench-auth-") as tmp:
        secrets = pki.make(Path(tmp) / "pki", principals)
        loaded = Principals.load(str(Path(tmp) / "pki" / "auth.toml"))
    gate = Gate(loaded)
    t0_ms = int(time.time() * 1000)
    hosts = [fleet.Host(i, "auth", t0_ms) for i in range(agents)]
    frames = [h.frame(1) for h in hosts]
    tokens = [secrets.token_for(i) for i in range(agents)]
    guards = [
        FrameGuard(gate, Caller(loaded.by_token(t), (), [], "ipv4:127.0.0.1:1", gate.generation), STREAM)
        for t in tokens
    ]
    frame_us, token_us = [], []
    for _ in range(5):
        t0 = time.perf_counter()
        for k in range(n):
            i = k % agents
            if guards[i].check(frames[i]) != 0:
                raise RuntimeError(f"frame of {hosts[i].agent_id} refused or limited")
            guards[i].host(hosts[i].host)
        frame_us.append((time.perf_counter() - t0) * 1e6 / n)
        t0 = time.perf_counter()
        for k in range(n // 10):
            loaded.by_token(tokens[k % agents])
        token_us.append((time.perf_counter() - t0) * 1e6 / (n // 10))
    return {"frame_us": statistics.median(frame_us), "token_us": statistics.median(token_us)}


def _median(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r[key] is not None]
    return statistics.median(values) if values else None


def run(quick: bool = False) -> dict:
    s = SETTINGS[quick]
    conns = handshake_figures(s["seconds"])
    checks = auth_checks()
    runs = fleet_figures(s["streams"], s["duration"], s["warm"], s["repeats"])
    secure, plain = _median(runs["secure"], "frames_per_s"), _median(runs["plain"], "frames_per_s")
    out = {
        "tls_handshakes_per_s": conns["mtls"]["connections_per_s"],
        "tls_only_handshakes_per_s": conns["tls"]["connections_per_s"],
        "plain_connections_per_s": conns["plain"]["connections_per_s"],
        "tls_handshake_vs_plain": conns["mtls"]["connections_per_s"] / conns["plain"]["connections_per_s"],
        "collector_cpu_ms_per_tls_handshake": conns["mtls"]["collector_cpu_ms_per_connection"],
        "collector_cpu_ms_per_plain_connection": conns["plain"]["collector_cpu_ms_per_connection"],
        "fleet_frames_per_s_secure": secure,
        "fleet_frames_per_s_plain": plain,
        "secure_vs_plain": secure / plain if secure and plain else None,
        "fleet_collector_cpu_us_per_frame_secure": _median(runs["secure"], "collector_cpu_us_per_frame"),
        "fleet_collector_cpu_us_per_frame_plain": _median(runs["plain"], "collector_cpu_us_per_frame"),
        "auth_check_us_per_frame": checks["frame_us"],
        "token_check_us_per_call": checks["token_us"],
        "security_stored_ok": all(r["stored_ok"] for kind in runs.values() for r in kind),
        "security": {"connections": conns, "fleet_runs": runs, "fleet_streams": s["streams"], **s},
    }
    return out


def print_table(r: dict) -> None:
    for key in FIGURES:
        if r.get(key) is not None:
            print(f"{key:42} {r[key]:>14,.2f}")
    print(f"{'security_stored_ok':42} {r['security_stored_ok']!s:>14}")
    for kind, runs in r["security"]["fleet_runs"].items():
        rates = ", ".join(f"{x['frames_per_s']:,.0f}" for x in runs)
        print(f"{'fleet frames/s, ' + kind + ' runs':42} {rates}")
    for kind, c in r["security"]["connections"].items():
        if c["errors"]:
            print(f"{kind}: {c['errors']} failed connections, first: {c['first_error']}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", metavar="FILE", help="also write the results to FILE")
    a = p.parse_args()
    r = run(a.quick)
    print_table(r)
    if a.json:
        Path(a.json).write_text(json.dumps(r, indent=2) + "\n")


if __name__ == "__main__":
    main()
