"""agent.collectors.system: the /proc parsers on a fixture tree, with an injected statvfs."""

from __future__ import annotations

import os
from collections import namedtuple

import psutil
import pytest

from ferry.agent import catalogue as c
from ferry.agent.collectors.system import CPU_STATES, PSEUDO_FS, SystemCollector, _unescape
from ferry.wire.columns import SeriesDef

TCK = os.sysconf("SC_CLK_TCK")
StatVFS = namedtuple("StatVFS", "f_frsize f_blocks f_bfree f_bavail")

STAT_1 = """\
cpu  210 10 105 1010 52 5 6 4 0 0
cpu0 100 5 50 500 25 3 2 1 7 0
cpu1 110 5 55 510 27 2 4 3 0 0
intr 123456 22 0 0 0
ctxt 987654
btime 1700000000
processes 4242
procs_running 3
procs_blocked 0
softirq 55555 1 2 3 4 5 6 7 8 9 10
"""

# cpu0 advances by exactly 100 ticks; cpu1 does not move at all
STAT_2 = """\
cpu  310 10 115 1060 57 5 11 4 0 0
cpu0 130 5 60 550 30 3 7 1 9 0
cpu1 110 5 55 510 27 2 4 3 0 0
intr 123999 22 0 0 0
ctxt 999999
btime 1700000000
processes 4250
procs_running 1
procs_blocked 0
softirq 55999 1 2 3 4 5 6 7 8 9 10
"""

MEMINFO = """\
MemTotal:       16318480 kB
MemFree:         1234560 kB
MemAvailable:    9876540 kB
Buffers:          234560 kB
Cached:          5678900 kB
SwapCached:            0 kB
Active:          7000000 kB
Inactive:        5000000 kB
SwapTotal:       2097148 kB
SwapFree:        2097148 kB
Dirty:               120 kB
Shmem:            345678 kB
KReclaimable:     456780 kB
Slab:             580230 kB
SReclaimable:     456780 kB
SUnreclaim:       123450 kB
KernelStack:       12345 kB
PageTables:        45678 kB
CommitLimit:    10256388 kB
VmallocTotal:   34359738367 kB
HugePages_Total:       0
HugePages_Free:        0
HugePages_Rsvd:        0
HugePages_Surp:        0
Hugepagesize:       2048 kB
DirectMap4k:      404288 kB
"""

LOADAVG = "0.52 1.25 10.07 3/1234 56789\n"

NET_DEV = (
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast"
    "|bytes    packets errs drop fifo colls carrier compressed\n"
    "    lo: 5261215    9082    0    0    0     0          0         0"
    "  5261215    9082    0    0    0     0       0          0\n"
    "  eth0: 987654321012 654321 3 4 0 0 0 12 123456789 98765 5 6 0 0 0 0\n"
    "wlan0:11 22 33 44 0 0 0 0 55 66 77 88 0 0 0 0\n"  # old kernels: no space after the colon
)

MOUNTS = """\
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
udev /dev devtmpfs rw,nosuid,relatime,size=8123456k,nr_inodes=2030864,mode=755 0 0
devpts /dev/pts devpts rw,nosuid,noexec,relatime,gid=5,mode=620,ptmxmode=000 0 0
tmpfs /run tmpfs rw,nosuid,nodev,noexec,relatime,size=1631848k,mode=755 0 0
/dev/nvme0n1p2 / ext4 rw,relatime,errors=remount-ro 0 0
cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0
/dev/sdb1 /mnt/my\\040disk xfs ro,nosuid,relatime,attr2,inode64 0 0
/dev/nvme0n1p1 /boot/efi vfat rw,relatime,fmask=0077,dmask=0077,codepage=437 0 0
/dev/nvme0n1p2 / ext4 rw,relatime 0 0
/dev/sdc1 /gone ext4 rw,relatime 0 0
"""

STATVFS = {
    "/": StatVFS(4096, 1_000_000, 400_000, 350_000),
    "/mnt/my disk": StatVFS(512, 2_000, 2_000, 1_000),
    "/boot/efi": StatVFS(1024, 524_288, 500_000, 500_000),
}


class FakeStatvfs:
    def __init__(self, table):
        self.table = table
        self.calls: list[str] = []

    def __call__(self, path: str):
        self.calls.append(path)
        if path not in self.table:
            raise FileNotFoundError(2, "No such file or directory", path)
        return self.table[path]


