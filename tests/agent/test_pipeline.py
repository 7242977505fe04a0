"""The agent's pipeline thread: jobs in order, its own schedule between them, failures, shutdown."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from ferry.agent.pipeline import Pipeline


def test_jobs_run_in_order_on_one_thread_and_return_their_results():
    p = Pipeline()
    seen: list = []
    futures = [p.submit(lambda i=i: seen.append((i, threading.current_thread().name)) or i) for i in range(5)]
    assert [f.result(timeout=5) for f in futures] == list(range(5))
    assert [i for i, _ in seen] == list(range(5))
    assert {name for _, name in seen} == {"pipeline"}
    failing = p.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        failing.result(timeout=5)
    assert p.submit(lambda: "still running").result(timeout=5) == "still running"
    p.shutdown()


def test_the_schedule_runs_when_due_and_after_jobs_without_being_woken():
    ticks: list[float] = []
    p = Pipeline()

    def schedule() -> float | None:
        ticks.append(time.monotonic())
        return time.time() + 0.05 if len(ticks) < 4 else None

    p.schedule = schedule
    p.wake()
    deadline = time.monotonic() + 5
    while len(ticks) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(ticks) == 4
    assert all(b - a >= 0.04 for a, b in itertools.pairwise(ticks))
    # proving that nothing happens takes a fixed wait: three periods, in which a schedule that
    # ignored None would have ticked again
    time.sleep(0.15)
    assert len(ticks) == 4  # None: nothing due until the next job
    p.submit(lambda: None).result(timeout=5)
    p.shutdown()
    assert len(ticks) == 5


def test_a_failing_schedule_is_reported_once_and_jobs_still_run():
    errors: list[BaseException] = []
    p = Pipeline(schedule=lambda: 1 / 0)
    p.on_error = errors.append
    p.wake()
    assert p.submit(lambda: "final cut").result(timeout=5) == "final cut"
    p.shutdown()
    assert len(errors) == 1 and isinstance(errors[0], ZeroDivisionError)


def test_shutdown_runs_what_was_submitted_then_refuses_more():
    p = Pipeline()
    gate = threading.Event()
    first = p.submit(gate.wait, 5)
    second = p.submit(lambda: "queued")
    threading.Timer(0.05, gate.set).start()
    p.shutdown(wait=True)
    assert first.result(timeout=0) is True and second.result(timeout=0) == "queued"
    with pytest.raises(RuntimeError):
        p.submit(lambda: None)
    Pipeline().shutdown()  # never started: nothing to join
