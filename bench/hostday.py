"""A generated day of host metrics for the storage benchmark (`bench.storage`).

The dataset imitates what the agent's own collectors emit (agent/collectors/*.py), per host:
- timestamps: the agent stamps a cycle with its aligned tick, `int(next_at * 1000)`, which with
  the default jitter 0 is an exact multiple of 10 000 ms; so every series has 8640 points at
  exact 10 s steps over one UTC day (yesterday, inside the raw TTL);
- system.cpu.utilization, 2 cpus x 8 states: tick deltas at USER_HZ 100 (a 10 s cycle is
  999..1001 ticks), emitted as `delta / total` rounded to 4 decimals like the agent's `ratio`
  (round half to even of `delta / total * 10**4`, over 10**4); user and system follow the host's
  activity, wait and softirq are small Poisson counts, nice and interrupt almost always 0, steal
  only on half of the hosts (VMs); idle is the rest;
- system.memory.usage, 6 states: kB from /proc/meminfo times 1024 (integers), `used` the
  remainder so the states sum to MemTotal; system.memory.utilization: each / MemTotal, rounded
  to 4 decimals the same way;
- system.cpu.load_average.1m/5m/15m: exponential averages of the runnable count, 2 decimals;
  system.uptime: boot offset + elapsed + a few ms of read delay, 2 decimals;
- system.processes.created (COUNTER, integer increments) and system.processes.count for the six
  statuses the agent always counts (running follows load; zombies and stopped mostly 0);
- one disk `sda`: system.disk.io (bytes = 512-byte sectors, 4 KiB pages), .operations,
  .operation_time (ms / 1000) per direction, .io_time, .pending_operations (mostly 0);
- one NIC `eth0`: system.network.io, .packets, .errors (constant 0), .dropped (rare), both
  directions; all COUNTERs are cumulative from a large since-boot start, monotonic;
- one filesystem `/` (ext4): system.filesystem.usage used/free/reserved (4 KiB blocks, reserved
  constant) and .utilization used / (used + free), rounded to 4 decimals.
59 series per host. Activity is a diurnal curve (a per-host phase, base and amplitude) plus
smoothed and white noise.
"""

from __future__ import annotations

import numpy as np

from ferry.agent import catalogue as c
from ferry.agent.collectors.filesystem import RATIO_SCALE
from ferry.agent.collectors.processes import ALWAYS_COUNTED
from ferry.agent.collectors.system import CPU_STATES
from ferry.wire.columns import MetricBatch, SeriesDef

STEP_MS = 10_000
DAY_MS = 86_400_000
CPUS = 2

Family = list[tuple[SeriesDef, np.ndarray]]  # each series and its values, shape (hosts, steps)


def _ema(x: np.ndarray, tau: float) -> np.ndarray:
    """Exponential moving average along axis 1 (time constant `tau` steps), by FFT convolution
    with a truncated kernel; the start is padded with the first value."""
    a = 1.0 - np.exp(-1.0 / tau)
    n_k = int(tau * 12) + 1
    k = a * (1.0 - a) ** np.arange(n_k)
    k /= k.sum()
    xp = np.concatenate([np.repeat(x[:, :1], n_k, axis=1), x], axis=1)
    n = xp.shape[1] + n_k
    y = np.fft.irfft(np.fft.rfft(xp, n) * np.fft.rfft(k, n), n)
    return y[:, n_k : n_k + x.shape[1]]


def _cum(rng: np.random.Generator, low: int, high: int, inc: np.ndarray) -> np.ndarray:
    """A cumulative counter: a since-boot start in [low, high) plus the running sum of integer
    increments `inc` (hosts, steps)."""
    start = rng.integers(low, high, (inc.shape[0], 1))
    return (start + np.cumsum(inc, axis=1, dtype=np.int64)).astype(np.float64)