def write_proc(root, stat=STAT_1, meminfo=MEMINFO, loadavg=LOADAVG, net_dev=NET_DEV, mounts=MOUNTS):
    (root / "net").mkdir(parents=True, exist_ok=True)
    (root / "stat").write_text(stat)
    (root / "meminfo").write_text(meminfo)
    (root / "loadavg").write_text(loadavg)
    (root / "net" / "dev").write_text(net_dev)
    (root / "mounts").write_text(mounts)


def collect(collector: SystemCollector) -> dict[tuple, float]:
    """One cycle, as {(metric name, ((label, value), ...)): value}; no series may be emitted twice."""
    out: dict[tuple, float] = {}
    emitted: list[SeriesDef] = []

    def emit(series: SeriesDef, value: float) -> None:
        key = (series.name, series.labels)
        assert key not in out, f"{key} emitted twice"
        assert isinstance(value, float)
        out[key] = value
        emitted.append(series)

    collector.collect(1_700_000_000_000, emit)
    collector.last_emitted = emitted
    return out


def pick(points: dict[tuple, float], name: str) -> dict[tuple, float]:
    return {labels: v for (n, labels), v in points.items() if n == name}


def lbl(**kw) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(kw.items()))


@pytest.fixture
def proc(tmp_path):
    root = tmp_path / "proc"
    write_proc(root)
    return root


@pytest.fixture
def statvfs():
    return FakeStatvfs(STATVFS)


@pytest.fixture
def collector(proc, statvfs):
    return SystemCollector(proc_root=proc, statvfs=statvfs)


# ---- cpu ------------------------------------------------------------------------------------------


def test_cpu_time_is_ticks_over_clock_tick(collector):
    got = pick(collect(collector), "system.cpu.time")
    ticks = {
        "cpu0": [100, 5, 50, 500, 25, 3, 2, 1],
        "cpu1": [110, 5, 55, 510, 27, 2, 4, 3],
    }
    want = {
        lbl(cpu=cpu, state=s): t / TCK
        for cpu, ts in ticks.items()
        for s, t in zip(CPU_STATES, ts, strict=True)
    }
    assert got == want  # the aggregate "cpu " line and guest columns are not emitted
    assert CPU_STATES == ("user", "nice", "system", "idle", "wait", "interrupt", "softirq", "steal")


def test_no_utilization_on_first_collect(collector):
    assert pick(collect(collector), "system.cpu.utilization") == {}


def test_utilization_on_second_collect(collector, proc):
    collect(collector)
    (proc / "stat").write_text(STAT_2)
    points = collect(collector)
    got = pick(points, "system.cpu.utilization")
    # cpu0 deltas: user 30, nice 0, system 10, idle 50, wait 5, interrupt 0, softirq 5, steal 0 -> 100
    assert got == {
        lbl(cpu="cpu0", state="user"): 0.3,
        lbl(cpu="cpu0", state="nice"): 0.0,
        lbl(cpu="cpu0", state="system"): 0.1,
        lbl(cpu="cpu0", state="idle"): 0.5,
        lbl(cpu="cpu0", state="wait"): 0.05,
        lbl(cpu="cpu0", state="interrupt"): 0.0,
        lbl(cpu="cpu0", state="softirq"): 0.05,
        lbl(cpu="cpu0", state="steal"): 0.0,
    }  # cpu1 did not move: no utilization rather than a division by zero
    assert sum(got.values()) == pytest.approx(1.0, abs=1e-12)
    assert pick(points, "system.cpu.time")[lbl(cpu="cpu0", state="user")] == 130 / TCK


def test_utilization_clamps_counters_that_go_backwards(tmp_path):
    root = tmp_path / "proc"
    write_proc(root, stat="cpu0 100 0 100 1000 0 0 0 0\n")
    col = SystemCollector(proc_root=root, statvfs=FakeStatvfs({}))
    collect(col)
    (root / "stat").write_text("cpu0 175 0 90 1025 0 0 0 0\n")  # system went backwards by 10
    got = pick(collect(col), "system.cpu.utilization")
    assert got[lbl(cpu="cpu0", state="user")] == 75 / 100
    assert got[lbl(cpu="cpu0", state="system")] == 0.0
    assert got[lbl(cpu="cpu0", state="idle")] == 25 / 100


