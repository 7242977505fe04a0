"""Real collector processes for benchmarks (the same executables and command lines as `make run`)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from ferry.collector.devrun import collector_command, free_port, stop, wait_healthy


@contextlib.contextmanager
def collector_process(workdir: Path, *extra: str) -> Iterator[str]:
    addr = f"127.0.0.1:{free_port()}"
    log = (workdir / "collector.log").open("wb")
    proc = subprocess.Popen(
        collector_command(addr, workdir / "store", "", "--log-level", "warning", *extra),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_healthy(addr, proc=proc)
        yield addr
    finally:
        stop(proc)
        if proc.returncode not in (0, -signal.SIGTERM):
            print((workdir / "collector.log").read_text()[-2000:], file=sys.stderr)
