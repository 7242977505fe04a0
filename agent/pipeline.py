"""The agent's pipeline thread: collection, batching, compression and spool writes, in order.

Jobs from the event loop (records to batch, reload steps, the final cut) run one at a time in
the order submitted, as on a one-worker ThreadPoolExecutor. Between jobs the thread keeps its own
schedule (ferry.agent.schedule): `schedule()` runs what is due (a collection at each tick, the
synthetic source's next points, a cut when the open batch comes due) and answers when to look
again. So a collection tick wakes this thread alone, and the event loop sleeps through it: waking
an idle thread costs a few hundred microseconds of cold caches, and a cycle used to wake the
loop twice (to hand the cycle over, and when it ended).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future

_WAKE = object()  # look at the schedule now (it may have changed)
_STOP = object()


class Pipeline(Executor):
    def __init__(self, schedule: Callable[[], float | None] = lambda: None, name: str = "pipeline"):
        self.schedule = schedule  # run what is due; the time.time() to call again, or None: on a job
        self.on_error: Callable[[BaseException], None] = lambda exc: None  # the schedule failed
        self._name = name
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        self._put((future, fn, args, kwargs))
        return future

    def wake(self) -> None:
        """Look at the schedule now: it changed (collection started, or a reload moved it)."""
        self._put(_WAKE)

    def _put(self, item: object) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._jobs.put(item)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Run the jobs already submitted, then stop (the schedule is not consulted again)."""
        with self._lock:
            first = not self._closed
            self._closed = True
            thread = self._thread
            if first and thread is not None:
                self._jobs.put(_STOP)
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        wake_at: float | None = None
        while True:
            timeout = None if wake_at is None else max(0.0, wake_at - time.time())
            try:
                item = self._jobs.get(timeout=timeout)
            except queue.Empty:
                item = _WAKE
            if item is _STOP:
                return
            if item is not _WAKE:
                future, fn, args, kwargs = item
                del item
                if future.set_running_or_notify_cancel():
                    try:
                        result = fn(*args, **kwargs)
                    except BaseException as exc:
                        future.set_exception(exc)
                    else:
                        future.set_result(result)
                del future, fn, args, kwargs
            try:
                wake_at = self.schedule()
            except BaseException as exc:
                wake_at = None
                self.schedule = lambda: None  # jobs still run (the final cut), collection stops
                self.on_error(exc)
