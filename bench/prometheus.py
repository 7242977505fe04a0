"""Prometheus 2.x as the yardstick of bench/fleet.py: the server (Debian package `prometheus`,
installed with apt-get when missing and we are root), remote-write 1.0 requests and their sender.

A request is a `prometheus.WriteRequest` (WriteRequest{repeated TimeSeries timeseries = 1},
TimeSeries{repeated Label labels = 1; repeated Sample samples = 2}, Label{string name = 1;
string value = 2}, Sample{double value = 1; int64 timestamp = 2}), snappy block-compressed.
Every request of one sender has the same series and as many samples, and every timestamp of
this era is a 6-byte varint, so a sender's requests share one byte layout: `RequestTemplate`
encodes the labels once and writes each request's values and timestamps into it with numpy
(`check_encoding` compares it with what protobuf itself serializes).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cramjam
import numpy as np

from ferry.collector.devrun import free_port

BINARY = "/usr/bin/prometheus"
WRITE_PATH = "/api/v1/write"


class Unavailable(RuntimeError):
    """Prometheus cannot be run here; the message is the reason printed instead of its figures."""


def binary() -> str:
    """The prometheus executable, installing the Debian package when it is missing."""
    found = shutil.which("prometheus") or (BINARY if os.path.exists(BINARY) else None)
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise Unavailable("no prometheus binary, and apt-get cannot install one here (not root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", "prometheus"]
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"apt-get install prometheus failed: {exc}") from None
    if done.returncode != 0 or not os.path.exists(BINARY):
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["?"]
        raise Unavailable(f"apt-get install prometheus failed ({done.returncode}): {tail[0]}")
    return BINARY


def version(exe: str) -> str:
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
    return (out.stdout or out.stderr).splitlines()[0].strip()


@dataclass
class Server:
    address: str  # 127.0.0.1:PORT
    proc: subprocess.Popen
    version: str

    def samples_appended(self) -> float:
        """prometheus_tsdb_head_samples_appended_total, summed over its label sets: every sample
        the head took (there are no scrape jobs, so every one of them is ours)."""
        with urllib.request.urlopen(f"http://{self.address}/metrics", timeout=30) as resp:
            text = resp.read().decode()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("prometheus_tsdb_head_samples_appended_total")
        )


@contextlib.contextmanager
def server(workdir: Path, max_connections: int = 512) -> Iterator[Server]:
    """A Prometheus with no scrape jobs, its TSDB in `workdir`, taking remote writes on loopback.

    `max_connections`: --web.max-connections (512 by default); the server leaves any connection
    past it unread (accepted by the kernel, never served), so it must exceed the senders."""
    exe = binary()
    help_text = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=30)
    if "--web.enable-remote-write-receiver" in help_text.stdout + help_text.stderr:
        receiver = ["--web.enable-remote-write-receiver"]
    else:
        receiver = ["--enable-feature=remote-write-receiver"]
    config = workdir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1h\nscrape_configs: []\n")
    address = f"127.0.0.1:{free_port()}"
    log = (workdir / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            exe,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address={address}",
            "--log.level=warn",
            f"--web.max-connections={max_connections}",
            *receiver,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise Unavailable(f"prometheus exited with {proc.returncode}: {_tail(workdir)}")
            try:
                with urllib.request.urlopen(f"http://{address}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise Unavailable(f"prometheus not ready on {address} after 60 s: {_tail(workdir)}")
            time.sleep(0.2)
        yield Server(address, proc, version(exe))
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _tail(workdir: Path) -> str:
    with contextlib.suppress(OSError):
        return (workdir / "prometheus.log").read_text()[-400:].strip()
    return "?"


# -- remote-write 1.0 encoding ------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _ld(field: int, data: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(data)) + data


TS_BYTES = 6  # unix ms from 2004 to 2109 is a 6-byte varint
_SAMPLE = b"\x12\x10\x09" + bytes(8) + b"\x10" + bytes(TS_BYTES)  # samples=2 {value=1 timestamp=2}
_U8 = np.uint8


def prom_name(name: str) -> str:
    """A Ferry metric name in Prometheus's alphabet ([a-zA-Z_:][a-zA-Z0-9_:]*)."""
    return name.replace(".", "_").replace("-", "_")


