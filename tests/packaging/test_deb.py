"""`make deb`'s packages: lintian, what each carries, and both installed into a Debian 12 root
booted with real systemd (systemd-nspawn): Type=notify, the watchdog, reload, a query, a purge.

Skipped, saying which, only where the tools are missing (`.ci/run` installs them as root).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from tests.packaging import nspawn
from tests.paths import deb_builder

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        bool(nspawn.missing_tools()) or not Path("/usr/bin/python3").exists(),
        reason=f"needs {', '.join(nspawn.missing_tools()) or '/usr/bin/python3'} "
        "(Debian: debootstrap systemd-container lintian patchelf; .ci/run installs them)",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
DECLARED = tomllib.loads((ROOT / "packaging/deb/packages.toml").read_text())
debbuild = deb_builder()


@pytest.fixture(scope="module")
def debs(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, str(ROOT / "packaging/deb/build.py"), "--out", str(out)],
        capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    found = {p.name.split("_")[0]: p for p in out.glob("*.deb")}
    assert set(found) == set(DECLARED), found
    for name, deb in found.items():
        print(f"{deb.name}: {deb.stat().st_size / 2**20:.1f} MiB")
        assert deb.name == f"{name}_{debbuild.version()}_{debbuild.architecture()}.deb"
    return found


def _contents(deb: Path) -> list[str]:
    out = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    return [line.split()[5].removeprefix(".") for line in out.splitlines()]


def _field(deb: Path, name: str) -> str:
    out = subprocess.run(["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_each_package_carries_its_venv_scripts_unit_and_conffile(debs):
    for name, spec in DECLARED.items():
        files = _contents(debs[name])
        site = f"{spec['venv']}/lib/python3.11/site-packages/"
        dists = {f[len(site) :].split("/")[0] for f in files if f.startswith(site)}
        for script in spec["scripts"]:
            assert f"/usr/bin/{script}" in files and f"{spec['venv']}/bin/{script}" in files
        assert f"/lib/systemd/system/{spec['unit']}" in files
        assert f"/etc/ferry/{spec['conffile']}" in files
        forbidden = {f.replace("-", "_") for f in spec["forbidden"]}
        assert not {d for d in dists if d.split("-")[0].lower() in forbidden}, (name, sorted(dists))
        control = subprocess.run(
            ["dpkg-deb", "--ctrl-tarfile", str(debs[name])], capture_output=True, check=True
        ).stdout
        assert b"./conffiles" in control and b"./postinst" in control
        size = _field(debs[name], "Installed-Size")
        print(f"{name}: {len(dists)} entries in site-packages, Installed-Size {size} KiB")
        assert {"ferry", "grpc", "google", "zstandard", "lz4"} <= dists, (name, sorted(dists))
        if name == "ferry-agent":
            assert {"psutil", "opentelemetry"} <= dists
        else:
            assert {"chdb", "clickhouse_connect", "numpy", "pyarrow"} <= dists


@pytest.fixture(scope="module")
def box(tmp_path_factory, debs, lintian):
    base = tmp_path_factory.mktemp("nspawn")
    root = nspawn.stock_root(base / "root")
    container = None
    try:
        container = nspawn.Container(root, base / "boot.log")
        state = container.booted()
        assert state == "running", f"the container's systemd is {state}"
        yield container
    finally:
        if container is not None:
            container.stop()
        subprocess.run(["rm", "-rf", str(root)], check=False)


def _wait(what: str, check, timeout: float = 90):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(1)
    raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})")


def _active(box: nspawn.Container, unit: str) -> dict[str, str]:
    return box.show(unit, "ActiveState", "SubState", "MainPID", "NRestarts", "Type", "Result")


def _running(box: nspawn.Container, unit: str, not_pid: str = "0") -> dict[str, str]:
    """The unit's state once it is active (running) under a main pid other than `not_pid`."""

    def check() -> dict[str, str] | None:
        state = _active(box, unit)
        return state if state["SubState"] == "running" and state["MainPID"] not in ("0", not_pid) else None

    return _wait(f"{unit} active (running)", check)


def _query(box: nspawn.Container, expr: str) -> subprocess.CompletedProcess:
    return box.run("ferry", "query", expr, "--since", "5m", check=False)


def test_both_packages_boot_as_notify_services_and_the_agent_reaches_the_collector(box, debs):
    # the agent alone first: it runs (spooling) on a host that has no collector yet
    box.run("dpkg", "-i", box.copy_in(debs["ferry-agent"]))
    agent = _running(box, "ferry-agent")
    assert agent["Type"] == "notify" and agent["ActiveState"] == "active"
    assert box.run("systemctl", "is-enabled", "ferry-agent").stdout.strip() == "enabled"
    assert box.run("id", "-u", "ferry").stdout.strip()
    assert "python3.11" in box.run("readlink", "-f", "/opt/ferry/agent/bin/python").stdout  # Debian's python3
    # no store side in the agent's venv: the agent runs without numpy
    assert box.run("/opt/ferry/agent/bin/python", "-c", "import numpy", check=False).returncode != 0
    box.run("dpkg", "-i", box.copy_in(debs["ferry-collector"]))
    collector = _running(box, "ferry-collector")
    assert collector["Type"] == "notify"
    status = box.run("systemctl", "status", "ferry-collector", "ferry-agent", "--no-pager", check=False)
    status = status.stdout
    print(status)
    assert status.count("Active: active (running)") == 2
    # the spool and the store: the ferry user's alone, after postinst and after systemd's StateDirectory=
    assert box.run("stat", "-c", "%U:%G %a", "/var/lib/ferry").stdout.strip() == "ferry:ferry 750"

    def memory() -> str | None:
        out = _query(box, "system.memory.usage")
        return out.stdout if out.returncode == 0 and "system.memory.usage" in out.stdout else None

    table = _wait("ferry query sees the agent's host metrics", memory, timeout=120)
    print(table)
    host = box.run("hostname").stdout.strip()
    assert f'host="{host}"' in table and re.search(r"\d(\.\d+)? (MiB|GiB)", table), table


