"""Disk, paging, uptime, processes, inodes, utilization and TCP connections from fixture /proc files."""

from __future__ import annotations

import os
import time
from collections import namedtuple
from pathlib import Path

from ferry.agent import catalogue as c
from ferry.agent.collectors.disk import DiskCollector
from ferry.agent.collectors.filesystem import FilesystemCollector
from ferry.agent.collectors.network import NetworkCollector
from ferry.agent.collectors.system import CpuMemoryCollector, SystemCollector

DISKSTATS = """\
   7       0 loop0 10 0 20 0 0 0 0 0 0 0 0 0 0 0 0 0 0
   8       0 sda 100 5 2000 300 50 7 1000 900 2 1200 1500 0 0 0 0 0 0
 253       0 dm-0 11 0 88 12 3 0 24 5 0 16 17 0 0 0 0 0 0
"""
SWAPS = """\
Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority
/dev/sda2                               partition\t1048572\t\t1024\t\t-2
"""
VMSTAT = "pgpgin 700\npgpgout 580\npswpin 3\npswpout 4\npgfault 27897\npgmajfault 63\n"
TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1120 1
   1: 0100007F:483F 0100007F:9E8E 06 00000000:00000000 03:00000A8D 00000000     0        0 0 3
   2: 0100007F:483F 0100007F:9E8F 01 00000000:00000000 00:00000000 00000000     0        0 0 3
"""
TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000
"""


def points(collector) -> dict[tuple, float]:
    out = {}
    collector.collect(0, lambda s, v: out.__setitem__((s.name, s.labels), v))
    return out


def test_disks_exact_and_loop_devices_skipped(tmp_path):
    (tmp_path / "diskstats").write_text(DISKSTATS)
    p = points(DiskCollector(tmp_path))
    assert {dict(k[1])["device"] for k in p} == {"sda", "dm-0"}
    sda = lambda metric, *extra: p[(metric.name, (("device", "sda"), *extra))]  # noqa: E731
    assert sda(c.DISK_IO, ("direction", "read")) == 2000 * 512
    assert sda(c.DISK_IO, ("direction", "write")) == 1000 * 512
    assert sda(c.DISK_OPERATIONS, ("direction", "read")) == 100
    assert sda(c.DISK_MERGED, ("direction", "write")) == 7
    assert sda(c.DISK_OPERATION_TIME, ("direction", "write")) == 0.9
    assert sda(c.DISK_IO_TIME) == 1.2
    assert sda(c.DISK_PENDING) == 2


def test_paging_processes_uptime(tmp_path):
    (tmp_path / "stat").write_text("cpu0 1 2 3 4 5 6 7 8\nprocesses 4242\nprocs_running 3\nprocs_blocked 1\n")
    (tmp_path / "meminfo").write_text("MemTotal: 100 kB\nMemFree: 40 kB\n")
    (tmp_path / "loadavg").write_text("0.5 0.25 0.125 1/100 99\n")
    (tmp_path / "uptime").write_text("5517.12 8620.82\n")
    (tmp_path / "swaps").write_text(SWAPS)
    (tmp_path / "vmstat").write_text(VMSTAT)
    p = points(CpuMemoryCollector(tmp_path))
    assert p[(c.PAGING_USAGE.name, (("device", "/dev/sda2"), ("state", "used")))] == 1024 * 1024
    assert p[(c.PAGING_USAGE.name, (("device", "/dev/sda2"), ("state", "free")))] == (1048572 - 1024) * 1024
    assert p[(c.PAGING_OPERATIONS.name, (("direction", "page_in"), ("type", "major")))] == 3
    assert p[(c.PAGING_OPERATIONS.name, (("direction", "page_out"), ("type", "minor")))] == 580
    assert p[(c.PAGING_FAULTS.name, (("type", "major"),))] == 63
    assert p[(c.PAGING_FAULTS.name, (("type", "minor"),))] == 27897 - 63
    assert p[(c.PROCESSES_CREATED.name, ())] == 4242
    assert p[(c.UPTIME.name, ())] == 5517.12