class RequestTemplate:
    """The byte layout shared by every request of one sender: `label_sets` (one per series, as
    (name, value) pairs with __name__ among them) with `samples` samples each."""

    def __init__(self, label_sets: Sequence[Sequence[tuple[str, str]]], samples: int = 1):
        self.series = len(label_sets)
        self.samples_per_series = samples
        parts, value_at, ts_at = [], [], []
        pos = 0
        for labels in label_sets:
            body = b"".join(_ld(1, _ld(1, k.encode()) + _ld(2, v.encode())) for k, v in sorted(labels))
            ts = _ld(1, body + _SAMPLE * samples)
            first = pos + len(ts) - len(_SAMPLE) * samples
            for j in range(samples):
                value_at.append(first + j * len(_SAMPLE) + 3)
                ts_at.append(first + j * len(_SAMPLE) + 12)
            parts.append(ts)
            pos += len(ts)
        self.template = np.frombuffer(b"".join(parts), dtype=_U8).copy()
        self._value_idx = (np.asarray(value_at)[:, None] + np.arange(8)).ravel()
        self._ts_idx = (np.asarray(ts_at)[:, None] + np.arange(TS_BYTES)).ravel()

    @property
    def points(self) -> int:
        return self.series * self.samples_per_series

    def encode(self, time_ms: np.ndarray, value: np.ndarray) -> bytes:
        """The WriteRequest bytes (uncompressed): series-major, `samples` consecutive samples of
        each series (time_ms and value have `points` entries in that order)."""
        buf = self.template.copy()
        buf[self._value_idx] = np.ascontiguousarray(value, dtype="<f8").view(_U8)
        t = np.asarray(time_ms, dtype=np.int64)
        if t.min() < 1 << 35 or t.max() >= 1 << 42:
            raise ValueError("timestamps outside the 6-byte varint range")
        ts = np.empty((t.shape[0], TS_BYTES), dtype=_U8)
        for i in range(TS_BYTES - 1):
            ts[:, i] = ((t >> (7 * i)) & 0x7F) | 0x80
        ts[:, TS_BYTES - 1] = t >> (7 * (TS_BYTES - 1))
        buf[self._ts_idx] = ts.ravel()
        return buf.tobytes()


def compress(raw: bytes) -> bytes:
    return bytes(cramjam.snappy.compress_raw(raw))


def check_encoding(template: RequestTemplate, label_sets, time_ms: np.ndarray, value: np.ndarray) -> None:
    """Raise unless `template.encode` gives exactly what protobuf serializes for the same request
    (the WriteRequest schema built at run time; no .proto file or generated module needed)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    f = descriptor_pb2.FileDescriptorProto(name="fleet_prometheus.proto", package="prometheus")
    T = descriptor_pb2.FieldDescriptorProto

    def msg(name: str, *fields: tuple[str, int, int, str]) -> None:
        m = f.message_type.add(name=name)
        for fname, number, ftype, type_name in fields:
            if type_name:
                m.field.add(
                    name=fname, number=number, type=ftype, label=T.LABEL_REPEATED, type_name=type_name
                )
            else:
                m.field.add(name=fname, number=number, type=ftype, label=T.LABEL_OPTIONAL)

    msg("Label", ("name", 1, T.TYPE_STRING, ""), ("value", 2, T.TYPE_STRING, ""))
    msg("Sample", ("value", 1, T.TYPE_DOUBLE, ""), ("timestamp", 2, T.TYPE_INT64, ""))
    msg(
        "TimeSeries",
        ("labels", 1, T.TYPE_MESSAGE, ".prometheus.Label"),
        ("samples", 2, T.TYPE_MESSAGE, ".prometheus.Sample"),
    )
    msg("WriteRequest", ("timeseries", 1, T.TYPE_MESSAGE, ".prometheus.TimeSeries"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    WriteRequest = message_factory.GetMessageClass(pool.FindMessageTypeByName("prometheus.WriteRequest"))
    req = WriteRequest()
    k = template.samples_per_series
    for s, labels in enumerate(label_sets):
        series = req.timeseries.add()
        for name, val in sorted(labels):
            series.labels.add(name=name, value=val)
        for j in range(k):
            series.samples.add(value=float(value[s * k + j]), timestamp=int(time_ms[s * k + j]))
    if req.SerializeToString() != template.encode(time_ms, value):
        raise AssertionError("RequestTemplate bytes differ from protobuf's WriteRequest")


# -- the sender ---------------------------------------------------------------------------------


class HttpError(RuntimeError):
    pass


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length, chunked = 0, False
    for line in head.split(b"\r\n")[1:]:
        key, _, val = line.partition(b":")
        key = key.strip().lower()
        if key == b"content-length":
            length = int(val)
        elif key == b"transfer-encoding" and b"chunked" in val.lower():
            chunked = True
    if chunked:
        body = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            data = await reader.readexactly(size + 2)  # the chunk and its CRLF (no trailers)
            if size == 0:
                return status, bytes(body)
            body += data[:-2]
    return status, (await reader.readexactly(length)) if length else b""


class Connection:
    """One keep-alive HTTP/1.1 connection posting remote-write requests, one at a time (a
    Prometheus remote-write shard has one request in flight)."""

    def __init__(self, address: str):
        self.host, port = address.rsplit(":", 1)
        self.port = int(port)
        self.address = address
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def post(self, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            await self.open()
        head = (
            f"POST {WRITE_PATH} HTTP/1.1\r\nHost: {self.address}\r\nUser-Agent: ferry-fleet-bench\r\n"
            "Content-Encoding: snappy\r\nContent-Type: application/x-protobuf\r\n"
            f"X-Prometheus-Remote-Write-Version: 0.1.0\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.writelines((head, body))
        try:
            return await _response(self.reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            await self.close()
            raise

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        self.reader = self.writer = None
