"""A service using ferry.client, with known totals, for the app-telemetry integration tests.

    python sample_app.py TARGET burst [FLUSH_S]
                                          # send the fixed workload below, flush, print stats;
                                          # FLUSH_S bounds the flush and the close's flush
                                          # (default 20 s and the client's own 5 s)
    python sample_app.py TARGET steady    # send a numbered log (and a counter) every ms until
                                          # SIGTERM; then flush and print stats. Prints
                                          # "undelivered" once the client first drops a record
                                          # for want of an agent

Stats go to stdout as one JSON line; anything the app itself raises goes to stderr (and the
tests require it to be empty).

burst workload:
- `app.requests` counter: 100,000 increments over 10 label sets (route=/r0 .. /r9): 10,000 each;
- `app.latency` histogram, bounds [0.1, 0.5, 1, 5]: 1,000 observations, i / 200 for i in 0..999;
- 1,000 events `purchase` (category shop, action pay, value i, user u<i % 7>);
- 1,000 logs: level info for even i, error for odd, message "order <i> done".
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time

from ferry.client import Telemetry

BOUNDS = [0.1, 0.5, 1.0, 5.0]


def burst(t: Telemetry) -> None:
    for i in range(100_000):
        t.counter("app.requests", labels={"route": f"/r{i % 10}"})
    for i in range(1000):
        t.histogram("app.latency", i / 200, buckets=BOUNDS)
    for i in range(1000):
        t.event("purchase", "shop", "pay", value=i, user_id=f"u{i % 7}", properties={"i": i})
    for i in range(1000):
        t.log("info" if i % 2 == 0 else "error", f"order {i} done", i=i)


def steady(t: Telemetry) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    i, told = 0, False
    while not stop.is_set():
        t.log("info", f"tick {i}", seq=i)
        t.counter("app.ticks")
        i += 1
        if not told and i % 50 == 0 and t.stats().dropped_by_reason.get("undelivered"):
            print("undelivered", flush=True)
            told = True
        time.sleep(0.001)
    return i


def main() -> None:
    target, mode = sys.argv[1], sys.argv[2]
    flush_s = float(sys.argv[3]) if len(sys.argv) > 3 else None
    if mode == "burst":
        t = Telemetry(target, service="sample")
        burst(t)
        sent = None
    else:
        t = Telemetry(target, service="sample", max_queue=500, flush_interval=0.2)
        print("ready", flush=True)
        sent = steady(t)
    flushed = t.flush(timeout=20 if flush_s is None else flush_s)
    stats = t.stats()
    if flush_s is None:
        t.close()
    else:
        t.close(timeout=flush_s)
    print(json.dumps({"flushed": flushed, "sent_calls": sent, **stats.__dict__}), flush=True)


if __name__ == "__main__":
    main()
