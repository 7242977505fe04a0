"""Whether the store is taking writes: what the writer asks before a frame is acked, and what
the collector's grpc health reports (SERVING / NOT_SERVING).

An insert that returned is not proof on its own. Embedded chDB whose directory is removed under
it recreates the part directories it writes into and answers OK, while its metadata and every
earlier part are gone: after a restart those rows are not in the store. So the writer calls
`after_write` once a frame's inserts returned, and the frame is acked only if the store's
directory and each table's data directory are still the ones the collector opened. They are held
open by descriptor, so their inodes cannot be reused, and each must still be linked and still be
what its path names (device and inode). That is a few fstat/stat calls per frame.

A directory that vanished or was replaced is final for this process: the engine's in-memory
state, its dedup tokens included, no longer matches the disk, so a resend under the same token
would be skipped. Only a restart on a good directory recovers (the agents resend what was not
acked). An insert that raised, or a table that is missing, is a failure the store may recover
from: `probe` (every `store_probe_interval`) runs a cheap query over the expected tables and
turns the store healthy again when it answers and they are all there. A read cannot prove that
writes work again (a full disk still answers), so after a failed insert the store stays failing
for a hold that doubles with each failure in a row (1 s, 2 s, … 30 s) and is reset by the
first insert that commits: a store that keeps failing writes is mostly NOT_SERVING, not
flapping every probe.

Created by the collector's main once the schema is in place; used from writer threads and the
probe's thread, so its state is behind a lock.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ferry.collector.storage.store import Store, StoreError

log = logging.getLogger("ferry.collector.storage")

HOLD_S, MAX_HOLD_S = 1.0, 30.0  # how long a failed insert keeps the store failing, doubling


@dataclass(frozen=True)
class Anchor:
    """A directory of the store, held open so its identity can be checked."""

    path: str
    fd: int
    dev: int
    ino: int

    @classmethod
    def open(cls, path: str) -> Anchor:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        st = os.fstat(fd)
        return cls(path, fd, st.st_dev, st.st_ino)

    def problem(self) -> str | None:
        """Why this directory is no longer the store's, or None while it is."""
        if os.fstat(self.fd).st_nlink == 0:
            return f"directory {self.path} was removed"
        try:
            st = os.stat(self.path)
        except OSError as exc:
            return f"directory {self.path} is gone ({exc.strerror})"
        if (st.st_dev, st.st_ino) != (self.dev, self.ino):
            return f"directory {self.path} was replaced by another one"
        return None


class StoreHealth:
    """The store's state as the ingest path knows it: ok, failing (may recover) or lost (final)."""

    def __init__(
        self,
        database: str,
        tables: tuple[str, ...],
        anchors: tuple[Anchor, ...] = (),
        clock: Callable[[], float] = time.monotonic,
    ):
        self.database = database
        self.tables = tables  # the tables a probe expects to find
        self.anchors = anchors
        self.clock = clock
        self._lock = threading.Lock()
        self._failing = ""  # why writes fail now; a probe may clear it
        self._lost = ""  # why the store's disk is not the engine's any more; never cleared
        self._failed_writes = 0  # in a row, since the last insert that committed
        self._failed_at = 0.0

    @classmethod
    def of(cls, store: Store) -> StoreHealth:
        """Anchor the store's directories (embedded chDB) and list its tables, as they are now."""
        rows = store.query(
            "SELECT name, data_paths FROM system.tables WHERE database = {db:String} ORDER BY name",
            {"db": store.db},
        )
        anchors: list[Anchor] = []
        if store.path:
            # the engine's root, where it keeps the tables' definitions, and each table's parts
            meta = store.query(
                "SELECT metadata_path FROM system.databases WHERE name = {db:String}", {"db": store.db}
            )
            paths = [
                store.path,
                os.path.join(store.path, "metadata"),
                *(os.path.join(store.path, m.rstrip("/")) for (m,) in meta),
                *(p.rstrip("/") for _, data_paths in rows for p in data_paths),
            ]
            anchors = [Anchor.open(p) for p in dict.fromkeys(paths) if os.path.isdir(p)]
        return cls(store.db, tuple(name for name, _ in rows), tuple(anchors))

    @property
    def ok(self) -> bool:
        return not (self._lost or self._failing)

    @property
    def lost(self) -> str:
        """Why the store's disk is no longer the engine's ('' while it is): final."""
        return self._lost

    @property
    def reason(self) -> str:
        return self._lost or self._failing

    def before_write(self) -> None:
        """StoreError when the store is known not to take writes, so nothing is written at all."""
        if not self.ok:
            raise StoreError(f"store not taking writes: {self.reason}")

    def after_write(self) -> None:
        """StoreError unless the rows just written are in the store's directories (see the
        module docstring); a failure here is final."""
        problem = self._identity_problem()
        if problem:
            self._lose(problem)
            raise StoreError(f"store not taking writes: {self.reason}")
        self._failed_writes = 0

    def write_failed(self, exc: BaseException) -> None:
        with self._lock:
            if not self._failing:
                log.error("store write failed; refusing frames until a probe succeeds: %s", exc)
            self._failing = f"a write failed: {_first_line(exc)}"
            self._failed_writes += 1
            self._failed_at = self.clock()

    def probe(self, store: Store) -> bool:
        """Check the directories and ask the store for its tables; returns whether it is ok.
        `store` is one no other thread uses at the time."""
        problem = self._identity_problem()
        if problem:
            self._lose(problem)
            return False
        try:
            rows = store.query(
                "SELECT name FROM system.tables "
                "WHERE database = {db:String} AND has({names:Array(String)}, name)",
                {"db": self.database, "names": list(self.tables)},
            )
        except Exception as exc:  # the store does not answer: writes would fail as well
            with self._lock:
                self._failing = f"the store does not answer: {_first_line(exc)}"
            return False
        missing = sorted(set(self.tables) - {r[0] for r in rows})
        with self._lock:
            if missing:
                self._failing = (
                    f"table {self.database}.{missing[0]} is missing ({len(missing)} of {len(self.tables)})"
                )
            elif self._failing and not self._lost and self.clock() - self._failed_at >= self.hold():
                log.warning("store takes writes again (was: %s)", self._failing)
                self._failing = ""
        return self.ok

    def hold(self) -> float:
        """Seconds a failed insert keeps the store failing, given the failures in a row."""
        if not self._failed_writes:
            return 0.0
        return min(MAX_HOLD_S, HOLD_S * 2 ** (self._failed_writes - 1))

    def close(self) -> None:
        for a in self.anchors:
            os.close(a.fd)
        self.anchors = ()

    def _identity_problem(self) -> str | None:
        if self._lost:
            return self._lost
        for anchor in self.anchors:
            problem = anchor.problem()
            if problem:
                return problem
        return None

    def _lose(self, problem: str) -> None:
        with self._lock:
            if not self._lost:
                self._lost = (
                    f"{problem} while the collector was running; rows written since are not in the "
                    "store, and only a restart on a good store directory recovers"
                )
                log.error("store lost: %s", self._lost)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else repr(exc)