def test_systemctl_reload_applies_the_agent_config_without_a_restart(box):
    before = _active(box, "ferry-agent")["MainPID"]
    conf = box.root / "etc/ferry/agent.toml"
    conf.write_text(conf.read_text().replace('# env = "prod"', 'env = "nspawn-reload"'))
    box.run("systemctl", "reload", "ferry-agent")

    def labelled() -> str | None:
        out = _query(box, 'system.memory.usage{env="nspawn-reload"}')
        return out.stdout if "nspawn-reload" in out.stdout else None

    print(_wait("a series with the reloaded label", labelled, timeout=90))
    assert _active(box, "ferry-agent")["MainPID"] == before  # reloaded in place, not restarted


def test_a_stalled_agent_is_restarted_by_the_watchdog(box):
    # a short watchdog for the test (the shipped unit's is 30 s), through a drop-in as an admin would
    dropin = box.root / "etc/systemd/system/ferry-agent.service.d"
    dropin.mkdir(parents=True, exist_ok=True)
    (dropin / "watchdog.conf").write_text("[Service]\nWatchdogSec=4\nTimeoutAbortSec=4\n")
    box.run("systemctl", "daemon-reload")
    box.run("systemctl", "restart", "ferry-agent")
    first = _running(box, "ferry-agent")
    time.sleep(6)  # the agent answers a 4 s watchdog while its loop runs
    assert _active(box, "ferry-agent")["MainPID"] == first["MainPID"]
    box.run("kill", "-STOP", first["MainPID"])  # a wedged process: no WATCHDOG=1 any more
    after = _running(box, "ferry-agent", not_pid=first["MainPID"])
    assert int(after["NRestarts"]) == int(first["NRestarts"]) + 1
    journal = box.run("journalctl", "-u", "ferry-agent", "--no-pager", "-o", "cat").stdout
    assert "Watchdog timeout" in journal, journal[-3000:]
    print(after, *[line for line in journal.splitlines() if "atchdog" in line], sep="\n")
    (dropin / "watchdog.conf").unlink()
    box.run("systemctl", "daemon-reload")


def test_an_upgrade_restarts_the_unit_and_keeps_an_edited_conffile(box, debs):
    before = _running(box, "ferry-agent")
    edited = (box.root / "etc/ferry/agent.toml").read_text()
    assert "nspawn-reload" in edited  # the reload test's edit
    # the same version again is an upgrade to dpkg: postinst configure gets the old version
    box.run("dpkg", "-i", box.copy_in(debs["ferry-agent"]))
    after = _running(box, "ferry-agent", not_pid=before["MainPID"])
    assert after["Type"] == "notify"
    assert (box.root / "etc/ferry/agent.toml").read_text() == edited


def test_purging_one_package_keeps_what_the_other_needs_then_purge_leaves_nothing(box):
    box.run("dpkg", "--purge", "ferry-agent")
    assert not (box.root / "opt/ferry/agent").exists() and not (box.root / "var/lib/ferry/spool").exists()
    assert box.run("id", "ferry", check=False).returncode == 0  # the collector still runs as ferry
    assert (box.root / "var/lib/ferry/store").is_dir()
    assert _active(box, "ferry-collector")["SubState"] == "running"
    assert box.run("systemctl", "is-enabled", "ferry-agent", check=False).stdout.strip() != "enabled"
    box.run("dpkg", "--purge", "ferry-collector")
    for path in ("/opt/ferry", "/etc/ferry", "/var/lib/ferry", "/lib/systemd/system/ferry-agent.service"):
        assert not (box.root / path.lstrip("/")).exists(), path
    assert box.run("id", "ferry", check=False).returncode != 0
    assert not list((box.root / "etc/systemd/system").rglob("ferry-*"))
    units = box.run("systemctl", "list-units", "--all", "--no-legend", "ferry-*", check=False).stdout
    assert "ferry-agent" not in units and "ferry-collector" not in units, units


@pytest.fixture(scope="module")
def lintian(debs) -> dict[str, subprocess.Popen]:
    """lintian on both packages, started at once: the collector's takes minutes, and runs while
    the container tests mostly wait (the test that reads it comes last)."""
    runs = {
        name: subprocess.Popen(["lintian", "--show-overrides", str(deb)], stdout=subprocess.PIPE, text=True)
        for name, deb in debs.items()
    }
    yield runs
    for run in runs.values():
        if run.poll() is None:
            run.kill()
        run.communicate()


def test_lintian_finds_no_error_and_only_the_declared_overrides_are_needed(lintian):
    for name, run in lintian.items():
        out, _ = run.communicate(timeout=900)
        tags = [line for line in out.splitlines() if re.match(r"^[EWIXOP]: ", line)]
        print(f"lintian {name}:", *[t for t in tags if not t.startswith("O:")], sep="\n  ")
        assert not [t for t in tags if t.startswith("E:")], tags
        # every override still answers an error lintian raises (O: lines are the overridden ones)
        overridden = {line.split()[2] for line in tags if line.startswith("O:")}
        declared = {tag.split()[0] for tag in debbuild.overrides_of(DECLARED[name])}
        assert overridden == declared, (name, overridden)
