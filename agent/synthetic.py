"""`--synthetic RATE:TOTAL`: points numbered 0..TOTAL-1 of the DELTA series `ferry_synthetic`.

For tests and benchmarks of delivery (bench/ingest.py). Each point has value 1 and label shard
= n % 4. An ordinary source on the pipeline thread's schedule (`step`), through the batcher:
frames are cut at `batch_max_points` or `batch_max_age` as for any source, and once more when
TOTAL is reached. RATE 0 means as fast as the spool takes frames; host collectors, checks and
scrape targets do not run in this mode.

Exactly TOTAL points across any crash: the source is the batcher's sink while it runs, and with
each frame it appends it records its progress (the frame's epoch and seq, and the points
produced up to it) in `<spool>/synthetic`, in one fixed-width write in place, holding the
spool's lock so no frame is sent before its record is written. An agent restarted on the same
spool starts from that progress plus the synthetic points of any frame spooled after the
recorded one (a kill between the append and the record). The record is not fsynced: after a
power loss it may lag and some points come twice.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from array import array
from dataclasses import dataclass
from pathlib import Path

from ferry.agent import selfmetrics as m
from ferry.agent.batcher import Batcher
from ferry.agent.spool import Spool, SpoolError
from ferry.runtime.config import ConfigError, setting
from ferry.series import DELTA, SeriesDef
from ferry.v1 import ingest_pb2, payload_pb2
from ferry.wire.frames import FrameLimits, open_frame

NAME = "ferry_synthetic"
SHARDS = 4
SERIES = [SeriesDef(NAME, DELTA, "1", (("shard", str(i)),)) for i in range(SHARDS)]
PROGRESS_FILE = "synthetic"
PACE_S = 0.05  # with a RATE, the points due are added this often
REPLACES = frozenset(("collectors", "checks", "scrape"))  # the sources that do not run beside it


def parse_spec(text: str, what: str = "--synthetic") -> tuple[float, int]:
    rate, sep, total = text.partition(":")
    try:
        if not sep:
            raise ValueError
        r, t = float(rate), int(total)
    except ValueError:
        raise ConfigError(
            f"{what}: {text!r} is not RATE:TOTAL (points/s, 0 = unlimited : point count)"
        ) from None
    if r < 0 or t < 0:
        raise ConfigError(f"{what}: {text!r}: RATE and TOTAL must be >= 0")
    return r, t


@dataclass
class SyntheticConfig:
    """The synthetic source (tests and benchmarks)."""

    synthetic: str = setting(
        "",
        "str",
        "RATE:TOTAL: emit TOTAL ferry_synthetic points at RATE/s "
        "(0 = unlimited) instead of host metrics; resumes from the spool",
        metavar="RATE:TOTAL",
    )

    def check(self) -> None:
        if self.synthetic:
            parse_spec(self.synthetic)


class SyntheticSource:
    name = "synthetic"

    def __init__(self, rate: float, total: int, spool: Spool):
        self.rate, self.total = rate, total
        self.spool = spool
        self.path = Path(spool.dir) / PROGRESS_FILE
        self.produced = self._resume()
        self._base = self.produced
        self._started: float | None = None
        self._fd: int | None = None

    def _resume(self) -> int:
        """The progress recorded with the last frame, plus that of frames spooled after it."""
        try:
            epoch, seq, produced = (int(x) for x in self.path.read_text().split())
        except FileNotFoundError:
            epoch, seq, produced = 0, 0, 0
        except ValueError as exc:
            raise SpoolError(f"{self.path}: unreadable synthetic progress ({exc}); remove it") from None
        frames = self.spool.frames()
        ids = [(f.epoch, f.seq) for f in frames]
        after = frames[ids.index((epoch, seq)) + 1 :] if (epoch, seq) in ids else frames
        return min(self.total, produced + sum(synthetic_points(f) for f in after))

    def append(self, payload: bytes, point_count: int) -> ingest_pb2.Frame:
        """The batcher's sink while this source runs: the spool's append, and the progress."""
        with self.spool.lock:
            frame = self.spool.append(payload, point_count)
            # one write of a fixed-width record in place: a kill lands before or after it, and
            # it costs microseconds where a rename costs a millisecond a frame here
            record = f"{frame.epoch:20d} {frame.seq:20d} {self.produced:20d}\n".encode()
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
            os.pwrite(self._fd, record, 0)
        return frame

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def step(self, batcher: Batcher, now: float) -> float | None:
        if self.produced >= self.total:
            return None
        if self._started is None:
            self._started = now
        due = (
            self.total
            if self.rate == 0
            else min(self.total, self._base + int((now - self._started) * self.rate))
        )
        n = min(due - self.produced, batcher.max_points - len(batcher))  # fill the open frame, no more
        if n > 0:
            self._add(batcher, n)
        if self.produced >= self.total:
            batcher.cut()  # done: the last frame need not wait for its age
            return None
        if self.produced < due:
            return now  # a frame was cut with more due: again after any job waiting
        return now + min(PACE_S, batcher.max_age_ms / 1000)

    def _add(self, batcher: Batcher, n: int) -> None:
        first = self.produced
        runs = []
        for shard, series in enumerate(SERIES):
            k = len(range((shard - first) % SHARDS, n, SHARDS))  # numbers n with n % SHARDS == shard
            if k:
                runs.append((series, array("d", [1.0]) * k))
        self.produced += n  # before the batcher may cut: a frame's progress counts its own points
        batcher.add_runs(int(time.time() * 1000), runs)
        m.SYNTHETIC_POINTS.inc(n)


def synthetic_points(frame: ingest_pb2.Frame) -> int:
    """How many `ferry_synthetic` points a spooled frame holds."""
    payload = payload_pb2.Payload()
    payload.ParseFromString(open_frame(frame, FrameLimits()))
    columns = payload.metrics
    ours = {i for i, s in enumerate(columns.series) if s.name == NAME}
    if not ours:
        return 0
    if len(ours) == len(columns.series):
        return columns.point_count
    if columns.series_ref_delta:
        refs = array("i")
        refs.frombytes(columns.series_ref_delta)
    else:
        refs = array("I")
        refs.frombytes(columns.series_ref)
    if sys.byteorder != "little":
        refs.byteswap()
    if columns.series_ref_delta:
        refs = itertools.accumulate(refs)
    return sum(1 for r in refs if r in ours)


def build(cfg: SyntheticConfig, spool: Spool) -> SyntheticSource | None:
    """The source when `synthetic` is set (it then replaces the host collectors, checks and
    scrape targets), else None."""
    if not cfg.synthetic:
        return None
    rate, total = parse_spec(cfg.synthetic)
    return SyntheticSource(rate, total, spool)
