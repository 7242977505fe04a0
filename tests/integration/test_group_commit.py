"""Exactly once at fleet scale, through collector crashes, a crash between the tables of one
write, and a replay of an old, already acked spool: real collector processes on loopback, a
simulated fleet of real agent spools and senders (tests/integration/fleetsim.py), and the store
read back table by table after the collector stopped.

Every check is exact: count and sum of values per metric, per (metric, minute) and per (metric,
hour) against what the fleet accepted (appended to its spools); `samples_1m` / `samples_1h`
against the raw `samples` for every (series, minute) and (series, hour); no point twice.

(b) needs the collector's fault hook (FERRY_FAULT_AFTER_INSERT=<table>: SIGKILL itself right
after the first insert into that table returned); against a collector without it the test
skips, saying so. Run with -s for the figures.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.integration.procs import Proc, start_collector, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FAULT_ENV = "FERRY_FAULT_AFTER_INSERT"
# every simulated agent streams from 127.0.0.1: one peer as far as the collector's per-peer
# stream cap (64 by default) can tell, where a real fleet is 200 hosts
COLLECTOR_ARGS = ("--max-streams-per-peer", "1024")


class Procs:
    """Every process a test starts, killed on the way out whatever happened."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.collectors: list[Proc] = []
        self.fleets: list[tuple[subprocess.Popen, Path]] = []

    def collector(self, port: int, env: dict[str, str] | None = None) -> Proc:
        proc = start_collector(self.workdir, *COLLECTOR_ARGS, store=self.store, port=port, env=env)
        self.collectors.append(proc)
        return proc

    @property
    def store(self) -> Path:
        return self.workdir / "store"

    def fleet(self, name: str, *args: str) -> tuple[subprocess.Popen, Path]:
        """Start fleetsim with `args`; returns it and the JSON file it writes when it is done."""
        out = self.workdir / f"{name}.json"
        log = self.workdir / f"{name}.log"
        with log.open("ab") as fh:
            popen = subprocess.Popen(
                [sys.executable, "-m", "tests.integration.fleetsim", *args, "--out", str(out)],
                cwd=ROOT,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.fleets.append((popen, log))
        return popen, out

    def finish(self, fleet: tuple[subprocess.Popen, Path], timeout: float) -> dict:
        """Wait for a fleet to exit (drained, or its own --timeout) and return what it wrote."""
        popen, out = fleet
        try:
            code = popen.wait(timeout)
        except subprocess.TimeoutExpired:
            popen.terminate()  # it writes what it accepted on SIGTERM
            code = popen.wait(30)
        assert out.exists(), f"fleetsim exited {code} without writing {out.name}"
        result = json.loads(out.read_text())
        assert code == 0 and result["drained"], f"fleetsim not drained (exit {code}): {status(result)}"
        return result

    def close(self) -> None:
        for popen, _log in self.fleets:
            if popen.poll() is None:
                popen.terminate()
                try:
                    popen.wait(10)
                except subprocess.TimeoutExpired:
                    popen.kill()
                    popen.wait()
        for proc in self.collectors:
            proc.stop()

    def logs(self) -> str:
        paths = [p.log for p in self.collectors] + [log for _, log in self.fleets]
        seen, out = set(), []
        for path in paths:
            if path in seen or not path.exists():
                continue
            seen.add(path)
            out.append(f"\n--- {path.name} (tail) ---\n{path.read_text(errors='replace')[-3000:]}")
        return "".join(out)


@pytest.fixture
def procs(tmp_path, monkeypatch):
    monkeypatch.delenv(FAULT_ENV, raising=False)  # only the process meant to crash gets it
    p = Procs(tmp_path)
    try:
        yield p
    finally:
        p.close()


@contextlib.contextmanager
def diagnose(procs: Procs):
    try:
        yield
    except Exception:  # not pytest's skip and xfail outcomes (BaseExceptions)
        print(procs.logs())
        raise


def status(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in ("minutes", "hours", "metrics", "series")}


def ok_frames(collector: Proc) -> float:
    """Frames this collector process acked OK (0 while it cannot be scraped)."""
    try:
        return collector.scrape().get('ferry_collector_frames_total{status="OK"}', 0.0)
    except OSError:
        return 0.0


def read_store(store: Path) -> dict:
    """The store's totals (fleetsim.read_store), read by a process of its own once the collector
    has exited: embedded chDB holds one store path per process."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration.fleetsim", "--read-store", f"chdb://{store}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"reading the store failed:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout)


def _buckets(rows: list[list]) -> dict[tuple[str, int], tuple[int, float]]:
    return {(name, int(t)): (int(c), float(s)) for name, t, c, s in rows}


def _differences(stored: dict, expected: dict, limit: int = 8) -> list:
    keys = sorted(set(stored) | set(expected))
    return [(k, stored.get(k), expected.get(k)) for k in keys if stored.get(k) != expected.get(k)][:limit]


def assert_exact(expected: dict, stored: dict, records: bool = False) -> None:
    """The store holds what the fleet accepted, each point once, and the rollups equal the raw
    points in every bucket."""
    assert expected["spool_dropped_frames"] == expected["rejected_frames"] == 0, status(expected)
    metrics = {n: (int(c), float(s)) for n, (c, s) in expected["metrics"].items()}
    got = {n: (int(c), float(s)) for n, (c, s) in stored["metrics"].items()}
    assert got == metrics, f"per metric (stored, accepted): {_differences(got, metrics)}"
    assert stored["series"] == expected["series"]
    assert stored["duplicate_points"] == 0
    for raw, rolled, key in (("minutes", "minutes_1m", "minutes"), ("hours", "hours_1h", "hours")):
        want = _buckets(expected[key])
        for table in (raw, rolled):
            have = _buckets(stored[table])
            assert have == want, (
                f"{table} per (metric, bucket): (stored, accepted) {_differences(have, want)}"
            )
    for rollup in ("rollup_1m", "rollup_1h"):
        r = stored[rollup]
        assert r["rows"] > 0 and r["mismatched"] == 0, (
            f"{rollup}: {r['mismatched']} of {r['rows']} (series, bucket) differ from the raw samples, "
            f"e.g. (series_id, t, raw count, rollup count, raw sum, rollup sum) {r['examples']}"
        )
    if records:
        assert expected["events"] > 0 and expected["logs"] > 0
    assert (stored["events"], stored["logs"]) == (expected["events"], expected["logs"])
    assert stored["duplicate_events"] == stored["duplicate_logs"] == 0


# ---- (a) 200 agents, the collector SIGKILLed and restarted three times ------------------------

AGENTS, FRAMES_PER_AGENT = 200, 6


def test_a_200_agents_through_three_collector_sigkills(procs):
    port = free_port()
    collector = procs.collector(port)
    started = time.monotonic()
    fleet = procs.fleet(
        "fleet-a",
        "--collector",
        collector.addr,
        "--agents",
        str(AGENTS),
        "--spool-dir",
        str(procs.workdir / "spools"),
        "--frames-per-agent",
        str(FRAMES_PER_AGENT),
        "--interval",
        "1.0",
        "--backoff-cap",
        "2.0",
        "--timeout",
        "240",
    )
    total_frames = AGENTS * FRAMES_PER_AGENT
    acked_before_kills = 0.0
    with diagnose(procs):
        for kill in range(3):
            # mid-stream: this process has acked a share of the fleet's frames, the fleet goes on
            wait_for(
                lambda c=collector: ok_frames(c) >= 150 or fleet[0].poll() is not None,
                timeout=120,
                what=f"acks before kill {kill + 1}",
            )
            assert fleet[0].poll() is None, "the fleet finished before the collector was killed"
            acked_before_kills += ok_frames(collector)
            assert collector.stop(signal.SIGKILL) == -signal.SIGKILL
            collector = procs.collector(port)
        # the kills came before every frame had been acked once (OK acks count resends too)
        assert acked_before_kills < total_frames
        expected = procs.finish(fleet, timeout=250)
        settled_s = time.monotonic() - started
        assert collector.stop() == 0
        stored = read_store(procs.store)
        print(
            f"\n(a) {AGENTS} agents x {FRAMES_PER_AGENT} frames = {expected['frames']} frames, "
            f"{expected['points']} points; 3 collector SIGKILLs; acks {expected['acks']}, "
            f"{expected['reconnects']} reconnects, {expected['backpressure']} RESOURCE_EXHAUSTED; "
            f"drained {settled_s:.1f}s after the start; rollup rows checked "
            f"1m {stored['rollup_1m']['rows']}, 1h {stored['rollup_1h']['rows']}"
        )
        assert expected["frames"] == total_frames
        assert_exact(expected, stored)


# ---- (b) a crash between two tables of one write -------------------------------------------------


# the tables a group writes, in the collector's order: raw samples, their rollups, the records
FAULT_TABLES = ("samples", "samples_1m", "events")
_no_hook: list[str] = []  # why the first case skipped: the collector lacks the hook


def _holds(partial: dict, table: str) -> int:
    """Rows of the sim's data `table` held when the collector killed itself after writing it."""
    if table == "samples":
        return sum(c for c, _ in partial["metrics"].values())
    if table == "samples_1m":
        return sum(c for _, _, c, _ in partial["minutes_1m"])
    return partial[table]


@pytest.mark.parametrize("table", FAULT_TABLES)
def test_b_sigkill_between_the_tables_of_a_group(procs, table):
    if _no_hook:
        pytest.skip(_no_hook[0])
    port = free_port()
    collector = procs.collector(port, env={FAULT_ENV: table})
    agents, frames = 40, 4
    fleet = procs.fleet(
        "fleet-b",
        "--collector",
        collector.addr,
        "--agents",
        str(agents),
        "--spool-dir",
        str(procs.workdir / "spools"),
        "--frames-per-agent",
        str(frames),
        "--interval",
        "0.25",
        "--records",
        "3",
        "--backoff-cap",
        "1.0",
        "--timeout",
        "120",
    )
    with diagnose(procs):
        # with the hook the collector dies at its first write, before it acks a frame, so the
        # fleet cannot drain; without it the fleet drains and the collector lives on
        wait_for(
            lambda: collector.popen.poll() is not None or fleet[0].poll() is not None,
            timeout=120,
            what="the collector to kill itself (or the fleet to drain without it)",
        )
        if collector.popen.poll() is None:
            drained = procs.finish(fleet, timeout=30)
            _no_hook.append(
                f"collector has no {FAULT_ENV} hook yet: it acked all {drained['frames']} frames "
                f"({drained['acks']}) with {FAULT_ENV}={table} and is still running"
            )
            pytest.skip(_no_hook[0])
        assert collector.popen.returncode == -signal.SIGKILL, (
            f"the collector exited {collector.popen.returncode}, not by SIGKILL:\n"
            f"{collector.output()[-3000:]}"
        )
        partial = read_store(procs.store)  # what the crash left: part of the group's tables
        assert _holds(partial, table) > 0, f"the insert into {table} left nothing before the kill"
        collector = procs.collector(port)  # without the hook
        expected = procs.finish(fleet, timeout=130)
        assert collector.stop() == 0
        stored = read_store(procs.store)
        print(
            f"\n(b) {agents} agents x {frames} frames with events and logs, killed after the first "
            f"insert into {table}: it left samples {_holds(partial, 'samples')} points, "
            f"samples_1m {_holds(partial, 'samples_1m')} counted (mismatched 1m/1h rows "
            f"{partial['rollup_1m']['mismatched']}/{partial['rollup_1h']['mismatched']}), "
            f"events {partial['events']}, logs {partial['logs']}; after the restart acks {expected['acks']}"
        )
        assert expected["frames"] == agents * frames
        assert_exact(expected, stored, records=True)


# ---- (c) a spool replayed after a collector restart, hours old ----------------------------------

REPLAY_AGENTS, REPLAY_FRAMES = 20, 5


@pytest.fixture(scope="module")
def replay(tmp_path_factory):
    """Build 20 agents' spools of frames 1-3 hours old, copy them aside, deliver them, SIGKILL
    the collector, restart it on its store and deliver the copies again with fresh Senders."""
    workdir = tmp_path_factory.mktemp("replay")
    procs = Procs(workdir)
    try:
        with diagnose(procs):
            spools, copies = workdir / "spools", workdir / "spools-copy"
            common = ("--frames-per-agent", str(REPLAY_FRAMES), "--timeout", "90", "--backoff-cap", "1.0")
            build = procs.fleet(
                "build",
                "--no-send",
                "--agents",
                str(REPLAY_AGENTS),
                "--spool-dir",
                str(spools),
                "--age-max",
                "10800",
                "--age-min",
                "3600",
                *common,
            )
            built = _built(build)
            shutil.copytree(spools, copies)  # before delivery: the frames as they were spooled
            port = free_port()
            collector = procs.collector(port)
            first = procs.finish(
                procs.fleet(
                    "deliver",
                    "--deliver-only",
                    "--collector",
                    collector.addr,
                    "--spool-dir",
                    str(spools),
                    *common,
                ),
                timeout=90,
            )
            assert collector.stop(signal.SIGKILL) == -signal.SIGKILL
            before = read_store(procs.store)
            collector = procs.collector(port)
            again = procs.finish(
                procs.fleet(
                    "replay",
                    "--deliver-only",
                    "--collector",
                    collector.addr,
                    "--spool-dir",
                    str(copies),
                    *common,
                ),
                timeout=90,
            )
            assert collector.stop() == 0
            after = read_store(procs.store)
            yield {"built": built, "first": first, "before": before, "again": again, "after": after}
    finally:
        procs.close()


def _built(fleet: tuple[subprocess.Popen, Path]) -> dict:
    popen, out = fleet
    assert popen.wait(60) == 0, f"building the spools failed (exit {popen.returncode})"
    return json.loads(out.read_text())


def test_c_replayed_old_spool_after_restart_stores_nothing_new(replay):
    built, first, before, again, after = (replay[k] for k in ("built", "first", "before", "again", "after"))
    frames = REPLAY_AGENTS * REPLAY_FRAMES
    assert built["frames"] == frames
    now_ms = built["start_ms"]
    assert now_ms - 3 * 3_600_000 <= built["min_ts_ms"] and built["max_ts_ms"] <= now_ms - 3_600_000
    # the first delivery: every frame new
    assert first["acks"] == {"OK": frames, "DUPLICATE": 0, "REJECTED": 0}
    assert_exact(built, before)
    # the replay: every frame answered, none rejected, and not one point more in any table
    assert sum(again["acks"].values()) == frames and again["acks"]["REJECTED"] == 0, again["acks"]
    assert after == before
    print(f"\n(c) {frames} frames 1-3 h old replayed after a collector restart: acks {again['acks']}")


def test_c_replayed_old_spool_after_restart_is_answered_duplicate(replay):
    """A collector that rebuilds its high-water marks from the store at start answers the replay
    DUPLICATE without writing anything; today's keeps them in memory only, so after a restart it
    acks OK and relies on ClickHouse's insert tokens (nothing is stored twice either way: the
    test above)."""
    frames = REPLAY_AGENTS * REPLAY_FRAMES
    acks = replay["again"]["acks"]
    if acks["OK"] and not replay["after"]["ledger_rows_1m"]:
        pytest.xfail(
            f"today's collector forgets its high-water marks when restarted: the replay was acked "
            f"{acks} (OK with nothing new stored; the store's insert tokens deduplicated it)"
        )
    assert acks == {"OK": 0, "DUPLICATE": frames, "REJECTED": 0}
