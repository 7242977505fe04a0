"""Per-process metrics from a fixture /proc: parsing, top-N selection, groups, rates, state counts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ferry.agent import catalogue as c
from ferry.agent.collectors.process_groups import parse_process_groups, systemd_unit
from ferry.agent.collectors.processes import PAGE, TICK, ProcessCollector
from ferry.runtime.config import ConfigError


def write_proc(
    root,
    pid: int,
    comm: str,
    utime: int,
    stime: int,
    rss_pages: int,
    threads: int = 1,
    start: int = 100,
    fds: int = 0,
    io: tuple[int, int] | None = None,
    state: str = "S",
    uid: int = 0,
    cmdline: str = "",
    cgroup: str = "0::/\n",
) -> None:
    d = root / str(pid)
    (d / "fd").mkdir(parents=True, exist_ok=True)
    # state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime
    # priority nice num_threads itrealvalue starttime vsize rss ...
    fields = [
        state,
        "1",
        "1",
        "1",
        "0",
        "-1",
        "0",
        "0",
        "0",
        "0",
        "0",
        str(utime),
        str(stime),
        "0",
        "0",
        "20",
        "0",
        str(threads),
        "0",
        str(start),
        str(rss_pages * PAGE * 3),
        str(rss_pages),
        "0",
    ]
    (d / "stat").write_text(f"{pid} ({comm}) " + " ".join(fields) + "\n")
    (d / "status").write_text(
        f"Name:\t{comm}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n"
        f"voluntary_ctxt_switches:\t{pid * 10}\nnonvoluntary_ctxt_switches:\t7\n"
    )
    (d / "cmdline").write_bytes(cmdline.replace(" ", "\0").encode() + b"\0")
    (d / "cgroup").write_text(cgroup)
    if io is not None:
        (d / "io").write_text(f"rchar: 1\nwchar: 2\nread_bytes: {io[0]}\nwrite_bytes: {io[1]}\n")
    for i in range(fds):
        (d / "fd" / str(i)).write_text("")


def collect(col) -> dict[tuple, float]:
    out = {}
    col.collect(0, lambda s, v: out.__setitem__((s.name, s.labels), v))
    return out


def pids(points, group: str | None = None) -> set[str]:
    return {
        d["pid"]
        for _, labels in points
        if "pid" in (d := dict(labels)) and (group is None or d["group"] == group)
    }


def test_parsing_and_first_sample_has_no_rate(tmp_path):
    write_proc(
        tmp_path, 42, "web (worker) 1", utime=300, stime=100, rss_pages=50, threads=4, fds=3, io=(4096, 8192)
    )
    (tmp_path / "self").mkdir()  # non-numeric entries are ignored
    p = collect(ProcessCollector(tmp_path, top_n=5))
    who = (("group", "top"), ("name", "web (worker) 1"), ("pid", "42"))
    assert p[(c.PROCESS_CPU_TIME.name, (*who, ("state", "user")))] == 300 / TICK
    assert p[(c.PROCESS_CPU_TIME.name, (*who, ("state", "system")))] == 100 / TICK
    assert p[(c.PROCESS_MEMORY_USAGE.name, who)] == 50 * PAGE
    assert p[(c.PROCESS_MEMORY_VIRTUAL.name, who)] == 150 * PAGE
    assert p[(c.PROCESS_THREADS.name, who)] == 4
    assert p[(c.PROCESS_OPEN_FDS.name, who)] == 3
    assert p[(c.PROCESS_DISK_IO.name, (("direction", "read"), *who))] == 4096
    assert p[(c.PROCESS_DISK_IO.name, (("direction", "write"), *who))] == 8192
    assert p[(c.PROCESS_CONTEXT_SWITCHES.name, (*who, ("type", "voluntary")))] == 420
    assert p[(c.PROCESS_CONTEXT_SWITCHES.name, (*who, ("type", "involuntary")))] == 7
    assert not any(name == c.PROCESS_CPU_UTILIZATION.name for name, _ in p)


def test_top_n_by_cpu_rate_and_by_memory(tmp_path):
    now = [0.0]
    col = ProcessCollector(tmp_path, top_n=1, clock=lambda: now[0])
    write_proc(tmp_path, 1, "idle-big", utime=1000, stime=0, rss_pages=900)
    write_proc(tmp_path, 2, "busy", utime=10, stime=0, rss_pages=10)
    write_proc(tmp_path, 3, "quiet", utime=20, stime=0, rss_pages=20)
    collect(col)
    now[0] = 2.0
    write_proc(tmp_path, 2, "busy", utime=10 + 2 * TICK, stime=TICK, rss_pages=10)  # 3 CPU-seconds in 2 s
    p = collect(col)
    assert pids(p) == {"1", "2"}  # top 1 by CPU rate (busy) + top 1 by memory (idle-big)
    assert p[(c.PROCESS_CPU_UTILIZATION.name, (("group", "top"), ("name", "busy"), ("pid", "2")))] == 1.5
    assert p[(c.PROCESS_CPU_UTILIZATION.name, (("group", "top"), ("name", "idle-big"), ("pid", "1")))] == 0.0


def test_a_reused_pid_is_a_new_process(tmp_path):
    now = [0.0]
    col = ProcessCollector(tmp_path, top_n=5, clock=lambda: now[0])
    write_proc(tmp_path, 7, "old", utime=500, stime=0, rss_pages=1, start=100)
    collect(col)
    now[0] = 1.0
    write_proc(tmp_path, 7, "new", utime=5, stime=0, rss_pages=1, start=999)
    p = collect(col)
    assert not any(name == c.PROCESS_CPU_UTILIZATION.name for name, _ in p)  # no rate across processes


def largest_resident() -> str:
    """The pid with the most resident pages on this host now, read from /proc/PID/stat."""
    rss = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:  # it ended meanwhile
            continue
        rss[pid] = int(stat.rpartition(")")[2].split()[21])  # field 24, rss
    return max(rss, key=rss.get)


def test_on_this_host_bounded_and_sane():
    col = ProcessCollector("/proc", top_n=3)
    collect(col)
    # the top 3 by CPU and the top 3 by memory, which may overlap
    for _ in range(5):
        biggest = largest_resident()
        p = collect(col)
        if largest_resident() == biggest:  # not overtaken during the cycle: the cycle saw it biggest
            break
    assert 3 <= len(pids(p)) <= 6
    assert biggest in pids(p), (biggest, sorted(pids(p)))
    assert all(v >= 0 for v in p.values())


def groups(*tables: dict):
    return parse_process_groups(list(tables), "agent.toml")


def test_counts_by_status(tmp_path):
    for pid, state in enumerate("RRSSDZTtIX", start=1):
        write_proc(tmp_path, pid, f"p{pid}", 0, 0, 1, state=state)
    p = collect(ProcessCollector(tmp_path, top_n=0))
    count = {dict(labels)["status"]: v for (name, labels), v in p.items() if name == c.PROCESSES_COUNT.name}
    assert count == {
        "running": 2,
        "sleeping": 2,
        "blocked": 1,
        "zombies": 1,
        "stopped": 2,
        "idle": 1,
        "unknown": 1,
    }
    assert pids(p) == set()  # top_n = 0 and no groups: counts only


def test_groups_by_name_cmdline_user_unit_and_pidfile(tmp_path):
    proc = tmp_path / "proc"
    write_proc(proc, 10, "nginx", 1, 0, 1, cgroup="0::/system.slice/nginx.service\n")
    write_proc(proc, 11, "nginx", 1, 0, 1, cgroup="0::/system.slice/nginx.service\n")
    write_proc(proc, 20, "python3", 1, 0, 1, cmdline="python3 -m myapp.worker --queue=high", uid=1000)
    write_proc(proc, 21, "python3", 1, 0, 1, cmdline="python3 -m other", uid=1000)
    write_proc(proc, 30, "postgres", 1, 0, 1, uid=999)
    write_proc(proc, 40, "redis-server", 1, 0, 1)
    write_proc(proc, 41, "redis-server", 1, 0, 1)
    (tmp_path / "redis.pid").write_text("41\n")
    col = ProcessCollector(
        str(proc),
        top_n=0,
        groups=groups(
            {"group": "web", "unit": "nginx.service"},
            {"group": "worker", "name": "python.*", "cmdline": r"myapp\.worker"},
            {"group": "db", "user": 999},
            {"group": "cache", "pidfile": str(tmp_path / "redis.pid")},
        ),
    )
    p = collect(col)
    assert pids(p, "web") == {"10", "11"}
    assert pids(p, "worker") == {"20"}
    assert pids(p, "db") == {"30"}
    assert pids(p, "cache") == {"41"}
    assert pids(p, "top") == set()
    (tmp_path / "redis.pid").write_text("40\n")  # the pidfile is read every cycle
    assert pids(collect(col), "cache") == {"40"}


def test_group_cap_first_group_wins_and_top_does_not_repeat_a_grouped_process(tmp_path):
    for pid in range(1, 6):
        write_proc(tmp_path, pid, "worker", utime=pid, stime=0, rss_pages=pid)
    col = ProcessCollector(
        tmp_path,
        top_n=2,
        groups=groups(
            {"group": "w", "name": "worker", "max_processes": 3},
            {"group": "also", "name": "work.*"},
        ),
    )
    p = collect(col)
    assert pids(p, "w") == {"1", "2", "3"}  # capped, lowest pids first
    assert pids(p, "also") == {"4", "5"}  # the rest fall through to the next group
    assert pids(p, "top") == set()  # the top 2 (4 and 5) are reported once, under their group
    assert len(p) == 5 * 8 + 6  # 8 points per process without io and rate, 6 status counts


def test_group_config_errors_name_the_table_and_key():
    with pytest.raises(ConfigError, match=r"\[\[processes\]\] #1: needs at least one of"):
        groups({"group": "x"})
    with pytest.raises(ConfigError, match=r"#2: key 'group' 'x' is used by another"):
        groups({"group": "x", "name": "a"}, {"group": "x", "name": "b"})
    with pytest.raises(ConfigError, match=r"key 'name' '\(' is not a regex"):
        groups({"group": "x", "name": "("})
    with pytest.raises(ConfigError, match=r"key 'user' 'no-such-user-here' is not a user"):
        groups({"group": "x", "user": "no-such-user-here"})
    with pytest.raises(ConfigError, match=r"key 'group' 'top' must match"):
        groups({"group": "top", "name": "a"})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) color"):
        groups({"group": "x", "name": "a", "color": "red"})
    with pytest.raises(ConfigError, match=r"key 'max_processes' 0 must be an integer from 1 to 1000"):
        groups({"group": "x", "name": "a", "max_processes": 0})


@pytest.mark.parametrize(
    "cgroup,unit",
    [
        ("0::/system.slice/nginx.service\n", "nginx.service"),
        ("0::/user.slice/user-0.slice/session-3.scope\n", "session-3.scope"),
        ("0::/system.slice/docker.service/inner\n", "docker.service"),
        ("12:pids:/x\n1:name=systemd:/system.slice/cron.service\n", "cron.service"),
        ("0::/\n", ""),
    ],
)
def test_systemd_unit_from_cgroup(cgroup, unit):
    assert systemd_unit(cgroup) == unit


def test_descriptors_are_kept_within_the_budget_and_closed_for_gone_processes(tmp_path):
    for pid in range(1, 11):
        write_proc(tmp_path, pid, "p", 0, 0, 1)
    col = ProcessCollector(tmp_path, top_n=0, max_open_files=4)
    collect(col)
    assert len(col.files) == 4
    for pid in range(1, 11):
        __import__("shutil").rmtree(tmp_path / str(pid))
    collect(col)
    assert len(col.files) == 0


def test_a_reused_pid_with_the_same_stat_bytes_but_a_new_start_is_parsed_afresh(tmp_path):
    """The stat parse is reused only for byte-identical lines: a new process under an old pid
    differs at least in its start time, and its name is not taken from the cache."""
    col = ProcessCollector(tmp_path, top_n=5)
    write_proc(tmp_path, 7, "old", utime=5, stime=0, rss_pages=1, start=100)
    p = collect(col)
    assert (c.PROCESS_THREADS.name, (("group", "top"), ("name", "old"), ("pid", "7"))) in p
    write_proc(tmp_path, 7, "new", utime=5, stime=0, rss_pages=1, start=999)
    p = collect(col)
    assert {dict(labels)["name"] for name, labels in p if name == c.PROCESS_THREADS.name} == {"new"}
    write_proc(tmp_path, 7, "old", utime=5, stime=0, rss_pages=1, start=100)  # back to the old bytes
    p = collect(col)
    assert {dict(labels)["name"] for name, labels in p if name == c.PROCESS_THREADS.name} == {"old"}


def test_unchanged_stat_lines_reuse_their_parse(tmp_path):
    write_proc(tmp_path, 1, "a", utime=5, stime=0, rss_pages=1)
    write_proc(tmp_path, 2, "b", utime=5, stime=0, rss_pages=1)
    col = ProcessCollector(tmp_path, top_n=5)
    first = {p.pid: p for p in col.files.scan()}
    write_proc(tmp_path, 2, "b", utime=6, stime=0, rss_pages=1)
    second = {p.pid: p for p in col.files.scan()}
    assert second["1"] is first["1"]
    assert second["2"] is not first["2"] and second["2"].utime == 6


def test_series_of_a_process_are_kept_while_it_lives_and_dropped_when_it_exits(tmp_path):
    now = [0.0]
    col = ProcessCollector(tmp_path, top_n=1, clock=lambda: now[0])
    write_proc(tmp_path, 1, "big", utime=0, stime=0, rss_pages=100)
    write_proc(tmp_path, 2, "busy", utime=0, stime=0, rss_pages=1)
    write_proc(tmp_path, 3, "other", utime=0, stime=0, rss_pages=1)
    seen: dict = {}

    def emitted() -> set[str]:
        out = set()

        def emit(s, v):
            who = dict(s.labels)
            if "pid" in who:
                out.add(who["pid"])
                assert seen.setdefault((s.name, s.labels), s) is s  # the same object every time

        col.collect(0, emit)
        return out

    emitted()
    for cycle, busy in enumerate(["2", "3", "2"], start=1):  # 2 drops out of the top and comes back
        now[0] = cycle
        write_proc(
            tmp_path, int(busy), "busy" if busy == "2" else "other", utime=cycle * 100, stime=0, rss_pages=1
        )
        assert emitted() == {"1", busy}
    __import__("shutil").rmtree(tmp_path / "2")
    now[0] = 9
    emitted()
    assert not any(key[0] == "2" for key in col._series)


def test_a_file_that_opens_but_refuses_reads_is_not_reopened_every_cycle(tmp_path, monkeypatch):
    """/proc/PID/io of another user's process opens for root and answers EACCES to the read."""
    write_proc(tmp_path, 5, "p", utime=0, stime=0, rss_pages=1, io=(1, 2))
    col = ProcessCollector(tmp_path, top_n=5)
    real_pread, opened = os.pread, []
    real_open = os.open

    def pread(fd, size, offset):
        if os.readlink(f"/proc/self/fd/{fd}").endswith("/5/io"):
            raise PermissionError(13, "Permission denied")
        return real_pread(fd, size, offset)

    def open_(path, *args, **kwargs):
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "pread", pread)
    monkeypatch.setattr(os, "open", open_)
    for _ in range(3):
        p = collect(col)
        assert not any(name == c.PROCESS_DISK_IO.name for name, _ in p)
        assert (c.PROCESS_THREADS.name, (("group", "top"), ("name", "p"), ("pid", "5"))) in p
    assert opened.count(f"{tmp_path}/5/io") == 1
    assert opened.count(f"{tmp_path}/5/stat") == 1  # the process's other files stay open
