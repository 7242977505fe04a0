"""A fleet of simulated agents in one process, for delivery tests at fleet scale.

Each simulated agent is the real agent's delivery path and nothing else: its own on-disk
`ferry.agent.spool.Spool` (a directory under --spool-dir named by its agent_id) and its own
`ferry.agent.sender.Sender`, all Senders on one asyncio loop. A frame is appended to the spool
(fsynced) before it can be sent, leaves it only when acked, and is resent in order after any
reconnect, exactly as in `ferry-agent`. What the sim adds is the source: host-cycle shaped frames
(every series once, at one timestamp), 30-300 series an agent, metric names `sim.m0`..`sim.m9`
with a label `idx`, integer values (so sums compare exactly), timestamps spread over a window of
the past (never in the future), optionally with events and logs in the same frames.

The sim tallies what it *accepted* (appended to a spool): count and sum of values per metric,
per (metric, minute) and per (metric, hour) of the point times, and the records. It writes that
to --out as JSON once everything is appended and every spool is drained (all acked), or when it
gets SIGTERM, or at --timeout (then with "drained": false).

Modes:
  (default)        append --frames-per-agent frames per agent, one every --interval s, and deliver
  --no-send        only build the spools (all frames at once); nothing is sent
  --deliver-only   deliver the spools already under --spool-dir (fresh Senders), append nothing
  --read-store DSN read an embedded store (after its collector stopped) and print its totals as JSON

    python -m tests.integration.fleetsim --collector 127.0.0.1:4770 --agents 200 \
        --spool-dir /tmp/fleet --frames-per-agent 8 --out /tmp/fleet/expected.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import sys
import time
from pathlib import Path

import numpy as np
from prometheus_client import REGISTRY

from ferry.agent.sender import Sender
from ferry.agent.spool import Spool
from ferry.v1 import payload_pb2
from ferry.wire.codec import encode_payload
from ferry.wire.columns import GAUGE, MetricBatch, SeriesDef

PREFIX = "sim."
METRICS = 10  # metric names sim.m0 .. sim.m9; series j of an agent is named sim.m{j % 10}
AGENT_PREFIX = "sim-"
SERVICE = "fleetsim"
STATUSES = ("OK", "DUPLICATE", "REJECTED")

log = logging.getLogger("fleetsim")


def metric_name(j: int) -> str:
    return f"{PREFIX}m{j % METRICS}"


def acks_by_status() -> dict[str, int]:
    """The real agent self-metric ferry_agent_acks_total, summed over every Sender of the process."""
    return {s: int(REGISTRY.get_sample_value("ferry_agent_acks_total", {"status": s}) or 0) for s in STATUSES}


def counter(name: str) -> int:
    return int(REGISTRY.get_sample_value(name) or 0)


class Tally:
    """What the fleet accepted: appended to a spool (the promise's "accepted")."""

    def __init__(self) -> None:
        self.frames = 0
        self.points = 0
        self.events = 0
        self.logs = 0
        self.metrics: dict[str, list[int]] = {}  # name -> [count, sum]
        self.minutes: dict[tuple[str, int], list[int]] = {}  # (name, minute start s) -> [count, sum]
        self.hours: dict[tuple[str, int], list[int]] = {}
        self.series: dict[str, int] = {}  # name -> series of the agents that appended a frame
        self.min_ts_ms: int | None = None
        self.max_ts_ms: int | None = None

    def add(self, agent: SimAgent, t_ms: int, values: np.ndarray, events: int, logs: int) -> None:
        self.frames += 1
        self.points += len(values)
        self.events += events
        self.logs += logs
        self.min_ts_ms = t_ms if self.min_ts_ms is None else min(self.min_ts_ms, t_ms)
        self.max_ts_ms = t_ms if self.max_ts_ms is None else max(self.max_ts_ms, t_ms)
        sums = np.bincount(agent.name_idx, weights=values, minlength=METRICS)
        minute, hour = t_ms // 60_000 * 60, t_ms // 3_600_000 * 3600
        for k in range(METRICS):
            n = int(agent.name_counts[k])
            if not n:
                continue
            name, s = metric_name(k), int(sums[k])
            for table, key in (
                (self.metrics, name),
                (self.minutes, (name, minute)),
                (self.hours, (name, hour)),
            ):
                cell = table.setdefault(key, [0, 0])
                cell[0] += n
                cell[1] += s
        if agent.appended == 1:
            for k in range(METRICS):
                if agent.name_counts[k]:
                    self.series[metric_name(k)] = self.series.get(metric_name(k), 0) + int(
                        agent.name_counts[k]
                    )

    def to_json(self) -> dict:
        return {
            "frames": self.frames,
            "points": self.points,
            "events": self.events,
            "logs": self.logs,
            "metrics": self.metrics,
            "series": self.series,
            "minutes": [[n, t, c, s] for (n, t), (c, s) in sorted(self.minutes.items())],
            "hours": [[n, t, c, s] for (n, t), (c, s) in sorted(self.hours.items())],
            "min_ts_ms": self.min_ts_ms,
            "max_ts_ms": self.max_ts_ms,
        }


class SimAgent:
    def __init__(
        self,
        index: int,
        root: Path,
        addresses: list[str],
        n_series: int,
        fsync: str,
        window: int,
        backoff_cap_s: float,
        agent_id: str | None = None,
    ):
        self.index = index
        self.agent_id = agent_id or f"{AGENT_PREFIX}{index:04d}"
        self.host = f"simhost-{self.agent_id.removeprefix(AGENT_PREFIX)}"
        self.spool = Spool(root / self.agent_id, self.agent_id, fsync=fsync)
        self.sender = Sender(self.spool, addresses, window=window, backoff_cap_s=backoff_cap_s)
        self.series = [SeriesDef(metric_name(j), GAUGE, "1", (("idx", str(j)),)) for j in range(n_series)]
        self.name_idx = np.arange(n_series) % METRICS
        self.name_counts = np.bincount(self.name_idx, minlength=METRICS)
        self.refs = np.arange(n_series, dtype=np.uint32)
        self.resource = payload_pb2.Resource(host=self.host, agent_id=self.agent_id, agent_version="fleetsim")
        self.appended = 0

    def values(self, k: int) -> np.ndarray:
        """Integer values (exact sums in Float64): series j of frame k."""
        j = np.arange(len(self.series), dtype=np.int64)
        return ((self.index * 31 + k * 17 + j * 7) % 1000).astype(np.float64)

    def append(self, k: int, t_ms: int, records: int, tally: Tally) -> None:
        """Frame k (from 1) of this agent: every series once at `t_ms`, and `records` events and
        `records` log records; into the spool (durable before this returns), then tallied."""
        values = self.values(k)
        batch = MetricBatch(self.series, self.refs, np.full(len(self.series), t_ms, dtype=np.int64), values)
        t_ns = t_ms * 1_000_000
        events = [
            payload_pb2.Event(
                time_unix_ns=t_ns + r,
                type=f"{PREFIX}click",
                category="sim",
                action="frame",
                label=f"{self.agent_id}/{k}/{r}",
                value=float(r),
                has_value=True,
                service=SERVICE,
            )
            for r in range(records)
        ]
        logs = [
            payload_pb2.LogRecord(
                time_unix_ns=t_ns + r,
                level="info",
                message=f"sim frame {k} record {r}",
                service=SERVICE,
                attributes={"agent": self.agent_id},
            )
            for r in range(records)
        ]
        payload = encode_payload(self.resource, batch, events=events, logs=logs)
        self.spool.append(payload, len(values))
        self.appended += 1
        tally.add(self, t_ms, values, len(events), len(logs))
        self.sender.wake.set()


def frame_time_ms(start_ms: int, agent: int, k: int, frames: int, age_max_s: float, age_min_s: float) -> int:
    """The time of frame k (1..frames) of an agent: within [start - age_max_s, start - age_min_s]
    (never after the sim started), increasing with k (distinct per frame), the last frame at
    age_min_s, each agent shifted back by its own offset of < 1 s (when the span allows it)."""
    span_ms = int((age_max_s - age_min_s) * 1000)
    offset = (agent * 7919) % 997 if span_ms > 1000 else 0
    step = (span_ms - (997 if offset or span_ms > 1000 else 0)) / max(frames - 1, 1)
    return int(start_ms - age_min_s * 1000 - (frames - k) * step - offset)


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


class Fleet:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.root = Path(args.spool_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self.addresses = args.collector.split(",") if args.collector else []
        self.tally = Tally()
        self.started = time.monotonic()
        self.start_ms = int(time.time() * 1000)
        self.agents: list[SimAgent] = []
        self.terminated = asyncio.Event()

    def open_agents(self) -> None:
        a = self.args
        if a.deliver_only:
            ids = sorted(
                p.name for p in self.root.iterdir() if p.is_dir() and p.name.startswith(AGENT_PREFIX)
            )
            for i, agent_id in enumerate(ids):
                self.agents.append(
                    SimAgent(i, self.root, self.addresses, 1, a.fsync, a.window, a.backoff_cap, agent_id)
                )
            return
        rng = random.Random(a.seed)
        for i in range(a.agents):
            n_series = rng.randint(a.series_min, a.series_max)
            self.agents.append(
                SimAgent(i, self.root, self.addresses, n_series, a.fsync, a.window, a.backoff_cap)
            )

    def time_of(self, agent: SimAgent, k: int) -> int:
        a = self.args
        return frame_time_ms(self.start_ms, agent.index, k, a.frames_per_agent, a.age_max, a.age_min)

    async def produce(self, agent: SimAgent) -> None:
        a = self.args
        await asyncio.sleep(random.Random(agent.index).uniform(0, a.interval))
        for k in range(1, a.frames_per_agent + 1):
            if self.terminated.is_set():
                return
            agent.append(k, self.time_of(agent, k), a.records, self.tally)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.terminated.wait(), timeout=a.interval)

    def unacked(self) -> int:
        return sum(len(x.spool) for x in self.agents)

    def status(self) -> dict:
        return {
            "agents": len(self.agents),
            "appended_frames": self.tally.frames,
            "unacked_frames": self.unacked(),
            "acks": acks_by_status(),
            "frames_sent": counter("ferry_agent_frames_sent_total"),
            "reconnects": counter("ferry_agent_reconnects_total"),
            "backpressure": counter("ferry_agent_backpressure_total"),
            "spool_dropped_frames": counter("ferry_agent_spool_dropped_frames_total"),
            "rejected_frames": counter("ferry_agent_frames_rejected_total"),
            "seconds": round(time.monotonic() - self.started, 2),
        }

    def result(self, drained: bool, reason: str) -> dict:
        out = {"drained": drained, "reason": reason, "start_ms": self.start_ms, **self.status()}
        out.update(self.tally.to_json())
        out["acked_frames"] = sum(out["acks"].values())
        return out

    async def run(self) -> int:
        a = self.args
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.terminated.set)
        loop.add_signal_handler(signal.SIGINT, self.terminated.set)
        self.open_agents()
        out = Path(a.out)
        if a.no_send:
            for agent in self.agents:
                for k in range(1, a.frames_per_agent + 1):
                    agent.append(k, self.time_of(agent, k), a.records, self.tally)
            self.close()
            write_json(out, self.result(False, "built"))
            return 0
        stop = asyncio.Event()
        senders = [asyncio.create_task(x.sender.run(stop)) for x in self.agents]
        producers = [] if a.deliver_only else [asyncio.create_task(self.produce(x)) for x in self.agents]
        deadline = time.monotonic() + a.timeout
        reason, last_print = "timeout", 0.0
        while time.monotonic() < deadline:
            if self.terminated.is_set():
                reason = "SIGTERM"
                break
            if all(p.done() for p in producers) and self.unacked() == 0:
                reason = "drained"
                break
            if time.monotonic() - last_print >= 2.0:
                last_print = time.monotonic()
                print(json.dumps(self.status()), flush=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.terminated.wait(), timeout=0.1)
        for p in producers:
            p.cancel()
        for p in producers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await p
        # stop: a drained Sender ends its stream cleanly; the others are cut off after a moment
        # (what they hold stays spooled, as with an agent that exits)
        stop.set()
        _done, pending = await asyncio.wait(senders, timeout=5.0 if reason == "drained" else 1.0)
        for s in pending:
            s.cancel()
        for s in senders:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await s
        drained = self.unacked() == 0 and reason == "drained"
        result = self.result(drained, reason)
        self.close()
        write_json(out, result)
        print(json.dumps({k: v for k, v in result.items() if k not in ("minutes", "hours")}), flush=True)
        return 0 if reason != "timeout" else 3

    def close(self) -> None:
        for x in self.agents:
            x.spool.close()


