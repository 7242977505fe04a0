"""Real collector processes for benchmarks (the same executables and command lines as `make run`)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from ferry.collector.devrun import collector_command, free_port, stop, wait_healthy
from ferry.transport import ClientTLS, Endpoint


@contextlib.contextmanager
def collector_process(workdir: Path, *extra: str, tls: ClientTLS | None = None) -> Iterator[str]:
    """A collector on a free loopback port, stopped on the way out; `tls`: how its health check
    reaches it when `extra` makes it serve TLS (the CA, and a client certificate for mTLS)."""
    addr = f"127.0.0.1:{free_port()}"
    log = (workdir / "collector.log").open("wb")
    proc = subprocess.Popen(
        collector_command(addr, workdir / "store", "", "--log-level", "warning", *extra),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_healthy(Endpoint(addr, tls=tls), proc=proc)
        yield addr
    finally:
        stop(proc)
        if proc.returncode not in (0, -signal.SIGTERM):
            print((workdir / "collector.log").read_text()[-2000:], file=sys.stderr)