def test_utilization_is_rounded_to_a_fraction_of_a_tick(tmp_path):
    """A 10 s cycle at USER_HZ 100 is about 1000 ticks a cpu: 4 decimals (a twentieth of a tick);
    a cycle of 10,000 ticks or more keeps 5, so the rounding never moves a value half a tick."""
    root = tmp_path / "proc"
    write_proc(root, stat="cpu0 0 0 0 0 0 0 0 0\n")
    col = SystemCollector(proc_root=root, statvfs=FakeStatvfs({}))
    collect(col)
    (root / "stat").write_text("cpu0 333 0 111 500 30 0 20 5\n")  # 999 ticks
    got = pick(collect(col), "system.cpu.utilization")
    assert got == {
        lbl(cpu="cpu0", state="user"): 0.3333,
        lbl(cpu="cpu0", state="nice"): 0.0,
        lbl(cpu="cpu0", state="system"): 0.1111,
        lbl(cpu="cpu0", state="idle"): 0.5005,
        lbl(cpu="cpu0", state="wait"): 0.03,
        lbl(cpu="cpu0", state="interrupt"): 0.0,
        lbl(cpu="cpu0", state="softirq"): 0.02,
        lbl(cpu="cpu0", state="steal"): 0.005,
    }
    (root / "stat").write_text("cpu0 4334 0 112 8501 30 0 20 5\n")  # 12,003 ticks
    got = pick(collect(col), "system.cpu.utilization")
    assert got[lbl(cpu="cpu0", state="user")] == 0.33333
    assert got[lbl(cpu="cpu0", state="system")] == 0.00008
    assert got[lbl(cpu="cpu0", state="idle")] == 0.66658


def test_short_cpu_lines_are_padded_and_new_cpus_wait_a_cycle(tmp_path):
    root = tmp_path / "proc"
    write_proc(root, stat="cpu  1 2 3 4\ncpu0 1 2 3 4\n")
    col = SystemCollector(proc_root=root, statvfs=FakeStatvfs({}))
    got = pick(collect(col), "system.cpu.time")
    assert got == {
        lbl(cpu="cpu0", state=s): v / TCK for s, v in zip(CPU_STATES, [1, 2, 3, 4, 0, 0, 0, 0], strict=True)
    }
    (root / "stat").write_text("cpu0 2 2 3 5\ncpu1 9 9 9 9\n")  # cpu1 hot-plugged
    util = pick(collect(col), "system.cpu.utilization")
    assert {dict(k)["cpu"] for k in util} == {"cpu0"}
    assert util[lbl(cpu="cpu0", state="user")] == 0.5
    assert util[lbl(cpu="cpu0", state="idle")] == 0.5


# ---- memory ---------------------------------------------------------------------------------------


def test_memory_usage_states(collector):
    got = pick(collect(collector), "system.memory.usage")
    total = 16318480 * 1024
    parts = {
        "free": 1234560 * 1024,
        "buffered": 234560 * 1024,
        "cached": 5678900 * 1024,
        "slab_reclaimable": 456780 * 1024,
        "slab_unreclaimable": 123450 * 1024,
    }
    used = total - sum(parts.values())
    assert used == (16318480 - 1234560 - 234560 - 5678900 - 456780 - 123450) * 1024
    assert got == {**{lbl(state=s): float(v) for s, v in parts.items()}, lbl(state="used"): float(used)}
    assert sum(got.values()) == float(total)
    assert int(sum(got.values())) == 16318480 * 1024


def test_memory_utilization_fractions(collector):
    got = pick(collect(collector), "system.memory.utilization")
    # 4 decimals (0.01 percentage points): free is 1234560 / 16318480 kB = 0.075654...
    assert got == {
        lbl(state="free"): 0.0757,
        lbl(state="buffered"): 0.0144,
        lbl(state="cached"): 0.348,
        lbl(state="slab_reclaimable"): 0.028,
        lbl(state="slab_unreclaimable"): 0.0076,
        lbl(state="used"): 0.5264,
    }
    assert sum(got.values()) == pytest.approx(1.0, abs=6 * 5e-5)  # usage bytes sum exactly


def test_memory_missing_optional_fields(tmp_path):
    root = tmp_path / "proc"
    write_proc(root, meminfo="MemTotal: 1000 kB\nMemFree: 250 kB\n")
    got = pick(collect(SystemCollector(proc_root=root, statvfs=FakeStatvfs({}))), "system.memory.usage")
    assert got == {
        lbl(state="free"): 256000.0,
        lbl(state="buffered"): 0.0,
        lbl(state="cached"): 0.0,
        lbl(state="slab_reclaimable"): 0.0,
        lbl(state="slab_unreclaimable"): 0.0,
        lbl(state="used"): 768000.0,
    }


