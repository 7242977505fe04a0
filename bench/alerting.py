"""Alerting benchmark (issue 18): what evaluating rules costs, and how long a threshold crossing
takes to reach a webhook.

1. Evaluation cost, in process, on the embedded store the collector uses: `hosts` hosts (100)
   of the agent's host metrics (bench.hostday: 59 series per host at 10 s) for the last hour,
   loaded through the collector's RowBuilder, group commit and Writer (bench.storage.load).
   Then, through `QueryService(...).query_range` as the collector's engine calls it:
   - one evaluation of a typical condition rule (`avg(system.cpu.utilization{state="user"})
     by host > 0.8` over 1m) by `Evaluator.evaluate`, median of `single_runs`;
   - `rules` rules (1,000: conditions by host over a dozen metrics and matchers, ratios of two
     queries, absent rules; `rule_mix`) in one `Engine.evaluate_once` with the real
     AlertStore, median of `engine_runs` after a first run (which writes the instances'
     pending transitions: every rule has `for = "5m"`, so they stay pending and the runs after
     it write nothing); per rule, and per kind from the engine's `status[name].seconds`. And how
     long the Alerts service's read of the instances waits when it comes during an evaluation.
   Evaluation time for a rule is its queries' time: a condition with avg reads sum and count
   (2 queries), a ratio twice that, an absent rule a lookback count and a window count.
2. Notification latency: a real collector (`--rules`, `--alert-eval-interval 1s`) with one rule
   (`max(bench.alert.temp) by host > 50` over 1s, `for = "0s"`), a route with `group_wait =
   "0s"`, a local HTTP webhook (tests.collector.notify_sink.Sink). A sender pushes a frame of
   that gauge every PUSH_EVERY_S (Ingest.Push, the point stamped now); at a known moment the
   value goes from 20 to 80. Latency: the first frame carrying 80 acked → the firing webhook's
   arrival; then back to 20 until the resolved webhook came, and again, `crossings` times.
   It is bounded by the evaluation interval (the crossing waits up to one interval for the next
   evaluation), plus group_wait (0 here; the default is 30 s), plus the notifier's tick (0.2 s),
   plus the POST: with 1 s and 0 s, between ~0 and ~1.2 s, uniformly spread by where the
   crossing falls in the interval. The webhook's startsAt (the evaluation that saw it) splits it.

    python -m bench.alerting            # 100 hosts, 1,000 rules, 7 crossings
    python -m bench.alerting --quick    # 20 hosts, 1,000 rules (one timed run), 5 crossings
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import numpy as np

from bench import storage
from bench.hostday import STEP_MS
from bench.procs import collector_process
from ferry import transport
from ferry.collector.alerting.engine import Engine
from ferry.collector.alerting.evaluate import Evaluator
from ferry.collector.alerting.rulesfile import load_rules
from ferry.collector.alerting.store import AlertStore
from ferry.collector.query.service import QueryService
from ferry.collector.storage.store import Store, ThreadStores
from ferry.v1 import ingest_pb2, ingest_pb2_grpc, payload_pb2
from ferry.wire.codec import encode_payload
from ferry.wire.columns import GAUGE, MetricBatch, SeriesDef
from ferry.wire.frames import pack_frame

HOUR_MS = 3_600_000
DEFAULT_INTERVAL_S = 15.0  # --alert-eval-interval's default
FIGURES = (  # what bench/run.py prints
    "alert_eval_ms_per_rule",
    "alert_eval_ms_typical_rule",
    "alert_eval_s_1000_rules",
    "alert_notify_latency_ms",
    "alert_list_wait_s",
)
SETTINGS = {
    False: {"hosts": 100, "rules": 1000, "single_runs": 21, "engine_runs": 3, "crossings": 7},
    True: {"hosts": 20, "rules": 1000, "single_runs": 11, "engine_runs": 1, "crossings": 5},
}

TYPICAL = """
[[alerts]]
name = "HighCPU"
query = 'system.cpu.utilization{state="user"}'
agg = "avg"
by = ["host"]
window = "1m"
condition = "> 0.8"
for = "5m"
severity = "warning"
annotations = { summary = "CPU on {{host}} at {{value}}" }
"""

# (kind, query or (numerator, denominator), agg, by, window, condition with {t} for a threshold
# that differs from rule to rule, the threshold's range): the mix of rule_mix, in turn
CONDITIONS = (
    ('system.cpu.utilization{state="user"}', "avg", ["host"], "1m", "> {t}", (0.05, 0.8)),
    ('system.cpu.utilization{state="system"}', "max", ["host"], "5m", "> {t}", (0.05, 0.5)),
    (
        'system.cpu.utilization{state="user",host=~"host-0[0-4].*"}',
        "avg",
        ["host", "cpu"],
        "1m",
        "> {t}",
        (0.05, 0.8),
    ),
    ('system.memory.utilization{state="used"}', "avg", ["host"], "5m", "> {t}", (0.2, 0.9)),
    ('system.memory.usage{state="free"}', "min", ["host"], "1m", "< {t}", (1e8, 4e9)),
    ("system.cpu.load_average.1m", "avg", ["host"], "5m", "> {t}", (0.5, 4.0)),
    ("system.filesystem.utilization", "max", ["host"], "1m", "> {t}", (0.1, 0.9)),
    ("system.disk.io", "rate", ["host", "direction"], "5m", "> {t}", (1e4, 1e6)),
    ('system.network.io{direction="receive"}', "rate", ["host"], "1m", "> {t}", (1e4, 1e6)),
    ('system.processes.count{status="running"}', "last", ["host"], "1m", ">= {t}", (2, 6)),
    ("system.disk.pending_operations", "max", ["host"], "1m", "> {t}", (0, 3)),
    ('system.cpu.utilization{state="wait"}', "avg", ["host"], "5m", "> {t}", (0.001, 0.02)),
)
RATIOS = (
    ("system.network.dropped", "system.network.packets", "increase", ["host"], "5m", "> {t}", (1e-6, 1e-3)),
    ('system.memory.usage{state="used"}', "system.memory.usage", "avg", ["host"], "1m", "> {t}", (0.05, 0.3)),
    ("system.disk.operation_time", "system.disk.operations", "increase", ["host"], "5m", "> {t}", (0.1, 2)),
    (
        'system.cpu.utilization{state="wait"}',
        'system.cpu.utilization{state="idle"}',
        "avg",
        ["host"],
        "1m",
        "> {t}",
        (0.001, 0.1),
    ),
)
ABSENT = (
    ("system.memory.usage", ["host"], "1m"),
    ("system.uptime", ["host"], "1m"),
    ('system.disk.io{device="sda"}', ["host"], "2m"),
    ('system.network.io{direction="transmit"}', ["host"], "1m"),
)
MIX = {"condition": 0.6, "ratio": 0.25, "absent": 0.15}


def _threshold(lo: float, hi: float, i: int, n: int) -> str:
    return f"{lo + (hi - lo) * (i % n) / max(1, n - 1):.6g}"


def _quoted(q: str) -> str:
    return "'" + q + "'"


def rule_mix(n: int) -> str:
    """A rules file of `n` rules: 60% conditions, 25% ratios, 15% absent (rounded), each kind
    cycling through its templates with thresholds spread over a range; `for = "5m"` on all."""
    counts = {"condition": round(n * MIX["condition"]), "ratio": round(n * MIX["ratio"])}
    counts["absent"] = n - counts["condition"] - counts["ratio"]
    out = ["builtin_rules = false\n"]

    def rule(name: str, body: list[str]) -> None:
        out.append("[[alerts]]\n" + "\n".join([f'name = "{name}"', *body, 'for = "5m"']) + "\n")

    for i in range(counts["condition"]):
        q, agg, by, window, cond, (lo, hi) = CONDITIONS[i % len(CONDITIONS)]
        t = _threshold(lo, hi, i // len(CONDITIONS), max(1, counts["condition"] // len(CONDITIONS)))
        rule(
            f"cond_{i:04d}",
            [
                f"query = {_quoted(q)}",
                f'agg = "{agg}"',
                f"by = {json.dumps(by)}",
                f'window = "{window}"',
                f'condition = "{cond.format(t=t)}"',
            ],
        )
    for i in range(counts["ratio"]):
        num, den, agg, by, window, cond, (lo, hi) = RATIOS[i % len(RATIOS)]
        t = _threshold(lo, hi, i // len(RATIOS), max(1, counts["ratio"] // len(RATIOS)))
        rule(
            f"ratio_{i:04d}",
            [
                f"ratio = {{ numerator = {_quoted(num)}, denominator = {_quoted(den)} }}",
                f'agg = "{agg}"',
                f"by = {json.dumps(by)}",
                f'window = "{window}"',
                f'condition = "{cond.format(t=t)}"',
            ],
        )
    for i in range(counts["absent"]):
        q, by, window = ABSENT[i % len(ABSENT)]
        rule(
            f"absent_{i:04d}",
            [f"query = {_quoted(q)}", f"by = {json.dumps(by)}", f'window = "{window}"', "absent = true"],
        )
    return "\n".join(out)


def build_store(dsn: str, db: str, hosts: int, now_ms: int, minutes: int = 60) -> dict:
    """`hosts` hosts' last `minutes` of host metrics, ending at the 10 s step before `now_ms`, into
    the database `db` (with Ferry's schema) of the store at `dsn`."""
    steps = minutes * 60_000 // STEP_MS
    start_ms = (now_ms // STEP_MS - steps) * STEP_MS
    t0 = time.perf_counter()
    loaded = storage.load(dsn, db, hosts, steps, start_ms)
    loaded["build_s"] = time.perf_counter() - t0
    store = Store.open(dsn, database=db)
    loaded["stored"] = int(store.query(f"SELECT count() FROM {db}.samples")[0][0])
    store.close()
    loaded["start_ms"], loaded["end_ms"], loaded["steps"] = start_ms, start_ms + steps * STEP_MS, steps
    return loaded


def eval_figures(
    dsn: str, db: str, hosts: int, rules: int, single_runs: int, engine_runs: int, workdir: str
) -> dict:
    """Part 1 in this process, in the database `db` (Ferry's schema, no data) of the store at
    `dsn`: the data, one typical rule, then `rules` rules in the engine (rules files in `workdir`)."""
    now_ms = int(time.time() * 1000)
    data = build_store(dsn, db, hosts, now_ms)
    now_ms = data["end_ms"]  # evaluate as if at the last cycle's arrival
    stores = ThreadStores(lambda: Store.open(dsn, database=db))
    service = QueryService(stores)
    typical_path = Path(workdir) / "typical.toml"
    typical_path.write_text("builtin_rules = false\n" + TYPICAL)
    (typical,) = load_rules(str(typical_path)).alerts
    evaluator = Evaluator(service.query_range)
    first = evaluator.evaluate(typical, now_ms)  # warm-up, and what it answers
    single_ms = []
    for _ in range(single_runs):
        t0 = time.perf_counter()
        evaluator.evaluate(typical, now_ms)
        single_ms.append((time.perf_counter() - t0) * 1000)
    path = Path(workdir) / "rules.toml"
    path.write_text(rule_mix(rules))
    engine = Engine(str(path), service.query_range, AlertStore(stores), interval_s=DEFAULT_INTERVAL_S)
    runs = []
    for _ in range(1 + engine_runs):  # the first writes the pending transitions
        t0 = time.perf_counter()
        transitions = engine.evaluate_once(now_ms)
        runs.append({"s": time.perf_counter() - t0, "transitions": len(transitions)})
    rpc_wait_s = instances_wait(engine, now_ms)
    steady = statistics.median(r["s"] for r in runs[1:])
    kinds: dict[str, list[float]] = {}
    for r in engine.rules:
        kinds.setdefault(r.kind, []).append(engine.status[r.name].seconds * 1000)
    health: dict[str, int] = {}
    for s in engine.status.values():
        health[s.health.value] = health.get(s.health.value, 0) + 1
    stores.close_all()
    return {
        "alert_eval_ms_typical_rule": statistics.median(single_ms),
        "alert_eval_s_1000_rules": steady * 1000 / rules,  # scaled to 1,000 rules should `rules` differ
        "alert_eval_ms_per_rule": steady / rules * 1000,
        "alert_eval_fits_default_interval": steady <= DEFAULT_INTERVAL_S,
        # how long ListAlerts (and an ack) coming during that evaluation waits for the engine's lock
        "alert_list_wait_s": rpc_wait_s,
        "alert_eval": {
            "hosts": hosts,
            "series": data["series"],
            "points": data["points"],
            "stored_points": data["stored"],
            "data_build_s": data["build_s"],
            "start_ms": data["start_ms"],
            "now_ms": now_ms,
            "typical_rule": TYPICAL.strip(),
            "typical_groups": len(first.values),
            "typical_holding": len(first.holding),
            "typical_values": {dict(g)["host"]: v for g, v in first.values.items()},
            "typical_runs_ms": single_ms,
            "rules": rules,
            "rule_kinds": {k: len(v) for k, v in kinds.items()},
            "engine_runs": runs,
            "engine_s": steady,
            "first_run_s": runs[0]["s"],
            "per_kind_ms_median": {k: statistics.median(v) for k, v in kinds.items()},
            "rule_health": health,
            "pending_instances": len(engine.states.by_id),
            "interval_s": DEFAULT_INTERVAL_S,
        },
    }


def instances_wait(engine: Engine, now_ms: int, after_s: float = 0.5) -> float:
    """How long the Alerts service's read (`engine.instances()`, what ListAlerts answers from)
    waits when it comes `after_s` into an evaluation of every rule: as long as the evaluation
    holds the engine's lock from then on."""
    waited: list[float] = []

    def read() -> None:
        time.sleep(after_s)
        t0 = time.perf_counter()
        engine.instances()
        waited.append(time.perf_counter() - t0)

    reader = threading.Thread(target=read)
    reader.start()
    engine.evaluate_once(now_ms)
    reader.join()
    return waited[0]


def eval_isolated(hosts: int, rules: int, single_runs: int, engine_runs: int) -> dict:
    """`eval_figures` in a child process (chDB: one path per process; its memory back after)."""
    cmd = [
        sys.executable,
        "-m",
        "bench.alerting",
        "--part",
        "eval",
        "--hosts",
        str(hosts),
        "--rules",
        str(rules),
        "--single-runs",
        str(single_runs),
        "--engine-runs",
        str(engine_runs),
        "--json",
    ]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(out.stdout)


# -- 2. notification latency ----------------------------------------------------------------------

LATENCY_RULES = """builtin_rules = false

[[alerts]]
name = "BenchHot"
query = "bench.alert.temp"
agg = "max"
by = ["host"]
window = "1s"
condition = "> 50"
for = "0s"
severity = "critical"

[[receivers]]
name = "hook"
type = "webhook"
url = "{url}/hook"

[[routes]]
receiver = "hook"
group_by = ["alertname", "host"]
group_wait = "0s"
group_interval = "1s"
repeat_interval = "1h"
"""
EVAL_INTERVAL = "1s"
PUSH_EVERY_S = 0.1
COOL, HOT = 20.0, 80.0
SERIES = SeriesDef("bench.alert.temp", GAUGE, "1", ())
AGENT, HOST = "alert-bench", "alert-bench-host"


class Pusher:
    """Pushes a frame of the gauge every PUSH_EVERY_S on its own thread; `set(value)` changes what
    the next frames carry and returns (monotonic, wall) of the ack of the first frame carrying it."""

    def __init__(self, addr: str):
        self.addr = addr
        self.value = COOL
        self.seq = 0
        self.epoch = int(time.time() * 1000) << 8
        self.stop = threading.Event()
        self.acked = threading.Condition()
        self.first_ack: dict[int, tuple[float, float, float]] = {}  # change no. → (mono, wall, value)
        self.change = 0
        self.error = ""
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _frame(self, value: float) -> ingest_pb2.Frame:
        self.seq += 1
        t = int(time.time() * 1000)
        batch = MetricBatch(
            [SERIES], np.zeros(1, np.uint32), np.array([t], np.int64), np.array([value], np.float64)
        )
        payload = encode_payload(payload_pb2.Resource(host=HOST, agent_id=AGENT), batch)
        return pack_frame(AGENT, self.epoch, self.seq, payload, 1)

    def _run(self) -> None:
        with transport.channel(self.addr) as ch:
            stub = ingest_pb2_grpc.IngestStub(ch)
            while not self.stop.is_set():
                change, value = self.change, self.value
                try:
                    ack = stub.Push(self._frame(value), timeout=10)
                except grpc.RpcError as exc:
                    self.error = f"{exc.code().name}: {exc.details()}"
                    return
                mono, wall = time.monotonic(), time.time()
                if ack.status != ingest_pb2.OK:
                    self.error = f"ack {ack.status} {ack.message}"
                    return
                with self.acked:
                    self.first_ack.setdefault(change, (mono, wall, value))
                    self.acked.notify_all()
                self.stop.wait(PUSH_EVERY_S)

    def set(self, value: float) -> int:
        with self.acked:
            self.change += 1
            self.value = value
            return self.change

    def wait_ack(self, change: int, timeout: float = 10.0) -> tuple[float, float, float]:
        with self.acked:
            ok = self.acked.wait_for(lambda: change in self.first_ack or self.error, timeout)
        if not ok or self.error:
            raise RuntimeError(f"no ack for change {change}: {self.error or 'timed out'}")
        return self.first_ack[change]


def _ms(rfc3339: str) -> float:
    return dt.datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp() * 1000


def _wait(sink, status: str, after: int, timeout: float = 20.0):
    """The first request of `status` among those after the first `after`."""
    end = time.monotonic() + timeout
    with sink.arrived:
        while True:
            got = [r for r in sink.requests[after:] if r.body["status"] == status]
            if got:
                return got[0], sink.requests.index(got[0])
            left = end - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"no {status} webhook within {timeout}s")
            sink.arrived.wait(left)


def latency_figures(crossings: int, settle_s: float = 2.5) -> dict:
    """Part 2: `crossings` crossings of the threshold, each from a cool gauge held `settle_s`."""
    from tests.collector.notify_sink import Sink  # the notification tests' webhook far end

    out: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="ferry-bench-alerting-") as tmp, Sink() as sink:
        rules = Path(tmp) / "rules.toml"
        rules.write_text(LATENCY_RULES.format(url=sink.url))
        flags = ("--rules", str(rules), "--alert-eval-interval", EVAL_INTERVAL)
        with collector_process(Path(tmp), *flags) as addr:
            pusher = Pusher(addr)
            pusher.thread.start()
            try:
                seen = 0
                for i in range(crossings):
                    pusher.wait_ack(pusher.set(COOL))
                    time.sleep(settle_s + (i * 0.37) % 1.0)  # crossings fall at spread phases
                    change = pusher.set(HOT)
                    mono, wall, value = pusher.wait_ack(change)
                    assert value == HOT
                    fired, index = _wait(sink, "firing", seen)
                    (alert,) = fired.body["alerts"]
                    evaluated_ms = _ms(alert["startsAt"])
                    out.append(
                        {
                            "latency_ms": (fired.at - mono) * 1000,
                            "ack_to_evaluation_ms": evaluated_ms - wall * 1000,
                            "evaluation_to_webhook_ms": (fired.at - mono) * 1000
                            - (evaluated_ms - wall * 1000),
                            "value": alert["value"],
                            "labels": alert["labels"],
                        }
                    )
                    pusher.set(COOL)
                    _, seen = _wait(sink, "resolved", index + 1)
                    seen += 1
            finally:
                pusher.stop.set()
                pusher.thread.join(15)
            statuses = [r.body["status"] for r in sink.requests]
    latencies = [c["latency_ms"] for c in out]
    return {
        "alert_notify_latency_ms": statistics.median(latencies),
        "alert_notify": {
            "crossings": out,
            "latency_ms_min": min(latencies),
            "latency_ms_max": max(latencies),
            "webhooks": statuses,
            "eval_interval": EVAL_INTERVAL,
            "group_wait": "0s",
            "push_every_s": PUSH_EVERY_S,
        },
    }


