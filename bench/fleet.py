"""Fleet ingest: N simulated agents (default 1,000 streams) into one real collector, and the same
shape of load into Prometheus 2.x over remote write.

Each simulated agent is one `Ingest.Stream` with its own agent_id, host and epoch, sending
pre-built host-cycle frames (300 series of an agent's host catalogue, one point each, seq 1, 2,
3, ...) with at most `window` (32, the agent sender's default) unacked; a RESOURCE_EXHAUSTED ack
ends the stream, which waits retry_after_ms and reopens from the refused frame on, as an agent
does. The generator runs in `workers` processes of its own (asyncio, one gRPC channel and TCP
connection per `streams_per_channel` streams) that build every frame before the clock starts.

1. max rate: every stream sends as fast as its window allows for `duration` s; OK acks per
   second after a warm-up are the maximum.
2. latency: every stream paced at `latency_fraction` (0.5) of that maximum for `paced_duration`
   s; each frame's send → ack time gives p50/p99.
3. the store's count of points equals 300 x the frames acked (OK, or DUPLICATE after a resend).
   Every stream's window is full when the max-rate phase ends, so the run waits for those
   streams x window frames to be acked: 6 s at 5,000 frames/s, 4 minutes at 125.

Prometheus (bench/prometheus.py) gets the same number of connections, each a host posting
300-sample remote-write requests one at a time (a remote-write shard's way), then a few
connections posting large requests (`large_hosts` hosts x `large_samples` samples per series);
its head's appended-samples counter must equal what it answered 2xx for.

    python -m bench.fleet                    # 1,000 streams, about 3 minutes (plus that drain)
    python -m bench.fleet --quick            # 200 streams, under a minute
    python -m bench.fleet --quick --secure   # the collector with TLS, mTLS and an auth file

`--secure` (bench/pki.py): the collector serves TLS, requires client certificates and checks
an auth file of `--principals` ingest principals (a token each, rate limits no stream reaches);
each stream's channel presents the client certificate and its principal's token
(Endpoint(tls=..., token=...)), as an agent's does. bench/security.py sets the two side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import math
import multiprocessing as mp
import os
import tempfile
import threading
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import psutil

from bench import pki, prometheus
from bench.procs import collector_process
from ferry import transport
from ferry.collector.query.client import query_range
from ferry.runtime.loop import run as run_loop
from ferry.transport import Endpoint
from ferry.v1 import ingest_pb2, payload_pb2, query_pb2
from ferry.wire.columns import COUNTER, GAUGE, SeriesDef
from ferry.wire.encode import series_table
from ferry.wire.frames import pack_frame

POINTS = 300  # series (and points) in one host cycle
STEP_MS = 10  # time between one host's consecutive cycles in the frames (all within seconds of t0)
PAST_MS = 180_000  # frames start this far before the run (the collector takes up to days back)
WINDOW = 32  # the agent sender's default window of unacked frames per stream
_RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
_STREAM = "/ferry.v1.Ingest/Stream"


def host_series() -> list[SeriesDef]:
    """The 300 series of one host's cycle, shaped like the agent's catalogue (agent/catalogue.py):
    4 CPUs, 4 NICs, 4 disks, 4 filesystems, 8 top processes."""
    out: list[SeriesDef] = []

    def add(name: str, kind: int, unit: str, **dims: list[str]) -> None:
        keys = sorted(dims)
        for combo in itertools.product(*(dims[k] for k in keys)):
            out.append(SeriesDef(name, kind, unit, tuple(zip(keys, combo, strict=True))))

    cpus = [str(i) for i in range(4)]
    modes = ["user", "system", "idle", "iowait", "nice", "irq", "softirq", "steal"]
    add("system.cpu.utilization", GAUGE, "1", cpu=cpus, state=modes)
    add("system.cpu.time", COUNTER, "s", cpu=cpus, state=modes)
    add("system.cpu.logical.count", GAUGE, "{cpu}")
    for w in ("1m", "5m", "15m"):
        add(f"system.cpu.load_average.{w}", GAUGE, "{thread}")
    mem = ["used", "free", "buffered", "cached", "slab_reclaimable", "slab_unreclaimable"]
    add("system.memory.usage", GAUGE, "By", state=mem)
    add("system.memory.utilization", GAUGE, "1", state=mem)
    add("system.memory.limit", GAUGE, "By")
    nics, dirs = ["eth0", "eth1", "lo", "docker0"], ["receive", "transmit"]
    for n, unit in (("io", "By"), ("packets", "{packet}"), ("errors", "{error}"), ("dropped", "{packet}")):
        add(f"system.network.{n}", COUNTER, unit, device=nics, direction=dirs)
    tcp = ["ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"]
    tcp += ["CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING"]
    add("system.network.connections", GAUGE, "{connection}", protocol=["tcp"], state=tcp)
    disks, rw = ["sda", "sdb", "nvme0n1", "nvme1n1"], ["read", "write"]
    for n, unit in (("io", "By"), ("operations", "{operation}"), ("merged", "{operation}")):
        add(f"system.disk.{n}", COUNTER, unit, device=disks, direction=rw)
    add("system.disk.operation_time", COUNTER, "s", device=disks, direction=rw)
    add("system.disk.io_time", COUNTER, "s", device=disks)
    add("system.disk.pending_operations", GAUGE, "{operation}", device=disks)
    mounts = ["/", "/boot", "/var", "/home"]
    add("system.filesystem.usage", GAUGE, "By", mountpoint=mounts, state=["used", "free", "reserved"])
    add("system.filesystem.inodes.usage", GAUGE, "{inode}", mountpoint=mounts, state=["used", "free"])
    add("system.filesystem.utilization", GAUGE, "1", mountpoint=mounts)
    add("system.paging.usage", GAUGE, "By", device=["/swap"], state=["used", "free"])
    add("system.paging.operations", COUNTER, "{operation}", direction=["in", "out"], type=["major", "minor"])
    add("system.paging.faults", COUNTER, "{fault}", type=["major", "minor"])
    states = ["running", "sleeping", "stopped", "zombie", "idle", "blocked"]
    add("system.processes.count", GAUGE, "{process}", status=states)
    add("system.processes.created", COUNTER, "{process}")
    add("system.uptime", GAUGE, "s")
    procs = ["postgres", "nginx", "java", "python3", "node", "dockerd", "containerd", "sshd"]
    add("process.cpu.time", COUNTER, "s", process=procs, state=["user", "system"])
    add("process.cpu.utilization", GAUGE, "1", process=procs, state=["user", "system"])
    add("process.memory.usage", GAUGE, "By", process=procs)
    add("process.memory.virtual", GAUGE, "By", process=procs)
    add("process.threads", GAUGE, "{thread}", process=procs)
    add("process.open_file_descriptors", GAUGE, "{fd}", process=procs)
    add("process.disk.io", COUNTER, "By", process=procs, direction=rw)
    add("process.context_switches", COUNTER, "{switch}", process=procs, type=["voluntary", "involuntary"])
    assert len(out) == POINTS, len(out)
    return out


SERIES = host_series()
METRICS = sorted({s.name for s in SERIES})
_KINDS = np.array([s.kind for s in SERIES])


def _ld(field_number: int, data: bytes) -> bytes:
    return prometheus._ld(field_number, data)


# The series table is the same for every host: serialized once. A payload is then the resource,
# this table, the two point columns of the cycle and the constant series_ref_delta column, in the
# field order protobuf writes them (tests/bench/test_fleet.py checks the bytes equal
# ferry.wire.codec.encode_payload's).
_SERIES_PART = payload_pb2.MetricColumns(series=series_table(SERIES), point_count=POINTS).SerializeToString()
_REF_PART = payload_pb2.MetricColumns(
    series_ref_delta=np.diff(np.arange(POINTS), prepend=0).astype("<i4").tobytes()
).SerializeToString()


class Host:
    """One simulated host: its identity and the values of its 300 series at each cycle."""

    def __init__(self, index: int, tag: str, t0_ms: int):
        self.index = index
        self.agent_id = f"fleet-{tag}-{index:05d}"
        self.host = f"fleet-{tag}-host-{index:05d}"
        self.epoch = zlib.crc32(f"{tag}/{index}".encode()) << 20 | index
        self.t0_ms = t0_ms
        rng = np.random.default_rng(index)
        counter = _KINDS == COUNTER
        self._base = np.where(counter, rng.integers(1, 10**9, POINTS), rng.random(POINTS) * 100).astype(float)
        self._rate = np.where(counter, rng.integers(0, 5000, POINTS), 0).astype(float)
        self._wobble = np.where(counter, 0.0, rng.random(POINTS) * 5)
        resource = payload_pb2.Resource(host=self.host, agent_id=self.agent_id, agent_version="fleet-bench")
        self._resource = _ld(1, resource.SerializeToString())

    def time_ms(self, seq: int) -> int:
        return self.t0_ms + seq * STEP_MS

    def values(self, seq: int) -> np.ndarray:
        """Counters grow by their rate each cycle, gauges wobble around their base."""
        return np.round(self._base + self._rate * seq + self._wobble * math.sin(seq + self.index), 3)

    def payload(self, seq: int) -> bytes:
        times = np.zeros(POINTS, dtype="<i8")
        times[0] = self.time_ms(seq)  # the first absolute, then deltas (all 0: one cycle)
        cols = payload_pb2.MetricColumns(
            time_ms=times.tobytes(), value=self.values(seq).astype("<f8").tobytes()
        )
        return self._resource + _ld(2, _SERIES_PART + cols.SerializeToString() + _REF_PART)

    def frame(self, seq: int) -> ingest_pb2.Frame:
        return pack_frame(self.agent_id, self.epoch, seq, self.payload(seq), POINTS)


# -- generator processes --------------------------------------------------------------------------


@dataclass
class Tally:
    """What one generator process saw in one phase."""

    ok: int = 0
    dup: int = 0
    rejected: int = 0  # permanently (INVALID_ARGUMENT or an HTTP 4xx)
    exhausted: int = 0  # RESOURCE_EXHAUSTED acks (the frame was resent)
    errors: int = 0  # stream or connection failures (unacked frames were resent)
    sent: int = 0
    ran_out: int = 0  # streams that had no pre-built frame left before the phase ended
    max_late_s: float = 0.0  # paced phase: how far behind its schedule a send was at worst
    first_error: str = ""
    ack_times: list = field(default_factory=list)  # monotonic time of each OK ack
    latencies: list = field(default_factory=list)  # paced phase: send → OK ack, seconds

    def result(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k not in ("ack_times", "latencies")}
        out["ack_times"] = np.asarray(self.ack_times)
        out["latencies"] = np.asarray(self.latencies)
        return out


@dataclass
class Phase:
    start: float  # time.monotonic() (system-wide on Linux: the same clock in every process)
    end: float
    warm: float  # latencies of frames sent before start + warm are not kept
    interval: float | None = None  # paced: seconds between one stream's sends; None: max rate
    timeout: float = 120.0  # past end, for the last acks

    def scheduled(self, stream: int, streams: int, j: int) -> float:
        assert self.interval is not None
        return self.start + self.interval * (stream / streams + j)


class FerryStreams:
    """The share of simulated agents one generator process drives."""

    def __init__(self, spec: dict):
        self.addr = spec["addr"]
        self.window = spec["window"]
        self.streams = spec["streams"]  # across all processes: for spreading paced sends
        self.hosts = [Host(i, spec["tag"], spec["t0_ms"]) for i in spec["indices"]]
        self.frames: list[list[bytes]] = [[] for _ in self.hosts]
        self.next = [0] * len(self.hosts)  # index of the first frame not yet acked
        self.per_channel = spec["streams_per_channel"]
        self.secrets: pki.BenchSecrets | None = spec.get("secrets")
        self.tls = self.secrets.client_tls() if self.secrets else None
        self.channels: dict[tuple[str, int], object] = {}
        self.slots: dict[int, tuple[str, int]] = {}  # stream k -> its channel's key
        self.acked_points = 0

    def build(self, upto: int) -> None:
        for host, frames in zip(self.hosts, self.frames, strict=True):
            frames.extend(host.frame(seq).SerializeToString() for seq in range(len(frames) + 1, upto + 1))

    def _channel(self, k: int):
        """Stream k's channel, shared by up to `per_channel` streams (of one principal, whose
        token the channel sends, when secure)."""
        key = self.slots.get(k)
        if key is None:
            token = self.secrets.token_for(self.hosts[k].index) if self.secrets else ""
            n = sum(1 for t, _ in self.slots.values() if t == token)
            key = self.slots[k] = (token, n // self.per_channel)
        if key not in self.channels:
            # a subchannel pool of its own: one TCP connection per channel, as agents have
            ep = Endpoint(
                self.addr,
                max_send_bytes=64 << 20,
                options=(("grpc.use_local_subchannel_pool", 1),),
                tls=self.tls,
                token=key[0],
            )
            self.channels[key] = transport.aio_channel(ep)
        return self.channels[key]

    async def phase(self, phase: Phase) -> dict:
        tally = Tally()
        self.written = list(self.next)  # per stream, the end of what this phase has written
        delay = phase.start - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        deadline = phase.end + phase.timeout
        tasks = [asyncio.create_task(self._agent(k, phase, tally)) for k in range(len(self.hosts))]
        done, pending = await asyncio.wait(tasks, timeout=max(1.0, deadline - time.monotonic()))
        for t in pending:
            t.cancel()
        if pending:
            tally.first_error = tally.first_error or f"{len(pending)} streams still unacked at the timeout"
        for t in done:
            if t.exception() is not None:
                tally.first_error = tally.first_error or repr(t.exception())
        return tally.result()

    async def _agent(self, k: int, phase: Phase, tally: Tally) -> None:
        first = self.next[k]
        stream = self._channel(k).stream_stream(
            _STREAM, request_serializer=None, response_deserializer=ingest_pb2.Ack.FromString
        )
        while True:
            retry = await self._session(k, stream(), phase, first, tally)
            if retry is None:
                return
            await asyncio.sleep(retry)

    async def _session(self, k: int, call, phase: Phase, first: int, tally: Tally) -> float | None:
        """One stream from the first unacked frame on; None when the phase is done, else the
        seconds to wait before the next stream."""
        frames = self.frames[k]
        inflight: deque[tuple[int, float]] = deque()
        room = asyncio.Event()
        room.set()
        host_index = self.hosts[k].index

        async def write() -> None:
            i = self.next[k]
            while True:
                while len(inflight) >= self.window:
                    room.clear()
                    await room.wait()
                now = time.monotonic()
                if i >= self.written[k]:  # a new frame (one written before is resent whatever the time)
                    if phase.interval is not None:
                        when = phase.scheduled(host_index, self.streams, i - first)
                        if when >= phase.end:
                            break
                        if when > now:
                            await asyncio.sleep(when - now)
                            now = time.monotonic()
                        tally.max_late_s = max(tally.max_late_s, now - when)
                    elif now >= phase.end:
                        break
                    if i >= len(frames):
                        tally.ran_out += 1
                        break
                inflight.append((i, now))
                await call.write(frames[i])
                tally.sent += 1
                i += 1
                self.written[k] = max(self.written[k], i)
            await call.done_writing()

        writer = asyncio.create_task(write())
        try:
            async for ack in call:
                i, sent_at = inflight.popleft()
                room.set()
                if ack.status == ingest_pb2.REJECTED and ack.code == _RESOURCE_EXHAUSTED:
                    tally.exhausted += 1
                    return max(ack.retry_after_ms, 50) / 1000
                self.next[k] = i + 1
                if ack.status == ingest_pb2.OK:
                    now = time.monotonic()
                    tally.ok += 1
                    tally.ack_times.append(now)
                    if phase.interval is not None and sent_at >= phase.start + phase.warm:
                        tally.latencies.append(now - sent_at)
                elif ack.status == ingest_pb2.DUPLICATE:
                    tally.dup += 1
                else:
                    tally.rejected += 1
                    tally.first_error = tally.first_error or f"REJECTED {ack.code}: {ack.message}"
            if writer.done() and writer.exception() is not None:
                raise writer.exception()
            if inflight or not writer.done():
                raise RuntimeError(f"stream ended with {len(inflight)} frames unacked")
            return None
        except (grpc.aio.AioRpcError, RuntimeError) as exc:
            tally.errors += 1
            tally.first_error = tally.first_error or f"{type(exc).__name__}: {exc}"[:300]
            return 0.5
        finally:
            writer.cancel()
            call.cancel()
            with contextlib.suppress(BaseException):
                await writer

    async def close(self) -> None:
        for ch in self.channels.values():
            await ch.close()


class PromConnections:
    """The share of remote-write senders one generator process drives: each connection one
    request at a time from its own pre-built list."""

    def __init__(self, spec: dict):
        self.addr = spec["addr"]
        self.per_conn = spec["hosts_per_request"]
        self.samples = spec["samples_per_series"]
        self.t0_ms = spec["t0_ms"]
        self.conns = []
        for c in spec["indices"]:
            hosts = [Host(c * self.per_conn + h, spec["tag"], self.t0_ms) for h in range(self.per_conn)]
            labels = [
                [("__name__", prometheus.prom_name(s.name)), ("host", host.host), ("job", "fleet"), *s.labels]
                for host in hosts
                for s in SERIES
            ]
            self.conns.append((hosts, prometheus.RequestTemplate(labels, self.samples)))
        self.bodies: list[list[bytes]] = [[] for _ in self.conns]
        self.points = self.conns[0][1].points if self.conns else 0

    def request(self, c: int, r: int) -> tuple[np.ndarray, np.ndarray]:
        """Request r (from 0) of connection c: its timestamps and values, series-major."""
        hosts, _ = self.conns[c]
        k = self.samples
        seqs = r * k + 1 + np.arange(k)
        values = np.concatenate([np.stack([h.values(int(s)) for s in seqs], axis=1).ravel() for h in hosts])
        times = np.tile(self.t0_ms + seqs * STEP_MS, len(hosts) * POINTS)
        return times, values

    def build(self, upto: int) -> None:
        for c, (_, template) in enumerate(self.conns):
            bodies = self.bodies[c]
            for r in range(len(bodies), upto):
                bodies.append(prometheus.compress(template.encode(*self.request(c, r))))

    async def phase(self, phase: Phase) -> dict:
        tally = Tally()
        conns = [prometheus.Connection(self.addr) for _ in self.conns]
        await asyncio.gather(*(c.open() for c in conns))
        delay = phase.start - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks = [
            asyncio.create_task(self._post(conn, bodies, phase, tally))
            for conn, bodies in zip(conns, self.bodies, strict=True)
        ]
        done, pending = await asyncio.wait(tasks, timeout=phase.end + phase.timeout - time.monotonic())
        for t in pending:
            t.cancel()
        for t in done:
            if t.exception() is not None:
                tally.first_error = tally.first_error or repr(t.exception())
        for c in conns:
            await c.close()
        return tally.result()

    async def _post(
        self, conn: prometheus.Connection, bodies: list[bytes], phase: Phase, tally: Tally
    ) -> None:
        for body in bodies:
            if time.monotonic() >= phase.end:
                return
            tally.sent += 1
            try:
                status, text = await conn.post(body)
            except (OSError, asyncio.IncompleteReadError) as exc:
                tally.errors += 1
                tally.first_error = tally.first_error or repr(exc)
                continue  # that request is lost (or not): the count check will say
            if 200 <= status < 300:
                tally.ok += 1
                tally.ack_times.append(time.monotonic())
            else:
                tally.rejected += 1
                tally.first_error = tally.first_error or f"HTTP {status}: {text[:200]!r}"
        tally.ran_out += 1

    async def close(self) -> None:
        pass


def _worker(conn, kind: str, spec: dict) -> None:
    run_loop(_serve(conn, kind, spec))


async def _serve(conn, kind: str, spec: dict) -> None:
    loop = asyncio.get_running_loop()
    cpu0 = time.process_time()
    gen = FerryStreams(spec) if kind == "ferry" else PromConnections(spec)
    gen.build(spec["build"])
    conn.send(("ready", time.process_time() - cpu0))
    while True:
        cmd, arg = await loop.run_in_executor(None, conn.recv)
        if cmd == "build":
            gen.build(arg)
            conn.send(("built", None))
        elif cmd == "phase":
            conn.send(("phase", await gen.phase(arg)))
        else:
            await gen.close()
            conn.send(("stopped", None))
            return


class Pool:
    """`workers` generator processes (spawned: no gRPC state crosses a fork), each given its
    share of `count` streams or connections."""

    def __init__(self, kind: str, workers: int, count: int, spec: dict):
        ctx = mp.get_context("spawn")
        self.pipes, self.procs = [], []
        for w in range(min(workers, count)):
            parent, child = ctx.Pipe()
            share = {**spec, "indices": list(range(w, count, workers))}
            proc = ctx.Process(target=_worker, args=(child, kind, share), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)
        self.build_cpu_s = sum(self._recv(p, "ready") for p in self.pipes)
        self.ps = [psutil.Process(p.pid) for p in self.procs]

    def _recv(self, pipe, what: str):
        while not pipe.poll(5):
            if not all(p.is_alive() for p in self.procs):
                raise RuntimeError(f"a generator process died (waiting for {what})")
        tag, value = pipe.recv()
        assert tag == what, (tag, what)
        return value

    def call(self, cmd: str, arg, answer: str) -> list:
        for p in self.pipes:
            p.send((cmd, arg))
        return [self._recv(p, answer) for p in self.pipes]

    def phase(self, phase: Phase) -> dict:
        return merge(self.call("phase", phase, "phase"))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call("stop", None, "stopped")
        for p in self.procs:
            p.join(10)
            if p.is_alive():
                p.kill()


def merge(results: list[dict]) -> dict:
    out = {
        k: sum(r[k] for r in results)
        for k in ("ok", "dup", "rejected", "exhausted", "errors", "sent", "ran_out")
    }
    out["max_late_s"] = max(r["max_late_s"] for r in results)
    out["first_error"] = next((r["first_error"] for r in results if r["first_error"]), "")
    out["ok_by_worker"] = [r["ok"] for r in results]
    out["last_ack_by_worker"] = [float(r["ack_times"].max()) if r["ok"] else None for r in results]
    out["ack_times"] = np.concatenate([r["ack_times"] for r in results])
    out["latencies"] = np.concatenate([r["latencies"] for r in results])
    return out


class Watch:
    """CPU seconds of named processes over a phase, and the peak RSS of one of them, sampled."""

    def __init__(self, procs: dict[str, list[psutil.Process]], rss_of: str | None = None):
        self.procs = procs
        self.rss_of = rss_of
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            if self.rss_of:
                with contextlib.suppress(psutil.Error):
                    self.peak_rss = max(
                        self.peak_rss, sum(p.memory_info().rss for p in self.procs[self.rss_of])
                    )

    def cpu(self) -> dict[str, float]:
        out = {}
        for name, ps in self.procs.items():
            s = 0.0
            for p in ps:
                with contextlib.suppress(psutil.Error):
                    t = p.cpu_times()
                    s += t.user + t.system
            out[name] = s
        return out

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@contextlib.contextmanager
def timed(watch: Watch, into: dict, key: str):
    """CPU use of each watched process during the block, as cores (CPU seconds per second)."""
    c0, t0 = watch.cpu(), time.monotonic()
    yield
    c1, wall = watch.cpu(), time.monotonic() - t0
    into[key] = {name: round((c1[name] - c0[name]) / wall, 3) for name in c0}


def rate(result: dict, phase: Phase) -> float:
    """OK acks per second between the end of the warm-up and the end of the phase."""
    t = result["ack_times"]
    lo, hi = phase.start + phase.warm, phase.end
    return float(((t >= lo) & (t < hi)).sum()) / (hi - lo)


def _child(arg: str) -> psutil.Process:
    for p in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if arg in p.cmdline():
                return p
    raise RuntimeError(f"no child process with {arg} on its command line")


def stored_points(addr: str | Endpoint, streams: int) -> float:
    """Points of every fleet metric in the store. A query may match at most 10,000 series, so a
    metric with more (over all hosts) is counted in parts, by the last digits of the host."""
    out = 0.0
    for name, per_host in collections.Counter(s.name for s in SERIES).items():
        digits = 0
        while per_host * streams / 10**digits > 9_000:
            digits += 1
        parts = [f"{i:0{digits}d}" for i in range(10**digits)] if digits else [""]
        for suffix in parts:
            matchers = (
                [query_pb2.Matcher(label="host", op=query_pb2.RE, value=f".*{suffix}")] if suffix else []
            )
            resp = query_range(
                addr, name, agg="count", window_ms=86_400_000, by=["__all__"], matchers=matchers
            )
            out += sum(v for s in resp.series for v in s.value)
    return out


def _phase_summary(r: dict) -> dict:
    return {k: v for k, v in r.items() if k not in ("ack_times", "latencies", "last_ack_by_worker")}


def run_ferry(
    streams: int = 1000,
    duration: float = 20.0,
    paced_duration: float = 15.0,
    warm: float = 3.0,
    workers: int = 2,
    window: int = WINDOW,
    frames: int | None = None,
    cap_frames_per_s: float = 10_000,
    latency_fraction: float = 0.5,
    streams_per_channel: int = 25,
    drain_timeout: float = 900.0,
    collector_args: tuple[str, ...] = (),
    secure: bool = False,
    principals: int = 10,
    paced: bool = True,
) -> dict:
    """The collector's side. `frames`: that many frames per stream for the max-rate phase (else
    as many as `cap_frames_per_s` for `duration` s could use; a stream that runs out stops).
    `secure`: TLS, mTLS and an auth file of `principals` (bench/pki.py); `paced`: False skips
    the latency phase (bench/security.py compares max rates only)."""
    per_stream = frames or math.ceil(cap_frames_per_s * duration / streams) + 1
    out: dict = {"streams": streams, "window": window, "points_per_frame": POINTS, "workers": workers}
    out["secure"] = f"tls, mtls, auth ({principals} principals)" if secure else "plaintext"
    with tempfile.TemporaryDirectory(prefix="fleet-") as tmp:
        limit = str(streams + 64)
        args = ("--max-streams", limit, "--max-streams-per-peer", limit, *collector_args)
        secrets = pki.make(Path(tmp) / "tls", principals) if secure else None
        if secrets is not None:
            args = (*args, *secrets.collector_flags())
        tls = secrets.client_tls() if secrets else None
        with collector_process(Path(tmp), *args, tls=tls) as addr:
            collector = _child(addr)
            spec = {
                "secrets": secrets,
                "addr": addr,
                "window": window,
                "streams": streams,
                "tag": f"{os.getpid()}",
                "t0_ms": int(time.time() * 1000) - PAST_MS,
                "streams_per_channel": streams_per_channel,
                "build": per_stream,
            }
            t_build = time.monotonic()
            pool = Pool("ferry", workers, streams, spec)
            out["build_s"] = round(time.monotonic() - t_build, 2)
            out["frames_built_per_stream"] = per_stream
            watch = Watch({"collector": [collector], "generator": pool.ps}, rss_of="collector")
            try:
                start = time.monotonic() + 1.0
                max_phase = Phase(start, start + duration, warm, timeout=drain_timeout)
                with timed(watch, out, "cpu_cores_max_phase"):
                    got = pool.phase(max_phase)
                out["max_phase"] = _phase_summary(got)
                # every stream's window is full at the end: that many frames are acked after it
                out["max_phase"]["drain_s"] = (
                    float(got["ack_times"].max() - max_phase.end) if got["ok"] else 0.0
                )
                out["max_phase"]["last_ack_by_worker"] = [
                    None if t is None else t - max_phase.end for t in got["last_ack_by_worker"]
                ]
                out["frames_per_s"] = rate(got, max_phase)
                out["points_per_s"] = out["frames_per_s"] * POINTS
                slow = None
                if paced:
                    slow = _paced_phase(
                        pool, watch, out, per_stream, streams, paced_duration, warm, drain_timeout,
                        latency_fraction,
                    )  # fmt: skip
            finally:
                pool.close()
                watch.stop()
            out["collector_rss_mb"] = watch.peak_rss / 2**20
            acked = sum(r["ok"] + r["dup"] for r in (got, slow) if r is not None)
            out["acked_frames"] = acked
            out["acked_points"] = acked * POINTS
            out["stored_points"] = stored_points(secrets.query_endpoint(addr) if secrets else addr, streams)
            out["stored_ok"] = out["stored_points"] == out["acked_points"]
            out["generator_build_cpu_s"] = round(pool.build_cpu_s, 2)
    return out


def _paced_phase(
    pool: Pool,
    watch: Watch,
    out: dict,
    per_stream: int,
    streams: int,
    paced_duration: float,
    warm: float,
    drain_timeout: float,
    latency_fraction: float = 0.5,
) -> dict:
    """The latency phase: each stream paced at `latency_fraction` of the maximum; its figures
    go into `out`, its tally is returned."""
    target = latency_fraction * out["frames_per_s"]
    interval = streams / target if target > 0 else paced_duration
    need = math.ceil(paced_duration / interval) + 2
    pool.call("build", per_stream + need, "built")
    start = time.monotonic() + 1.0
    paced = Phase(start, start + paced_duration, min(warm, paced_duration / 4), interval, drain_timeout)
    with timed(watch, out, "cpu_cores_paced_phase"):
        slow = pool.phase(paced)
    out["paced_phase"] = _phase_summary(slow)
    out["paced_target_frames_per_s"] = target
    out["paced_frames_per_s"] = rate(slow, paced)
    lat = slow["latencies"]
    out["ack_p50_ms"] = float(np.percentile(lat, 50) * 1000) if lat.size else None
    out["ack_p99_ms"] = float(np.percentile(lat, 99) * 1000) if lat.size else None
    out["latency_samples"] = int(lat.size)
    return slow


def run_prometheus(
    streams: int = 1000,
    duration: float = 15.0,
    warm: float = 3.0,
    workers: int = 2,
    large_conns: int = 8,
    large_hosts: int = 7,
    large_samples: int = 10,
    large_duration: float = 15.0,
    cap_requests_per_s: float = 12_000,
    cap_large_samples_per_s: float = 4_000_000,
) -> dict:
    """Prometheus's side: small (300-sample) requests from `streams` connections, then large
    requests (`large_hosts` x 300 series x `large_samples` samples) from `large_conns`."""
    out: dict = {}
    try:
        with (
            tempfile.TemporaryDirectory(prefix="fleet-prom-") as tmp,
            prometheus.server(Path(tmp), max(512, streams + 64)) as srv,
        ):
            out["version"] = srv.version
            server = psutil.Process(srv.proc.pid)
            t0_ms = int(time.time() * 1000) - PAST_MS
            plan = (
                ("small", streams, 1, 1, duration, math.ceil(cap_requests_per_s * duration / streams) + 1),
                (
                    "large",
                    large_conns,
                    large_hosts,
                    large_samples,
                    large_duration,
                    math.ceil(
                        cap_large_samples_per_s
                        * large_duration
                        / (large_conns * large_hosts * POINTS * large_samples)
                    )
                    + 1,
                ),
            )
            expected = 0
            for name, conns, hosts, samples, secs, per_conn in plan:
                spec = {
                    "addr": srv.address,
                    "tag": f"prom{name}",
                    "t0_ms": t0_ms,
                    "hosts_per_request": hosts,
                    "samples_per_series": samples,
                    "build": per_conn,
                }
                pool = Pool("prometheus", workers, conns, spec)
                watch = Watch({"prometheus": [server], "generator": pool.ps}, rss_of="prometheus")
                part: dict = {"connections": conns, "samples_per_request": hosts * POINTS * samples}
                part["requests_built_per_connection"] = per_conn
                try:
                    start = time.monotonic() + 1.0
                    phase = Phase(start, start + secs, warm)
                    with timed(watch, part, "cpu_cores"):
                        got = pool.phase(phase)
                finally:
                    pool.close()
                    watch.stop()
                part.update(_phase_summary(got))
                part["requests_per_s"] = rate(got, phase)
                part["samples_per_s"] = part["requests_per_s"] * part["samples_per_request"]
                part["rss_mb"] = watch.peak_rss / 2**20
                expected += got["ok"] * part["samples_per_request"]
                out[name] = part
            out["acked_samples"] = expected
            out["stored_samples"] = srv.samples_appended()
            out["stored_ok"] = out["stored_samples"] == expected
    except prometheus.Unavailable as exc:
        return {"skipped": str(exc)}
    return out


FIGURES = (  # what bench/run.py prints (fleet_stored_ok besides)
    "fleet_frames_per_s",
    "fleet_points_per_s",
    "fleet_ack_p50_ms",
    "fleet_ack_p99_ms",
    "fleet_collector_rss_mb",
    "prometheus_small_requests_per_s",
    "prometheus_large_samples_per_s",
    "fleet_vs_prometheus",
)

SETTINGS = {
    False: {"streams": 1000, "duration": 20.0, "paced_duration": 15.0, "prom_duration": 15.0, "warm": 3.0},
    True: {"streams": 200, "duration": 6.0, "paced_duration": 5.0, "prom_duration": 5.0, "warm": 1.5},
}


def run(
    quick: bool = False,
    with_prometheus: bool = True,
    workers: int = 2,
    collector_args: tuple[str, ...] = (),
    secure: bool = False,
    principals: int = 10,
) -> dict:
    s = SETTINGS[quick]
    ferry = run_ferry(
        s["streams"], s["duration"], s["paced_duration"], s["warm"], workers, collector_args=collector_args,
        secure=secure, principals=principals,
    )  # fmt: skip
    out = {
        "fleet_frames_per_s": ferry["frames_per_s"],
        "fleet_points_per_s": ferry["points_per_s"],
        "fleet_ack_p50_ms": ferry["ack_p50_ms"],
        "fleet_ack_p99_ms": ferry["ack_p99_ms"],
        "fleet_collector_rss_mb": ferry["collector_rss_mb"],
        "fleet_stored_ok": ferry["stored_ok"],
        "fleet_streams": ferry["streams"],
        "fleet": ferry,
    }
    if with_prometheus:
        prom = run_prometheus(
            s["streams"], s["prom_duration"], s["warm"], workers, large_duration=s["prom_duration"]
        )
        out["fleet_prometheus"] = prom
        if "skipped" in prom:
            print(f"prometheus skipped: {prom['skipped']}")
        else:
            out["prometheus_small_requests_per_s"] = prom["small"]["requests_per_s"]
            out["prometheus_large_samples_per_s"] = prom["large"]["samples_per_s"]
            out["fleet_vs_prometheus"] = ferry["frames_per_s"] / prom["small"]["requests_per_s"]
    return out


def print_table(r: dict) -> None:
    f = r["fleet"]
    rows = [
        ("streams (window)", f"{f['streams']} ({f['window']})"),
        ("transport", f["secure"]),
        ("frames/s acked, max", f"{f['frames_per_s']:,.0f}"),
        ("points/s acked, max", f"{f['points_per_s']:,.0f}"),
        ("drain after the max phase (s)", f"{f['max_phase']['drain_s']:,.1f}"),
        ("paced at (frames/s)", f"{f['paced_frames_per_s']:,.0f} of {f['paced_target_frames_per_s']:,.0f}"),
        ("ack p50 / p99 (ms)", f"{f['ack_p50_ms'] or 0:,.1f} / {f['ack_p99_ms'] or 0:,.1f}"),
        ("collector peak RSS (MB)", f"{f['collector_rss_mb']:,.0f}"),
        ("stored == acked points", f"{f['stored_points']:,.0f} == {f['acked_points']:,} {f['stored_ok']}"),
        ("cpu cores, max phase", str(f["cpu_cores_max_phase"])),
        ("cpu cores, paced phase", str(f["cpu_cores_paced_phase"])),
    ]
    if f["max_phase"]["ran_out"]:
        rows.append(("note", f"{f['max_phase']['ran_out']} streams ran out of frames: rate capped"))
    prom = r.get("fleet_prometheus", {})
    if prom and "skipped" not in prom:
        for name in ("small", "large"):
            p = prom[name]
            rows.append(
                (
                    f"prometheus {name} ({p['samples_per_request']:,}/req, {p['connections']} conns)",
                    f"{p['requests_per_s']:,.0f} req/s, {p['samples_per_s']:,.0f} samples/s, "
                    f"cpu {p['cpu_cores']}",
                )
            )
        rows.append(
            ("prometheus stored == acked", f"{prom['stored_samples']:,.0f} == {prom['acked_samples']:,}")
        )
        rows.append(("ferry frames/s / prometheus req/s", f"{r['fleet_vs_prometheus']:.2f}"))
    elif prom:
        rows.append(("prometheus", f"skipped: {prom['skipped']}"))
    for k, v in rows:
        print(f"{k:42} {v}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-prometheus", action="store_true")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--collector-args", default="", help="more flags for ferry-collector, e.g. '--writers 1'")
    p.add_argument("--secure", action="store_true", help="TLS, mTLS and an auth file (bench/pki.py)")
    p.add_argument("--principals", type=int, default=10, help="--secure: ingest principals (1, 10, 100...)")
    a = p.parse_args()
    r = run(a.quick, not a.no_prometheus, a.workers, tuple(a.collector_args.split()), a.secure, a.principals)
    print_table(r)


if __name__ == "__main__":
    main()
