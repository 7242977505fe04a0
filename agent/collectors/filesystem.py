"""Mounted filesystems from /proc/mounts and statvfs: bytes, inodes and utilization.

Utilization is `ratio(used, used + free)`: rounded to RATIO_DECIMALS (4) places, 0.01
percentage points (10 MB of a 100 GB filesystem). The bytes stay exact in
system.filesystem.usage; the digits past the fourth carry nothing a reader of a ratio uses, and
a full float64 costs the store bytes for each point (docs/storage.md, Compression).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ferry.agent import catalogue as c
from ferry.agent.collectors.base import Emit, HostEnv, ProcText, SeriesCache
from ferry.runtime.config import setting

# not disks: skipped unless the configuration says otherwise
PSEUDO_FS = frozenset(
    {
        "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts", "devtmpfs",
        "efivarfs", "fusectl", "hugetlbfs", "mqueue", "nsfs", "overlay", "proc", "pstore", "ramfs",
        "rpc_pipefs", "securityfs", "selinuxfs", "squashfs", "sysfs", "tmpfs", "tracefs", "fuse.lxcfs",
        "fuse.gvfsd-fuse", "fuse.portal", "nfsd",
    }
)  # fmt: skip

RATIO_DECIMALS = 4
RATIO_SCALE = 10**RATIO_DECIMALS


def ratio(part: float, whole: float, scale: int = RATIO_SCALE) -> float:
    """`part / whole` rounded to 1/`scale` (half to even): the double nearest 0.1234, not 0.12341..."""
    return round(part / whole * scale) / scale


class FilesystemCollector:
    name = "filesystem"

    def __init__(
        self,
        proc_root: Path,
        statvfs: Callable[[str], os.statvfs_result] = os.statvfs,
        exclude_fs_types: frozenset[str] = PSEUDO_FS,
    ):
        self.proc = proc_root
        self.read = ProcText(proc_root)
        self.statvfs = statvfs
        self.exclude_fs_types = exclude_fs_types
        self.s = SeriesCache()

    def close(self) -> None:
        self.read.close()

    def collect(self, time_ms: int, emit: Emit) -> None:
        text = self.read("mounts")
        if text is None:
            return
        s = self.s
        # a later mount on the same mountpoint hides the earlier one: statvfs sees the last
        visible: dict[str, tuple[str, str, str]] = {}
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 4:
                visible[_unescape(parts[1])] = (parts[0], parts[2], parts[3])
        for mountpoint, (device, fstype, options) in visible.items():
            if fstype in self.exclude_fs_types:
                continue
            try:
                st = self.statvfs(mountpoint)
            except OSError:
                continue
            mode = "ro" if "ro" in options.split(",") else "rw"
            size = st.f_frsize
            used = (st.f_blocks - st.f_bfree) * size
            free = st.f_bavail * size
            values = {"used": used, "free": free, "reserved": (st.f_bfree - st.f_bavail) * size}
            for state, v in values.items():
                emit(s(c.FILESYSTEM_USAGE, device, mode, mountpoint, state, fstype), float(v))
            files = getattr(st, "f_files", 0)
            if files:
                ffree = st.f_ffree
                emit(s(c.FILESYSTEM_INODES, device, mode, mountpoint, "used", fstype), float(files - ffree))
                emit(s(c.FILESYSTEM_INODES, device, mode, mountpoint, "free", fstype), float(ffree))
            if used + free:
                emit(s(c.FILESYSTEM_UTILIZATION, device, mode, mountpoint, fstype), ratio(used, used + free))


def _unescape(path: str) -> str:
    """/proc/mounts escapes space, tab, newline and backslash as octal."""
    return path.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


@dataclass
class FilesystemConfig:
    """The filesystem collector."""

    filesystem_exclude_types: list = setting(
        sorted(PSEUDO_FS),
        "names",
        "filesystem types the filesystem collector skips (default: pseudo filesystems)",
        metavar="TYPE[,TYPE...]",
    )


def build(cfg: FilesystemConfig, env: HostEnv) -> FilesystemCollector:
    return FilesystemCollector(env.proc_root, env.statvfs, frozenset(cfg.filesystem_exclude_types))
