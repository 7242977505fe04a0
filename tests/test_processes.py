"""Per-process metrics from a fixture /proc: parsing, top-N selection and rates."""

from __future__ import annotations

import os

from agent import catalogue as c
from agent.collectors.processes import PAGE, TICK, ProcessCollector


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
) -> None:
    d = root / str(pid)
    (d / "fd").mkdir(parents=True, exist_ok=True)
    # state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime
    # priority nice num_threads itrealvalue starttime vsize rss ...
    fields = [
        "S",
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
        f"Name:\t{comm}\nvoluntary_ctxt_switches:\t{pid * 10}\nnonvoluntary_ctxt_switches:\t7\n"
    )
    if io is not None:
        (d / "io").write_text(f"rchar: 1\nwchar: 2\nread_bytes: {io[0]}\nwrite_bytes: {io[1]}\n")
    for i in range(fds):
        (d / "fd" / str(i)).write_text("")


def collect(col) -> dict[tuple, float]:
    out = {}
    col.collect(0, lambda s, v: out.__setitem__((s.name, s.labels), v))
    return out


def pids(points) -> set[str]:
    return {dict(labels)["pid"] for _, labels in points}


def test_parsing_and_first_sample_has_no_rate(tmp_path):
    write_proc(
        tmp_path, 42, "web (worker) 1", utime=300, stime=100, rss_pages=50, threads=4, fds=3, io=(4096, 8192)
    )
    (tmp_path / "self").mkdir()  # non-numeric entries are ignored
    p = collect(ProcessCollector(tmp_path, top_n=5))
    who = (("name", "web (worker) 1"), ("pid", "42"))
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
    assert p[(c.PROCESS_CPU_UTILIZATION.name, (("name", "busy"), ("pid", "2")))] == 1.5
    assert p[(c.PROCESS_CPU_UTILIZATION.name, (("name", "idle-big"), ("pid", "1")))] == 0.0


def test_a_reused_pid_is_a_new_process(tmp_path):
    now = [0.0]
    col = ProcessCollector(tmp_path, top_n=5, clock=lambda: now[0])
    write_proc(tmp_path, 7, "old", utime=500, stime=0, rss_pages=1, start=100)
    collect(col)
    now[0] = 1.0
    write_proc(tmp_path, 7, "new", utime=5, stime=0, rss_pages=1, start=999)
    p = collect(col)
    assert not any(name == c.PROCESS_CPU_UTILIZATION.name for name, _ in p)  # no rate across processes


def test_on_this_host_bounded_and_sane():
    col = ProcessCollector(__import__("pathlib").Path("/proc"), top_n=3)
    collect(col)
    p = collect(col)
    assert 1 <= len(pids(p)) <= 6
    assert str(os.getpid()) in pids(p) or len(pids(p)) == 6
    assert all(v >= 0 for v in p.values())