def run(quick: bool = False) -> dict:
    s = SETTINGS[quick]
    result = eval_isolated(s["hosts"], s["rules"], s["single_runs"], s["engine_runs"])
    result.update(latency_figures(s["crossings"]))
    return result


def print_table(r: dict) -> None:
    for key in FIGURES:
        if r.get(key) is not None:
            print(f"{key:40} {r[key]:>14,.2f}")
    print(f"{'alert_eval_fits_default_interval':40} {r['alert_eval_fits_default_interval']!s:>14}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--part", choices=("all", "eval", "latency"), default="all")
    p.add_argument("--hosts", type=int)
    p.add_argument("--rules", type=int)
    p.add_argument("--single-runs", type=int)
    p.add_argument("--engine-runs", type=int)
    p.add_argument("--crossings", type=int)
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    a = p.parse_args()
    s = {**SETTINGS[a.quick]}
    s.update({k: v for k, v in vars(a).items() if k in s and v is not None})
    if a.part == "eval":
        with tempfile.TemporaryDirectory(prefix="ferry-bench-alerting-", ignore_cleanup_errors=True) as tmp:
            dsn, db = f"chdb://{tmp}/store", "bench"
            store = Store.open(dsn, database=db)
            store.ensure_schema()
            r = eval_figures(dsn, db, s["hosts"], s["rules"], s["single_runs"], s["engine_runs"], tmp)
            store.close()
    elif a.part == "latency":
        r = latency_figures(s["crossings"])
    else:
        r = eval_isolated(s["hosts"], s["rules"], s["single_runs"], s["engine_runs"])
        r.update(latency_figures(s["crossings"]))
    if a.json:
        print(json.dumps(r))
        return
    print(json.dumps({k: v for k, v in r.items() if isinstance(v, dict)}, indent=2))
    for key in FIGURES:
        if r.get(key) is not None:
            print(f"{key:40} {r[key]:>14,.2f}")


if __name__ == "__main__":
    main()
