"""Block devices from /proc/diskstats: bytes, operations, time, merges and queue depth."""

from __future__ import annotations

import re
from pathlib import Path

from agent import catalogue as c
from agent.collectors.base import Emit, ProcText, SeriesCache

SECTOR = 512  # /proc/diskstats counts 512-byte sectors whatever the device's own sector size
# loop and ram devices mirror files and memory, not disks: skipped unless configured otherwise
DEFAULT_EXCLUDE = re.compile(r"(loop|ram)\d+")


class DiskCollector:
    name = "disk"

    def __init__(self, proc_root: Path, exclude: re.Pattern[str] = DEFAULT_EXCLUDE):
        self.proc = proc_root
        self.read = ProcText(proc_root)
        self.exclude = exclude
        self.s = SeriesCache()

    def close(self) -> None:
        self.read.close()

    def collect(self, time_ms: int, emit: Emit) -> None:
        text = self.read("diskstats")
        if text is None:
            return
        s = self.s
        for line in text.splitlines():
            f = line.split()
            if len(f) < 14 or self.exclude.fullmatch(f[2]):
                continue
            dev = f[2]
            # reads: completed, merged, sectors, ms; writes: the same; in progress; ms doing I/O
            r_ops, r_merged, r_sect, r_ms, w_ops, w_merged, w_sect, w_ms, pending, io_ms = map(int, f[3:13])
            emit(s(c.DISK_IO, dev, "read"), float(r_sect * SECTOR))
            emit(s(c.DISK_IO, dev, "write"), float(w_sect * SECTOR))
            emit(s(c.DISK_OPERATIONS, dev, "read"), float(r_ops))
            emit(s(c.DISK_OPERATIONS, dev, "write"), float(w_ops))
            emit(s(c.DISK_OPERATION_TIME, dev, "read"), r_ms / 1000)
            emit(s(c.DISK_OPERATION_TIME, dev, "write"), w_ms / 1000)
            emit(s(c.DISK_MERGED, dev, "read"), float(r_merged))
            emit(s(c.DISK_MERGED, dev, "write"), float(w_merged))
            emit(s(c.DISK_IO_TIME, dev), io_ms / 1000)
            emit(s(c.DISK_PENDING, dev), float(pending))