# ---- load -----------------------------------------------------------------------------------------


def test_load_averages(collector):
    points = collect(collector)
    assert points[("system.cpu.load_average.1m", ())] == 0.52
    assert points[("system.cpu.load_average.5m", ())] == 1.25
    assert points[("system.cpu.load_average.15m", ())] == 10.07


# ---- network --------------------------------------------------------------------------------------


def test_network_counters_per_direction(collector):
    points = collect(collector)
    expected = {
        "system.network.io": {
            ("lo", "receive"): 5261215,
            ("lo", "transmit"): 5261215,
            ("eth0", "receive"): 987654321012,
            ("eth0", "transmit"): 123456789,
            ("wlan0", "receive"): 11,
            ("wlan0", "transmit"): 55,
        },
        "system.network.packets": {
            ("lo", "receive"): 9082,
            ("lo", "transmit"): 9082,
            ("eth0", "receive"): 654321,
            ("eth0", "transmit"): 98765,
            ("wlan0", "receive"): 22,
            ("wlan0", "transmit"): 66,
        },
        "system.network.errors": {
            ("lo", "receive"): 0,
            ("lo", "transmit"): 0,
            ("eth0", "receive"): 3,
            ("eth0", "transmit"): 5,
            ("wlan0", "receive"): 33,
            ("wlan0", "transmit"): 77,
        },
        "system.network.dropped": {
            ("lo", "receive"): 0,
            ("lo", "transmit"): 0,
            ("eth0", "receive"): 4,
            ("eth0", "transmit"): 6,
            ("wlan0", "receive"): 44,
            ("wlan0", "transmit"): 88,
        },
    }
    for metric, want in expected.items():
        got = pick(points, metric)
        assert got == {lbl(device=d, direction=r): float(v) for (d, r), v in want.items()}, metric


def test_network_skips_short_lines(tmp_path):
    header = "".join(NET_DEV.splitlines(keepends=True)[:2])
    root = tmp_path / "proc"
    write_proc(root, net_dev=header + "  bad0: 1 2 3\n  ok0: " + " ".join(str(i) for i in range(16)) + "\n")
    points = collect(SystemCollector(proc_root=root, statvfs=FakeStatvfs({})))
    assert pick(points, "system.network.io") == {
        lbl(device="ok0", direction="receive"): 0.0,
        lbl(device="ok0", direction="transmit"): 8.0,
    }
    assert pick(points, "system.network.dropped") == {
        lbl(device="ok0", direction="receive"): 3.0,
        lbl(device="ok0", direction="transmit"): 11.0,
    }


# ---- filesystems ----------------------------------------------------------------------------------


def fs(device, mode, mountpoint, state, type_):
    return lbl(device=device, mode=mode, mountpoint=mountpoint, state=state, type=type_)


def test_filesystem_usage(collector, statvfs):
    got = pick(collect(collector), "system.filesystem.usage")
    assert got == {
        # / : 4096-byte blocks, 1e6 total, 4e5 free, 3.5e5 available; "errors=remount-ro" is not "ro"
        fs("/dev/nvme0n1p2", "rw", "/", "used", "ext4"): float(600_000 * 4096),
        fs("/dev/nvme0n1p2", "rw", "/", "free", "ext4"): float(350_000 * 4096),
        fs("/dev/nvme0n1p2", "rw", "/", "reserved", "ext4"): float(50_000 * 4096),
        # escaped space unescaped in the label and in the statvfs path; mounted ro
        fs("/dev/sdb1", "ro", "/mnt/my disk", "used", "xfs"): 0.0,
        fs("/dev/sdb1", "ro", "/mnt/my disk", "free", "xfs"): float(1_000 * 512),
        fs("/dev/sdb1", "ro", "/mnt/my disk", "reserved", "xfs"): float(1_000 * 512),
        fs("/dev/nvme0n1p1", "rw", "/boot/efi", "used", "vfat"): float(24_288 * 1024),
        fs("/dev/nvme0n1p1", "rw", "/boot/efi", "free", "vfat"): float(500_000 * 1024),
        fs("/dev/nvme0n1p1", "rw", "/boot/efi", "reserved", "vfat"): 0.0,
    }
    # pseudo filesystems are never statvfs'd; "/" only once; /gone raised OSError and was skipped
    assert statvfs.calls == ["/", "/mnt/my disk", "/boot/efi", "/gone"]


