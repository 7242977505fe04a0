"""Per-process metrics on the real /proc: known processes found by each kind of group matcher."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from ferry.agent import catalogue as c
from ferry.agent.collectors.process_groups import parse_process_groups
from ferry.agent.collectors.processes import PAGE, ProcessCollector
from tests.paths import APPS

APP = APPS / "busy_process.py"
pytestmark = pytest.mark.integration  # starts helper processes that live through each test


def spawn(name: str, threads: int, megabytes: int, token: str, **kw) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, str(APP), name, str(threads), str(megabytes), token],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        **kw,
    )
    assert proc.stdout.readline().strip() == "ready"
    return proc


@pytest.fixture
def known(tmp_path):
    token = uuid.uuid4().hex
    procs = {
        "by_name": spawn("ferrytest-nm", 3, 40, token),
        "by_cmdline": spawn("ferrytest-cl", 5, 20, f"{token}-cmdline"),
        "by_pidfile": spawn("ferrytest-pf", 2, 30, token),
    }
    if os.geteuid() == 0:  # a process of another user, for the user matcher (sleep: nobody can run it)
        procs["by_user"] = subprocess.Popen(["sleep", "600"], user=pwd.getpwnam("nobody").pw_uid)
        # until the exec, it is a fork of this process (named python, busy copying it)
        comm = Path(f"/proc/{procs['by_user'].pid}/comm")
        deadline = time.monotonic() + 10
        while comm.read_text().strip() != "sleep":
            assert time.monotonic() < deadline, "sleep did not start within 10 s"
            time.sleep(0.01)
    (tmp_path / "app.pid").write_text(f"{procs['by_pidfile'].pid}\n")
    yield token, procs
    for p in procs.values():
        if p.stdin:
            p.stdin.close()
        else:
            p.kill()
        p.wait(10)


def resident(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_known_processes_are_found_by_every_matcher(known, tmp_path):
    token, procs = known
    tables = [
        {"group": "by_name", "name": "ferrytest-nm"},
        {"group": "by_cmdline", "cmdline": f"{token}-cmdline"},
        {"group": "by_pidfile", "pidfile": str(tmp_path / "app.pid")},
    ]
    if "by_user" in procs:
        tables.append({"group": "by_user", "user": "nobody", "name": "sleep"})
    col = ProcessCollector("/proc", top_n=0, groups=parse_process_groups(tables, "test"))
    col.collect(0, lambda s, v: None)
    # the interval the CPU rates are taken over: a stray 10 ms tick in it is at most 0.05 of a CPU
    time.sleep(0.2)
    points: dict[tuple, float] = {}
    col.collect(0, lambda s, v: points.__setitem__((s.name, s.labels), v))
    col.close()
    expected_threads = {"by_name": 3, "by_cmdline": 5, "by_pidfile": 2, "by_user": 1}
    megabytes = {"by_name": 40, "by_cmdline": 20, "by_pidfile": 30, "by_user": 0}
    names = {
        "by_name": "ferrytest-nm",
        "by_cmdline": "ferrytest-cl",
        "by_pidfile": "ferrytest-pf",
        "by_user": "sleep",
    }
    for group, proc in procs.items():
        who = (("group", group), ("name", names[group]), ("pid", str(proc.pid)))
        assert points[(c.PROCESS_THREADS.name, who)] == expected_threads[group], group
        rss = points[(c.PROCESS_MEMORY_USAGE.name, who)]
        assert rss >= megabytes[group] * 1024 * 1024, group
        assert abs(rss - resident(proc.pid)) <= 256 * PAGE, group  # the process is idle: RSS holds still
        assert points[(c.PROCESS_CPU_UTILIZATION.name, who)] < 0.5, group  # idle, and present on cycle 2
        assert points[(c.PROCESS_OPEN_FDS.name, who)] == len(os.listdir(f"/proc/{proc.pid}/fd")), group
    reported = {dict(labels)["pid"] for _, labels in points if "pid" in dict(labels)}
    assert reported == {str(p.pid) for p in procs.values()}  # nothing else matched


def largest_resident_mb() -> int:
    """The most resident memory any process on this host has now, in MiB."""
    most = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            most = max(most, resident(int(pid)))
        except (OSError, AssertionError):  # ended meanwhile, or a kernel thread (no VmRSS)
            continue
    return most // 2**20


def test_the_biggest_process_is_in_the_top_by_memory():
    token = uuid.uuid4().hex
    # the biggest on this host by a margin, whatever else runs here (other suites' engines)
    megabytes = max(300, largest_resident_mb() + 256)
    big = spawn("ferrytest-big", 1, megabytes, token)
    try:
        col = ProcessCollector("/proc", top_n=3)
        points: dict[tuple, float] = {}
        col.collect(0, lambda s, v: points.__setitem__((s.name, s.labels), v))
        col.close()
        who = (("group", "top"), ("name", "ferrytest-big"), ("pid", str(big.pid)))
        assert points[(c.PROCESS_MEMORY_USAGE.name, who)] >= megabytes * 1024 * 1024
    finally:
        big.stdin.close()
        big.wait(10)