def _ratio(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """The agent's `ratio` (agent/collectors/filesystem.py) on arrays: the same float operations,
    so the same doubles (a cycle of 10 s has fewer than 10,000 ticks: 4 decimals for cpu too)."""
    return np.rint(part / whole * RATIO_SCALE) / RATIO_SCALE


def activity(rng: np.random.Generator, hosts: int, steps: int) -> np.ndarray:
    """A host's busyness in [0.01, 0.95]: diurnal curve (per-host phase, base, amplitude) plus
    smoothed noise (minutes) and white noise."""
    frac = (np.arange(steps) * STEP_MS % DAY_MS) / DAY_MS
    phase = rng.uniform(0.0, 0.25, (hosts, 1))
    base, amp = rng.uniform(0.03, 0.25, (hosts, 1)), rng.uniform(0.05, 0.5, (hosts, 1))
    diurnal = 0.5 - 0.5 * np.cos(2 * np.pi * (frac[None, :] - phase - 0.1))
    drift = _ema(rng.normal(0, 0.25, (hosts, steps)), 30.0)
    return np.clip(base + amp * diurnal + drift + rng.normal(0, 0.02, (hosts, steps)), 0.01, 0.95)


def _cpu(rng: np.random.Generator, a: np.ndarray) -> Family:
    out: Family = []
    vm = rng.random((a.shape[0], 1)) < 0.5
    for cpu in range(CPUS):
        ac = np.clip(a + rng.normal(0, 0.04, a.shape), 0.0, 0.93)
        total = 1000 + rng.integers(-1, 2, a.shape)
        ticks = {
            "user": np.rint(ac * 0.65 * total),
            "nice": rng.poisson(0.01, a.shape),
            "system": np.rint(ac * 0.22 * total),
            "wait": rng.poisson(0.5 + 8 * ac),
            "interrupt": np.zeros(a.shape),
            "softirq": rng.poisson(1 + 6 * ac),
            "steal": rng.poisson(0.4, a.shape) * vm,
        }
        ticks["idle"] = np.maximum(total - sum(ticks.values()), 0)
        for state in CPU_STATES:
            out.append((c.CPU_UTILIZATION.series((f"cpu{cpu}", state)), _ratio(ticks[state], total)))
    return out


def _memory(rng: np.random.Generator, a: np.ndarray) -> Family:
    hosts, steps = a.shape
    total = rng.choice([4, 8, 16, 32, 64], (hosts, 1)) * 1024**2 - rng.integers(100_000, 300_000, (hosts, 1))

    def walk(scale: float) -> np.ndarray:
        return np.cumsum(rng.integers(-int(scale), int(scale) + 1, (hosts, steps)), axis=1)

    kb = {
        "used": total * (0.2 + 0.3 * _ema(a, 20.0)) + walk(64),
        "buffered": total * 0.01 + walk(4),
        "cached": total * (0.15 + 0.1 * np.linspace(0, 1, steps)) + walk(256),
        "slab_reclaimable": total * 0.03 + walk(16),
        "slab_unreclaimable": total * 0.01 + walk(2),
    }
    kb = {k: np.maximum(np.rint(v), 1024) for k, v in kb.items()}
    kb["free"] = total - sum(kb.values())
    total_b = total * 1024.0
    out: Family = []
    for state in ("free", "buffered", "cached", "slab_reclaimable", "slab_unreclaimable", "used"):
        out.append((c.MEMORY_USAGE.series((state,)), kb[state] * 1024.0))
    for state in ("free", "buffered", "cached", "slab_reclaimable", "slab_unreclaimable", "used"):
        out.append((c.MEMORY_UTILIZATION.series((state,)), _ratio(kb[state] * 1024.0, total_b)))
    return out


def _system(rng: np.random.Generator, a: np.ndarray) -> Family:
    hosts, steps = a.shape
    runnable = a * CPUS * 1.3 + rng.poisson(0.3, a.shape)
    out: Family = [
        (d.series(), np.round(_ema(runnable, tau), 2))
        for d, tau in ((c.LOAD_1M, 6.0), (c.LOAD_5M, 30.0), (c.LOAD_15M, 90.0))
    ]
    boot = rng.uniform(86_400, 200 * 86_400, (hosts, 1))
    elapsed = np.arange(steps) * STEP_MS / 1000 + rng.uniform(0.001, 0.02, a.shape)  # + read delay
    out.append((c.UPTIME.series(), np.round(boot + elapsed, 2)))
    out.append((c.PROCESSES_CREATED.series(), _cum(rng, 10**5, 10**8, rng.poisson(10 * (0.5 + 3 * a)))))
    counts = {
        "running": 1 + rng.poisson(a * CPUS),
        "sleeping": np.rint(rng.integers(120, 400, (hosts, 1)) + _ema(rng.normal(0, 20, a.shape), 60.0)),
        "blocked": rng.poisson(0.1 * a),
        "zombies": (rng.random(a.shape) < 0.001).astype(int),
        "stopped": np.zeros(a.shape),
        "idle": np.broadcast_to(rng.integers(60, 130, (hosts, 1)), a.shape),
    }
    out += [(c.PROCESSES_COUNT.series((s,)), counts[s].astype(float)) for s in ALWAYS_COUNTED]
    return out


def _disk_network_fs(rng: np.random.Generator, a: np.ndarray) -> Family:
    out: Family = []
    ops = {"read": rng.poisson(0.5 + 3 * a), "write": rng.poisson(5 + 40 * a)}
    for d in ("read", "write"):
        sectors = 8 * (ops[d] + rng.poisson(ops[d] * 2.0))  # whole 4 KiB pages
        out.append((c.DISK_IO.series(("sda", d)), 512.0 * _cum(rng, 10**7, 10**9, sectors)))
        out.append((c.DISK_OPERATIONS.series(("sda", d)), _cum(rng, 10**5, 10**7, ops[d])))
        op_ms = _cum(rng, 10**5, 10**8, rng.poisson(ops[d] * 0.8))
        out.append((c.DISK_OPERATION_TIME.series(("sda", d)), op_ms / 1000))
    busy_ms = np.minimum(rng.poisson((ops["read"] + ops["write"]) * 0.6), STEP_MS)
    out.append((c.DISK_IO_TIME.series(("sda",)), _cum(rng, 10**5, 10**8, busy_ms) / 1000))
    out.append((c.DISK_PENDING.series(("sda",)), rng.poisson(0.05 * a).astype(float)))
    for d, rate in (("receive", 3000), ("transmit", 2500)):
        pkts = rng.poisson(200 + rate * a)
        size = pkts * 60 + rng.poisson(pkts * 500)
        drops = rng.poisson(0.01 if d == "receive" else 0.0, a.shape)
        out.append((c.NETWORK_IO.series(("eth0", d)), _cum(rng, 10**9, 10**12, size)))
        out.append((c.NETWORK_PACKETS.series(("eth0", d)), _cum(rng, 10**6, 10**9, pkts)))
        out.append((c.NETWORK_ERRORS.series(("eth0", d)), np.zeros(a.shape)))
        out.append((c.NETWORK_DROPPED.series(("eth0", d)), _cum(rng, 0, 1000, drops)))
    blocks = rng.integers(5_000_000, 50_000_000, (a.shape[0], 1))  # 4 KiB blocks
    reserved = np.broadcast_to(blocks // 20, a.shape)
    used = _cum(rng, 1_000_000, 5_000_000, rng.poisson(0.3 + 2 * a))
    fs = {"used": used, "free": blocks - reserved - used, "reserved": reserved}
    for state in ("used", "free", "reserved"):
        out.append((c.FILESYSTEM_USAGE.series(("/dev/sda1", "rw", "/", state, "ext4")), fs[state] * 4096.0))
    util = _ratio(used * 4096.0, (used + fs["free"]) * 4096.0)
    out.append((c.FILESYSTEM_UTILIZATION.series(("/dev/sda1", "rw", "/", "ext4")), util))
    return out


def host_metrics(rng: np.random.Generator, hosts: int, steps: int) -> Family:
    """Every series of `hosts` hosts over `steps` cycles from midnight; values (hosts, steps)."""
    a = activity(rng, hosts, steps)
    fam = _cpu(rng, a) + _memory(rng, a) + _system(rng, a) + _disk_network_fs(rng, a)
    return [(s, np.asarray(v, dtype=np.float64)) for s, v in fam]


def host_batch(family: Family, row: int, times: np.ndarray) -> MetricBatch:
    """Host `row`'s points as one columnar batch, as the agent would send them (series-major)."""
    n, steps = len(family), times.shape[0]
    return MetricBatch(
        series=[s for s, _ in family],
        series_ref=np.repeat(np.arange(n, dtype=np.uint32), steps),
        time_ms=np.tile(times, n),
        value=np.concatenate([v[row] for _, v in family]),
    )
