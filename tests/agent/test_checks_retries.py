"""Check retries against a real command that fails a known number of times before passing."""

from __future__ import annotations

import asyncio
import random
import subprocess
import time

import pytest

from ferry.agent.checks import CheckConfig, CheckRunner


def flaky(tmp_path, failures: int) -> str:
    """A command failing its first `failures` runs, then passing (it counts runs in a file)."""
    count = tmp_path / "runs"
    return f"n=$(cat {count} 2>/dev/null || echo 0); echo $((n+1)) > {count}; [ $n -ge {failures} ]"


@pytest.mark.parametrize("retries,up,runs", [(2, True, 3), (1, False, 2), (0, False, 1)])
def test_a_failing_attempt_is_retried_up_to_retries_times(tmp_path, retries, up, runs):
    check = CheckConfig("flaky", "command", flaky(tmp_path, 2), timeout=5.0, retries=retries)
    ok, elapsed = asyncio.run(CheckRunner.run_once(check))
    assert ok is up
    assert int((tmp_path / "runs").read_text()) == runs
    assert elapsed >= 0


def test_a_timeout_counts_as_a_failed_attempt_and_is_retried(tmp_path):
    nap = f"{5 + random.random():.6f}"  # a sleep this test alone runs, to look for afterwards
    check = CheckConfig(
        "slow", "command", f"echo x >> {tmp_path / 'log'}; sleep {nap}", timeout=0.2, retries=1
    )
    ok, elapsed = asyncio.run(CheckRunner.run_once(check))
    assert not ok
    assert (tmp_path / "log").read_text() == "x\nx\n"  # two attempts, each cut at its timeout
    assert elapsed < 2
    # SIGKILL takes effect when the killed sleep is next scheduled, a moment later on a loaded
    # host; a sleep left running would still be there at its 5th second
    deadline = time.monotonic() + 3
    while (leftover := subprocess.run(["pgrep", "-f", f"sleep {nap}"], capture_output=True)).returncode == 0:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert leftover.returncode == 1, "the timed-out command's children were left running"
