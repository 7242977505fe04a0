"""Block devices from /proc/diskstats: bytes, operations, time, merges and queue depth."""

from __future__ import annotations

import re
from pathlib import Path

from ferry.agent import catalogue as c
from ferry.agent.collectors.base import Emit, HostEnv, ProcText, SeriesCache
from ferry.series import SeriesDef

SECTOR = 512  # /proc/diskstats counts 512-byte sectors whatever the device's own sector size
# loop and ram devices mirror files and memory, not disks: skipped unless configured otherwise
DEFAULT_EXCLUDE = re.compile(r"(loop|ram)\d+")
_UNSEEN = object()


class DiskCollector:
    name = "disk"

    def __init__(self, proc_root: Path, exclude: re.Pattern[str] = DEFAULT_EXCLUDE):
        self.proc = proc_root
        self.read = ProcText(proc_root)
        self.exclude = exclude
        self.s = SeriesCache()
        self._devices: dict[str, tuple[SeriesDef, ...] | None] = {}  # None: excluded

    def close(self) -> None:
        self.read.close()

    def collect(self, time_ms: int, emit: Emit) -> None:
        text = self.read("diskstats")
        if text is None:
            return
        devices = self._devices
        for line in text.splitlines():
            f = line.split()
            if len(f) < 14:
                continue
            dev = f[2]
            s = devices.get(dev, _UNSEEN)
            if s is _UNSEEN:
                s = devices[dev] = None if self.exclude.fullmatch(dev) else self._series_of(dev)
            if s is None:
                continue
            # reads: completed, merged, sectors, ms; writes: the same; in progress; ms doing I/O
            r_ops, r_merged, r_sect, r_ms, w_ops, w_merged, w_sect, w_ms, pending, io_ms = map(int, f[3:13])
            emit(s[0], float(r_sect * SECTOR))
            emit(s[1], float(w_sect * SECTOR))
            emit(s[2], float(r_ops))
            emit(s[3], float(w_ops))
            emit(s[4], r_ms / 1000)
            emit(s[5], w_ms / 1000)
            emit(s[6], float(r_merged))
            emit(s[7], float(w_merged))
            emit(s[8], io_ms / 1000)
            emit(s[9], float(pending))

    def _series_of(self, dev: str) -> tuple[SeriesDef, ...]:
        """A device's series in the order `collect` emits them, looked up once per device."""
        s = self.s
        return (
            s(c.DISK_IO, dev, "read"),
            s(c.DISK_IO, dev, "write"),
            s(c.DISK_OPERATIONS, dev, "read"),
            s(c.DISK_OPERATIONS, dev, "write"),
            s(c.DISK_OPERATION_TIME, dev, "read"),
            s(c.DISK_OPERATION_TIME, dev, "write"),
            s(c.DISK_MERGED, dev, "read"),
            s(c.DISK_MERGED, dev, "write"),
            s(c.DISK_IO_TIME, dev),
            s(c.DISK_PENDING, dev),
        )


def build(cfg: object, env: HostEnv) -> DiskCollector:
    return DiskCollector(env.proc_root)  # nothing to configure
