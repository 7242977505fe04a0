"""The audit trail: one structured log line (logger `ferry.collector.audit`, the fields under
`audit` in the JSON line) per refused call, admin call and reload of credentials.

Refusals are bounded: past `max_per_s` in a second the rest of that second's refusals are
counted, not written, and the next refusal written says how many were left out
(`not_logged_before`); the counters (`ferry_collector_auth_failures`) count every refusal, so a
flood of bad tokens cannot fill the disk through the log while it is still seen. Admin calls and
reloads (made by an admitted principal or the operator) are always written: a flood cannot
push them out.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("ferry.collector.audit")


class Audit:
    def __init__(self, max_per_s: int = 100, clock: Callable[[], float] = time.monotonic):
        self.max_per_s = max_per_s
        self.clock = clock
        self._second = -1
        self._written = 0
        self._skipped = 0
        self._lock = threading.Lock()

    def flush(self) -> None:
        """Write how many refusals went unwritten, if some did and no later refusal said so (a
        flood that ended); the collector calls it every second and when it stops."""
        with self._lock:
            skipped, self._skipped = self._skipped, 0
        if skipped:
            log.warning(
                "audit refusals not logged: %d",
                skipped,
                extra={"audit": {"event": "not_logged", "count": skipped}},
            )

    def record(self, event: str, level: int = logging.WARNING, **fields: object) -> None:
        skipped = 0
        if event == "refused":
            now = int(self.clock())
            with self._lock:
                if now != self._second:
                    self._second, self._written = now, 0
                if self._written >= self.max_per_s:
                    self._skipped += 1
                    return
                self._written += 1
                skipped, self._skipped = self._skipped, 0
        doc = {"event": event, **{k: v for k, v in fields.items() if v not in (None, "")}}
        if skipped:
            doc["not_logged_before"] = skipped
        what = fields.get("message") or fields.get("method") or ""
        log.log(level, "audit %s%s", event, f": {what}" if what else "", extra={"audit": doc})
