"""bench.storage: the generated host metrics look like the agent's (counters monotonic, ratios in
range, memory states summing to the total), and a tiny day loads completely and answers the
same at every resolution. No timing here; figures come from `make bench`."""

from __future__ import annotations

import time

import numpy as np
import pytest

from bench import hostday, storage
from ferry.agent import catalogue as c
from ferry.agent.collectors.filesystem import ratio
from ferry.wire.columns import COUNTER

HOUR = 3_600_000


@pytest.fixture(scope="module")
def family():
    return hostday.host_metrics(np.random.default_rng(7), 3, 720)


def _values(family, name: str) -> list[np.ndarray]:
    return [v for s, v in family if s.name == name]


def test_series_are_the_agents_and_about_sixty_per_host(family):
    names = {d.name for d in c.ALL}
    assert {s.name for s, _ in family} <= names
    assert len(family) == len({s for s, _ in family}) == 59
    assert all(v.shape == (3, 720) and np.isfinite(v).all() for _, v in family)


def test_counters_are_monotonic_with_whole_steps(family):
    counters = [(s, v) for s, v in family if s.kind == COUNTER]
    assert len(counters) >= 10
    for s, v in counters:
        assert (np.diff(v, axis=1) >= 0).all(), s
        if s.unit != "s":  # bytes, operations, packets: integers; times are ms / 1000
            assert (v == np.rint(v)).all(), s


def test_ratios_in_range_of_four_decimals_and_cpu_states_sum_to_one(family):
    for name in ("system.cpu.utilization", "system.memory.utilization", "system.filesystem.utilization"):
        for v in _values(family, name):
            assert ((v >= 0) & (v <= 1)).all(), name
            np.testing.assert_array_equal(v, np.round(v, 4))
    cpu = _values(family, "system.cpu.utilization")
    assert len(cpu) == 8 * hostday.CPUS
    for first in range(0, len(cpu), 8):  # within the rounding of 8 states
        np.testing.assert_allclose(sum(cpu[first : first + 8]), 1.0, rtol=0, atol=8 * 5e-5 + 1e-12)


def test_ratios_are_the_doubles_the_agent_sends():
    rng = np.random.default_rng(3)
    total = rng.integers(1, 10_000, 5_000)
    part = rng.integers(0, total + 1)
    want = [ratio(int(p), int(t)) for p, t in zip(part, total, strict=True)]
    assert hostday._ratio(part, total).tolist() == want
    kb = rng.integers(1, 2**26, 5_000) * 1024.0  # bytes of memory, as floats in the generator
    assert hostday._ratio(kb, kb.max()).tolist() == [ratio(int(k), int(kb.max())) for k in kb]


def test_memory_states_are_kib_and_sum_to_a_constant_total(family):
    usage = _values(family, "system.memory.usage")
    assert len(usage) == 6
    assert all((v % 1024 == 0).all() and (v > 0).all() for v in usage)
    total = sum(usage)
    assert (total == total[:, :1]).all()


def test_load_average_has_two_decimals(family):
    for v in _values(family, "system.cpu.load_average.1m"):
        np.testing.assert_array_equal(v, np.round(v, 2))


def test_a_small_load_is_stored_whole_and_every_resolution_agrees(store, store_dsn):
    start = (int(time.time() * 1000) // HOUR - 30) * HOUR
    steps = 2 * HOUR // hostday.STEP_MS
    loaded = storage.load(store_dsn, store.db, hosts=2, steps=steps, start_ms=start)
    assert loaded["points"] == 2 * 59 * steps and loaded["series"] == 2 * 59
    assert store.query(f"SELECT count() FROM {store.db}.samples")[0][0] == loaded["points"]
    figures = storage.query_figures(store_dsn, store.db, start, start + 2 * HOUR, runs=1)
    assert figures["groups"] == 2
    assert figures["answers_match"], figures["answer_checks"]