# ---- reading the store back ---------------------------------------------------------------------


def read_store(dsn: str) -> dict:
    """The store's totals for the sim's data, to compare with what the sim accepted. Run in a
    process of its own after the collector stopped (embedded chDB: one store path a process)."""
    from ferry.collector.storage.store import Store

    store = Store.open(dsn)
    db = store.db
    sim = f"startsWith(name, '{PREFIX}') AND NOT startsWith(name, '#')"
    minute = "intDiv(toUnixTimestamp64Milli(ts), 60000) * 60"
    hour = "intDiv(toUnixTimestamp64Milli(ts), 3600000) * 3600"

    def q(sql: str) -> list[list]:
        return [list(r) for r in store.query(sql)]

    def rollup_vs_raw(table: str, bucket: str) -> dict:
        """Per (series_id, bucket): the rollup's sum(sum), sum(count) against the raw sum(value),
        count(); rows missing on one side count as mismatches (the join fills in 0)."""
        sql = f"""
SELECT count(), countIf(raw_c != roll_c OR raw_s != roll_s),
       groupArrayIf(5)(tuple(series_id, t, raw_c, roll_c, raw_s, roll_s), raw_c != roll_c OR raw_s != roll_s)
FROM (SELECT series_id, {bucket} AS t, count() AS raw_c, sum(value) AS raw_s
      FROM {db}.samples WHERE {sim} GROUP BY series_id, t) AS r
FULL OUTER JOIN
     (SELECT series_id, toUnixTimestamp(ts) AS t, sum(count) AS roll_c, sum(sum) AS roll_s
      FROM {db}.{table} WHERE {sim} GROUP BY series_id, t) AS m
USING (series_id, t)"""
        [[rows, bad, examples]] = q(sql)
        return {"rows": int(rows), "mismatched": int(bad), "examples": [list(e) for e in examples]}

    def buckets(table: str, bucket: str, count: str, total: str) -> list[list]:
        return [
            [n, int(t), int(c), float(s)]
            for n, t, c, s in q(
                f"SELECT name, {bucket} AS t, {count}, {total} FROM {db}.{table} WHERE {sim} "
                "GROUP BY name, t ORDER BY name, t"
            )
        ]

    out = {
        "metrics": {
            n: [int(c), float(s)]
            for n, c, s in q(f"SELECT name, count(), sum(value) FROM {db}.samples WHERE {sim} GROUP BY name")
        },
        "series": {
            n: int(c)
            for n, c in q(f"SELECT name, uniqExact(series_id) FROM {db}.samples WHERE {sim} GROUP BY name")
        },
        "duplicate_points": int(
            q(f"SELECT count() - uniqExact(series_id, ts) FROM {db}.samples WHERE {sim}")[0][0]
        ),
        "minutes": buckets("samples", minute, "count()", "sum(value)"),
        "hours": buckets("samples", hour, "count()", "sum(value)"),
        "minutes_1m": buckets("samples_1m", "toUnixTimestamp(ts)", "sum(count)", "sum(sum)"),
        "hours_1h": buckets("samples_1h", "toUnixTimestamp(ts)", "sum(count)", "sum(sum)"),
        "rollup_1m": rollup_vs_raw("samples_1m", minute),
        "rollup_1h": rollup_vs_raw("samples_1h", hour),
        "ledger_rows_1m": int(q(f"SELECT count() FROM {db}.samples_1m WHERE startsWith(name, '#')")[0][0]),
    }
    for table in ("events", "logs"):
        [[c, dup]] = q(
            f"SELECT count(), count() - uniqExact(agent_id, ts) FROM {db}.{table} "
            f"WHERE startsWith(agent_id, '{AGENT_PREFIX}') AND service = '{SERVICE}'"
        )
        out[table] = int(c)
        out[f"duplicate_{table}"] = int(dup)
    store.close()
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="fleetsim", description=__doc__.split("\n\n")[0])
    p.add_argument("--collector", default="", help="collector address(es), comma separated")
    p.add_argument("--agents", type=int, default=200)
    p.add_argument("--spool-dir", default="")
    p.add_argument("--frames-per-agent", type=int, default=8)
    p.add_argument("--interval", type=float, default=0.5, help="seconds between an agent's frames")
    p.add_argument("--series-min", type=int, default=30)
    p.add_argument("--series-max", type=int, default=300)
    p.add_argument("--records", type=int, default=0, help="events and log records in each frame (each)")
    p.add_argument("--age-max", type=float, default=3300.0, help="the first frame's age, seconds")
    p.add_argument("--age-min", type=float, default=5.0, help="the last frame's age, seconds")
    p.add_argument("--window", type=int, default=32, help="the Senders' send window")
    p.add_argument("--backoff-cap", type=float, default=10.0, help="the Senders' reconnect backoff cap")
    p.add_argument("--fsync", default="frame", choices=("frame", "interval"))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--out", default="")
    p.add_argument("--no-send", action="store_true", help="only build the spools")
    p.add_argument("--deliver-only", action="store_true", help="deliver the spools under --spool-dir")
    p.add_argument("--read-store", default="", metavar="DSN", help="print the store's totals as JSON")
    p.add_argument("--log-level", default="error")
    args = p.parse_args(argv)
    if not args.read_store:
        if not args.spool_dir or not args.out:
            p.error("--spool-dir and --out are required")
        if not args.no_send and not args.collector:
            p.error("--collector is required unless --no-send")
        if args.age_min < 0 or args.age_max < args.age_min:
            p.error("need 0 <= --age-min <= --age-max (points are never in the future)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    if args.read_store:
        print(json.dumps(read_store(args.read_store)))
        return 0
    return asyncio.run(Fleet(args).run())


if __name__ == "__main__":
    sys.exit(main())
