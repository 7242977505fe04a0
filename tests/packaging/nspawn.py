"""A Debian 12 root made by debootstrap, booted with systemd-nspawn: real systemd as its PID 1.

The root is debootstrapped once per cache key (the suite and package list) into a tarball under
the user's cache folder and unpacked fresh for every boot, so each test run starts from a stock
root. The container has its own network namespace (`--private-network`: only its loopback), so
its collector's and agent's ports never meet the host's tests. Commands enter it with nsenter on
its init's pid, as `machinectl shell` would with a registered machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

SUITE = "bookworm"
MIRROR = os.environ.get("FERRY_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# what the packages depend on beyond minbase (dpkg -i checks it: the container has no network to
# fetch anything): python3 for the venvs, adduser for postinst, procps for the units' /bin/kill;
# dbus for systemctl
INCLUDE = ("systemd", "systemd-sysv", "dbus", "python3", "adduser", "procps")
# what the test runs, and what packaging/deb/build.py does (binutils' strip, objdump, readelf)
TOOLS = (
    "debootstrap",
    "systemd-nspawn",
    "nsenter",
    "dpkg-deb",
    "lintian",
    "patchelf",
    "file",
    "strip",
    "objdump",
    "readelf",
)


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


def _cache() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    key = hashlib.sha256(f"{SUITE} {MIRROR} {' '.join(INCLUDE)}".encode()).hexdigest()[:12]
    return base / "ferry-tests" / f"debootstrap-{SUITE}-{key}.tar"


def stock_root(dest: Path) -> Path:
    """A minbase Debian 12 root with INCLUDE, unpacked into `dest`."""
    tarball = _cache()
    if not tarball.exists():
        build = dest.with_name(dest.name + ".bootstrap")
        include = f"--include={','.join(INCLUDE)}"
        cmd = ["debootstrap", "--variant=minbase", include, SUITE, str(build), MIRROR]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if done.returncode:
            tail = done.stdout[-2000:] + done.stderr[-2000:]
            raise RuntimeError(f"debootstrap failed ({done.returncode}): {tail}")
        tarball.parent.mkdir(parents=True, exist_ok=True)
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(build), "--numeric-owner", "-cf", str(partial), "."], check=True)
        partial.rename(tarball)
        shutil.rmtree(build)
    dest.mkdir(parents=True)
    subprocess.run(["tar", "-C", str(dest), "--numeric-owner", "-xf", str(tarball)], check=True)
    return dest


class Container:
    """A booted root. `run` executes a command inside (all of init's namespaces)."""

    def __init__(self, root: Path, log: Path):
        self.root, self.log = root, log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "--register=no", "--keep-unit", "--private-network", "--console=pipe",
             "-D", str(root), "-b"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.pid = self._init_pid()

    def _init_pid(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log.read_text()[-3000:]
                raise RuntimeError(f"systemd-nspawn exited {self.proc.returncode}: {tail}")
            children = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
            for pid in children.stdout.split():
                # nspawn forks before it execs the container's init: wait for systemd itself
                with contextlib.suppress(OSError):
                    if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                        return int(pid)
            time.sleep(0.2)
        raise RuntimeError(f"no init under systemd-nspawn after {timeout:.0f} s")

    def booted(self, timeout: float = 120) -> str:
        """systemd's state once it has finished booting (`running`, or `degraded` and why)."""
        deadline = time.monotonic() + timeout
        while True:
            done = self.run("systemctl", "is-system-running", "--wait", check=False, timeout=timeout)
            if done.stdout.strip() not in ("", "offline") or time.monotonic() > deadline:
                break
            # "Failed to connect to bus", or "offline" (no /run/systemd/system yet): init has only
            # just started, and --wait waits only once it answers
            time.sleep(0.5)
        state = done.stdout.strip()
        if state != "running":
            failed = self.run("systemctl", "--failed", "--no-legend", "--plain", check=False).stdout
            return f"{state!r} ({done.stderr.strip()}); failed units: {failed}"
        return state

    def run(self, *cmd: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        enter = ["nsenter", "-t", str(self.pid), "-a", "--"]
        done = subprocess.run([*enter, *cmd], capture_output=True, text=True, timeout=timeout)
        if check and done.returncode:
            raise AssertionError(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.run("systemctl", "show", unit, "-p", ",".join(props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def copy_in(self, path: Path) -> str:
        """`path` copied to the container's /root; returns its path inside."""
        shutil.copy2(path, self.root / "root" / path.name)
        return f"/root/{path.name}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            # SIGTERM to nspawn asks the container's systemd to power off (SIGRTMIN+3)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self._log.close()