def test_filesystem_states_sum_to_size(collector):
    got = pick(collect(collector), "system.filesystem.usage")
    per_mount: dict[str, float] = {}
    for labels, v in got.items():
        mp = dict(labels)["mountpoint"]
        per_mount[mp] = per_mount.get(mp, 0.0) + v
    assert per_mount == {
        "/": 1_000_000 * 4096.0,
        "/mnt/my disk": 2_000 * 512.0,
        "/boot/efi": 524_288 * 1024.0,
    }


def test_filesystem_exclusions_are_configurable(proc, statvfs):
    col = SystemCollector(proc_root=proc, statvfs=statvfs, exclude_fs_types=frozenset({"ext4", "vfat"}))
    collect(col)
    assert statvfs.calls == [
        "/sys",
        "/proc",
        "/dev",
        "/dev/pts",
        "/run",
        "/sys/fs/cgroup",
        "/mnt/my disk",
    ]


def test_pseudo_fs_list():
    for t in ("proc", "sysfs", "tmpfs", "devtmpfs", "cgroup2", "overlay", "squashfs", "fuse.lxcfs"):
        assert t in PSEUDO_FS
    for t in ("ext4", "xfs", "btrfs", "vfat", "zfs", "nfs4"):
        assert t not in PSEUDO_FS


def test_overmounted_mountpoint_is_labelled_with_the_visible_filesystem(tmp_path):
    root = tmp_path / "proc"
    write_proc(root, mounts="/dev/sda3 /data ext4 rw,relatime 0 0\n/dev/sdc1 /data xfs ro,relatime 0 0\n")
    stats = FakeStatvfs({"/data": StatVFS(4096, 10, 4, 3)})  # what the kernel reports: the xfs on top
    got = pick(collect(SystemCollector(proc_root=root, statvfs=stats)), "system.filesystem.usage")
    assert got == {
        fs("/dev/sdc1", "ro", "/data", "used", "xfs"): 6 * 4096.0,
        fs("/dev/sdc1", "ro", "/data", "free", "xfs"): 3 * 4096.0,
        fs("/dev/sdc1", "ro", "/data", "reserved", "xfs"): 1 * 4096.0,
    }


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ("/mnt/my\\040disk", "/mnt/my disk"),
        ("/a\\011b\\012c", "/a\tb\nc"),
        ("/back\\134slash", "/back\\slash"),
        ("/lit\\134040", "/lit\\040"),  # a literal backslash followed by "040"
        ("/x\\134\\040y", "/x\\ y"),
        ("/plain", "/plain"),
    ],
)
def test_unescape(raw, path):
    assert _unescape(raw) == path


# ---- series identity ------------------------------------------------------------------------------


def test_series_use_the_catalogue_and_are_reused(collector, proc):
    collect(collector)
    first = collector.last_emitted
    (proc / "stat").write_text(STAT_2)
    collect(collector)
    second = {(s.name, s.labels): s for s in collector.last_emitted}
    for s in first:
        assert second[(s.name, s.labels)] is s
    by_name = {m.name: m for m in c.ALL}
    for s in collector.last_emitted:
        m = by_name[s.name]
        assert (s.kind, s.unit) == (m.kind, m.unit)
        assert tuple(k for k, _ in s.labels) == m.labels


def test_point_count_per_cycle(collector, proc):
    # 2 cpus x 8 states, 6 memory states x 2, 3 loads, 3 devices x 2 directions x 4, 3 mounts x 3,
    # processes created + 6 counts by status (no pid dirs here), 3 mounts' utilization, the
    # agent's 4 own counters
    assert len(collect(collector)) == 16 + 12 + 3 + 24 + 9 + 1 + 6 + 3 + 4
    (proc / "stat").write_text(STAT_2)
    assert len(collect(collector)) == 16 + 8 + 12 + 3 + 24 + 9 + 1 + 6 + 3 + 4


# ---- the real /proc -------------------------------------------------------------------------------


@pytest.mark.skipif(not os.path.exists("/proc/meminfo"), reason="needs Linux /proc")
def test_real_proc_memory_states_sum_to_total():
    points = collect(SystemCollector())
    usage = pick(points, "system.memory.usage")
    assert {dict(k)["state"] for k in usage} == {
        "free",
        "buffered",
        "cached",
        "slab_reclaimable",
        "slab_unreclaimable",
        "used",
    }
    assert int(sum(usage.values())) == psutil.virtual_memory().total
    assert pick(points, "system.cpu.time")  # at least one cpu parsed
