"""Start and stop the real executables for integration tests, on loopback with free ports."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from ferry.collector.devrun import agent_command, collector_command, free_port, wait_healthy
from ferry.collector.query.client import total
from ferry.transport import ClientTLS, Endpoint


@dataclass
class Proc:
    popen: subprocess.Popen
    log: Path
    addr: str = ""
    metrics: str = ""
    args: list[str] = field(default_factory=list)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def scrape(self) -> dict[str, float]:
        """Self-metrics as {'name{k="v"}': value}; samples without labels as plain names."""
        with urllib.request.urlopen(f"http://{self.metrics}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        out = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                key = s.name + (
                    "{" + ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items())) + "}"
                    if s.labels
                    else ""
                )
                out[key] = s.value
        return out


def _spawn(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    fh = log.open("ab")
    return subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def start_collector(
    workdir: Path,
    *extra: str,
    store: Path | None = None,
    port: int | None = None,
    env: dict[str, str] | None = None,
    tls: ClientTLS | None = None,
) -> Proc:
    """`env`: variables set for the collector on top of this process's environment; `tls`: how
    the health check reaches a collector serving TLS (its CA, a client certificate). A port
    chosen here that another process took meanwhile (free_port is a guess; xdist workers guess
    in parallel) is chosen again."""
    for attempt in range(3):
        chosen = port or free_port()
        try:
            return _start_collector(workdir, extra, store, chosen, env, tls)
        except PortTaken:
            if port is not None or attempt == 2:
                raise
    raise AssertionError("unreachable")


class PortTaken(RuntimeError):
    pass


def _start_collector(workdir: Path, extra, store: Path | None, port: int, env, tls=None) -> Proc:
    addr, metrics = f"127.0.0.1:{port}", f"127.0.0.1:{free_port()}"
    store = store or workdir / "store"
    log = workdir / f"collector-{port}.log"
    args = collector_command(addr, store, metrics, *extra)
    proc = Proc(_spawn(args, log, env), log, addr, metrics, args)
    try:
        wait_healthy(Endpoint(addr, tls=tls), timeout_s=60, proc=proc.popen)
    except Exception as exc:
        proc.stop(signal.SIGKILL)
        output = proc.output()
        if f"cannot listen on {addr}" in output or "Address already in use" in output:
            raise PortTaken(f"port {port} was taken: {output[-500:]}") from exc
        raise RuntimeError(f"collector did not start: {exc}\n{output}") from exc
    return proc


def start_agent(
    workdir: Path,
    collector: str,
    *extra: str,
    agent_id: str = "it-agent",
    env: dict[str, str] | None = None,
    drop: tuple[str, ...] = (),
) -> Proc:
    """`env`: variables set for the agent on top of this process's environment; `drop`: flags
    (each with its value) left out of agent_command's, for an older release that lacks them."""
    metrics = f"127.0.0.1:{free_port()}"
    log = workdir / f"agent-{agent_id}.log"
    args = agent_command(
        collector, metrics, "--agent-id", agent_id, "--spool", str(workdir / f"spool-{agent_id}"), *extra
    )
    for flag in drop:
        while flag in args:
            at = args.index(flag)
            del args[at : at + 2]
    proc = Proc(_spawn(args, log, env), log, "", metrics, args)
    wait_for(lambda: _up(proc), timeout=30, what=f"agent self-metrics on {metrics}")
    # the self-metrics come up before the Local service and the OTLP receiver bind: a call in
    # between is UNAVAILABLE. Both are off unless `extra` turns them on (agent_command), so
    # agents started side by side (xdist workers) never bind the same port, OTLP's 4317 included
    listen, socket_path = _last(args, "--local-listen"), _last(args, "--local-socket")
    if listen:
        wait_for(lambda: _up(proc) and _accepts(_host_port(listen)), what=f"Local on {listen}")
    otlp = _last(args, "--otlp-listen")
    if otlp:
        wait_for(lambda: _up(proc) and _accepts(_host_port(otlp)), what=f"OTLP on {otlp}")
    if socket_path:
        wait_for(lambda: _up(proc) and _accepts(socket_path), what=f"Local on {socket_path}")
    return proc


def _last(args: list[str], flag: str) -> str:
    """The value of the last `flag VALUE` in `args` (a later flag wins), '' without one."""
    at = [i for i, a in enumerate(args) if a == flag]
    return args[at[-1] + 1] if at else ""


def _host_port(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


def _accepts(address: tuple[str, int] | str) -> bool:
    """Whether something accepts a connection at (host, port) or at a unix socket path."""
    try:
        if isinstance(address, str):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(1.0)
                s.connect(address)
        else:
            socket.create_connection(address, timeout=1.0).close()
    except OSError:
        return False
    return True


@contextlib.contextmanager
def collector_and_agent(workdir: Path, *agent_extra: str) -> Iterator[tuple[Proc, Proc]]:
    """A collector and one agent shipping to it, both stopped on the way out."""
    collector = start_collector(workdir)
    try:
        agent = start_agent(workdir, collector.addr, *agent_extra)
        try:
            yield collector, agent
        finally:
            agent.stop()
    finally:
        collector.stop()


def _up(proc: Proc) -> bool:
    if proc.popen.poll() is not None:
        raise RuntimeError(f"agent exited with {proc.popen.returncode}:\n{proc.output()}")
    try:
        proc.scrape()
    except OSError:
        return False
    return True


def wait_for(predicate, timeout: float = 30.0, interval: float | None = None, what: str = "condition"):
    """The first true value of `predicate()`, called until `timeout`. `interval`: the pause
    between calls; by default 0.05 s doubling up to 0.25 s (a condition met at once is seen at
    once, and a long wait calls no more often than every 0.25 s)."""
    deadline = time.monotonic() + timeout
    pause, most = (0.05, 0.25) if interval is None else (interval, interval)
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(pause)
        pause = min(most, pause * 2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def ferry_cli(
    *args: str, timeout: float = 30.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run the `ferry` CLI as a user would; returns the completed process (never raises on status).
    `env`: variables set on top of this process's environment (FERRY_TLS_CA, FERRY_TOKEN, ...)."""
    return subprocess.run(
        [sys.executable, "-m", "ferry.collector.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env} if env else None,
    )


def synthetic_stored(addr: str, window_ms: int = 3_600_000) -> tuple[float, float]:
    """(count, sum) of all ferry_synthetic points stored in the last hour."""
    return total(addr, "ferry_synthetic", "count", window_ms), total(
        addr, "ferry_synthetic", "sum", window_ms
    )


@contextlib.contextmanager
def diagnose(*procs: Proc):
    """On any failure inside the block, print the tail of each process's log (pytest shows it)."""
    try:
        yield
    except BaseException:
        for p in procs:
            if p is not None:
                print(f"\n--- {p.log.name} (tail) ---\n{p.output()[-4000:]}")
        raise