def test_missing_sources_are_skipped(tmp_path):
    (tmp_path / "stat").write_text("cpu0 1 2 3 4 5 6 7 8\n")
    (tmp_path / "meminfo").write_text("MemTotal: 100 kB\n")
    (tmp_path / "loadavg").write_text("0 0 0 1/1 1\n")
    p = points(SystemCollector(tmp_path, statvfs=os.statvfs))
    assert {name for name, _ in p} == {
        c.CPU_TIME.name,
        c.MEMORY_USAGE.name,
        c.MEMORY_UTILIZATION.name,
        c.LOAD_1M.name,
        c.LOAD_5M.name,
        c.LOAD_15M.name,
        c.PROCESSES_COUNT.name,  # all zero: the fixture has no pid directories
        # the agent's own counters (the `agent` collector) read no /proc file
        c.AGENT_SPOOL_DROPPED_FRAMES.name,
        c.AGENT_SPOOL_DROPPED_POINTS.name,
        c.AGENT_FRAMES_REJECTED.name,
        c.AGENT_POINTS_REJECTED.name,
    }


def test_tcp_connections_by_state_at_most_every_interval(tmp_path):
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "tcp").write_text(TCP)
    (tmp_path / "net" / "tcp6").write_text(TCP6)
    now = [1000.0]
    col = NetworkCollector(tmp_path, connections_every_s=60, clock=lambda: now[0])
    p = points(col)
    state = lambda s: p[(c.NETWORK_CONNECTIONS.name, (("protocol", "tcp"), ("state", s)))]  # noqa: E731
    assert (state("LISTEN"), state("TIME_WAIT"), state("ESTABLISHED"), state("CLOSE_WAIT")) == (2, 1, 1, 0)
    assert sum(v for (name, _), v in p.items() if name == c.NETWORK_CONNECTIONS.name) == 4
    now[0] += 30
    assert not any(name == c.NETWORK_CONNECTIONS.name for name, _ in points(col))
    now[0] += 30
    assert any(name == c.NETWORK_CONNECTIONS.name for name, _ in points(col))


StatVFS = namedtuple("StatVFS", "f_frsize f_blocks f_bfree f_bavail f_files f_ffree")


def test_inodes_and_utilization(tmp_path):
    (tmp_path / "mounts").write_text("/dev/sda1 / ext4 rw,relatime 0 0\n")
    st = StatVFS(f_frsize=4096, f_blocks=1000, f_bfree=400, f_bavail=300, f_files=500, f_ffree=120)
    p = points(FilesystemCollector(tmp_path, statvfs=lambda _path: st))
    labels = (("device", "/dev/sda1"), ("mode", "rw"), ("mountpoint", "/"))
    assert p[(c.FILESYSTEM_INODES.name, (*labels, ("state", "used"), ("type", "ext4")))] == 380
    assert p[(c.FILESYSTEM_INODES.name, (*labels, ("state", "free"), ("type", "ext4")))] == 120
    assert p[(c.FILESYSTEM_UTILIZATION.name, (*labels, ("type", "ext4")))] == 0.6667  # 600 / 900, 4 places


def ticks_advanced(timeout: float = 5.0) -> None:
    """Wait until every CPU's line in /proc/stat has moved on (ticks are 10 ms at USER_HZ 100)."""

    def cpus() -> list[str]:
        return [line for line in Path("/proc/stat").read_text().splitlines() if line.startswith("cpu")]

    before, deadline = cpus(), time.monotonic() + timeout
    while any(a == b for a, b in zip(before, cpus(), strict=True)):
        assert time.monotonic() < deadline, f"/proc/stat's CPU ticks did not move in {timeout}s"
        time.sleep(0.005)


def test_every_catalogue_metric_is_emitted_on_this_host():
    col = SystemCollector()
    # rates appear from the second cycle on, connections on the first: take both
    names = {name for name, _ in points(col)}
    ticks_advanced()  # else two quick cycles can see the same ticks: no CPU utilization to give
    names |= {name for name, _ in points(col)}
    # check.* and scrape.* come from the checks and the scraper
    expected = {d.name for d in c.ALL if not d.name.startswith(("check.", "scrape."))}
    swaps = Path("/proc/swaps").read_text().splitlines()[1:]
    if not any(line.split()[0].startswith("/") for line in swaps):
        expected.discard(c.PAGING_USAGE.name)  # no swap device here
    assert expected <= names, sorted(expected - names)


def test_real_filesystem_sizes_match_statvfs():
    p = points(FilesystemCollector(Path("/proc")))
    sizes: dict[str, float] = {}
    for (name, labels), value in p.items():
        if name == c.FILESYSTEM_USAGE.name:
            mountpoint = dict(labels)["mountpoint"]
            sizes[mountpoint] = sizes.get(mountpoint, 0) + value
    assert sizes, "no filesystem reported on this host"
    for mountpoint, total in sizes.items():
        st = os.statvfs(mountpoint)
        assert total == st.f_blocks * st.f_frsize, mountpoint  # used + free + reserved = size, exactly
