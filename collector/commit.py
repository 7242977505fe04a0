"""Group commit: decoded frames from every stream join one group; a group is written as one
insert per table; each frame is answered once every insert holding its rows returned.

A group is closed when it holds `max_rows` rows (points and records) or when its first frame
has waited `max_age` seconds, whichever comes first; one committer thread (`start`) writes
closed groups one after another (the inserts themselves run in the engine, off the event loop, and release
the GIL), while the next group fills. Before a frame joins, its rows are checked against the
dedup marks (`ferry.collector.marks`) table by table and day by day: rows a table already holds
are left out of that table only, and a frame every table holds is answered DUPLICATE. An
`inline` committer writes each frame as a group of its own in `submit` (tests, tools).

What keeps the marks exact (docs/delivery.md):
- the frames of one (agent_id, epoch) join in seq order: a stream prepares its frames one at a
  time, and a frame whose (agent_id, epoch) still has unanswered frames from another stream (an
  agent that reconnected while its old stream's frames were in flight), or of a seq at or above
  its own from the same stream (sent out of order), waits until those are answered, then is
  checked again;
- a group that fails fails every group after it, and the streams of its frames (`Stream.failed`)
  take no more frames: nothing after an unanswered frame is ever written;
- a failed group may still have written some of its tables (an insert that raised after others
  returned, or after some of its day parts): before any frame joins again, the marks take the
  store's ledger once more (`reload`), so a resend skips what was written.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ferry.collector import selfmetrics as m
from ferry.collector.marks import Marks
from ferry.collector.rows import SeriesTable
from ferry.collector.storage import tables
from ferry.collector.storage.ledger import DAY_MS, Mark, ticks_per_day
from ferry.wire.streamdec import StreamDecoder

log = logging.getLogger("ferry.collector.commit")


class StoreUnavailable(RuntimeError):
    """The frame was valid but could not be committed; nothing after it may be acked."""


@dataclass
class Stream:
    """One ingest stream as the committer sees it: once a frame of it failed, none joins.
    `decoder`: its stream-encoding state (None: not negotiated, or a Push); `broken`: why that
    state can no longer be trusted (the stream ends after answering the frame that broke it)."""

    failed: bool = False
    decoder: StreamDecoder | None = None
    broken: tuple[int, int, str] | None = None  # (epoch, seq, why)


@dataclass
class Prepared:
    """A decoded, validated frame: its rows per raw table (identity columns filled) and what the
    `series` and `agents` tables learn from it."""

    agent_id: str
    epoch: int
    seq: int
    blocks: dict[str, pa.Table]  # raw table → rows
    series: SeriesTable | None = None
    min_time_ms: int = 0
    max_time_ms: int = 0
    host: str = ""
    version: str = ""
    address: str = ""
    points: int = 0
    records: dict[str, int] = field(default_factory=dict)


@dataclass
class Pending:
    """A prepared frame in a group: the rows it writes per table (raw tables and rollups), the
    units those rows are in, and the future its answer goes to."""

    frame: Prepared
    stream: Stream
    writes: dict[str, pa.Table]
    units: dict[str, tuple[int, ...]]  # table → days written
    future: Future


@dataclass
class Group:
    frames: list[Pending] = field(default_factory=list)
    rows: int = 0
    opened: float = 0.0

    def add(self, p: Pending, now: float) -> None:
        if not self.frames:
            self.opened = now
        self.frames.append(p)
        # points and records: the raw tables' rows (the rollups get as many again, or fewer)
        self.rows += sum(b.num_rows for t, b in p.writes.items() if t in tables.RAW)


# Answers the committer gives a frame's future: the ack status name
OK, DUPLICATE = "OK", "DUPLICATE"


# whose rows' times are within the frame's min_time_ms..max_time_ms (set with its `points`)
_METRIC_TABLES = frozenset(tables.ROLLUPS)


def _days(block: pa.Table, per_day: int) -> np.ndarray:
    ts = block.column("ts").combine_chunks().cast(pa.int64()).to_numpy()
    return ts // per_day


class GroupCommitter:
    def __init__(
        self,
        write: Callable[[Group], None],
        marks: Marks,
        max_rows: int = 100_000,
        max_age_s: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        inline: bool = False,
        reload: Callable[[], Iterable[Mark]] | None = None,
    ):
        self.write = write  # writes a group's inserts; raises if any failed
        self.marks = marks
        self.max_rows = max_rows
        self.max_age_s = max_age_s
        self.clock = clock
        self.inline = inline  # each frame written as its own group by `submit` (tests, tools)
        # the store's ledger, read again after a failed write: a group that failed may have left
        # some tables (or days) written, which the marks then do not know of
        self.reload = reload
        self._stale = False
        self._stale_why = ""
        self._cond = threading.Condition()
        self._open = Group()
        self._closed: deque[Group] = deque()
        # (agent_id, epoch) → (the stream its unanswered frames came on, how many, highest seq)
        self._pending: dict[tuple[str, int], tuple[Stream, int, int]] = {}
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- joining ------------------------------------------------------------------------------

    def submit(self, frame: Prepared, stream: Stream) -> Future:
        """Join `frame` to the open group; the future resolves to OK or DUPLICATE, or raises
        StoreUnavailable. Blocks only while another stream's (or Push call's) frames of the same
        agent and epoch are unanswered."""
        key = (frame.agent_id, frame.epoch)
        with self._cond:
            while True:
                if stream.failed:
                    raise StoreUnavailable("an earlier frame of this stream was not committed")
                if self._stale:
                    raise StoreUnavailable(
                        f"{self._stale_why}; no frame is taken until the dedup marks are read again "
                        "from the store: retry"
                    )
                if self._stopping:
                    raise StoreUnavailable("collector is shutting down")
                owner = self._pending.get(key)
                # another stream's frames of this agent and epoch, or this stream's own of a
                # seq at or above this one (sent out of order): answered first, then checked
                if owner is None or (owner[0] is stream and frame.seq > owner[2]):
                    break
                self._cond.wait(1.0)
            writes, units = self._unstored(frame)
            future: Future = Future()
            if frame.blocks and not writes:
                future.set_result(DUPLICATE)
                return future
            self._open.add(Pending(frame, stream, writes, units, future), self.clock())
            self._pending[key] = (stream, (owner[1] if owner else 0) + 1, frame.seq)
            if self.inline or self._open.rows >= self.max_rows:
                self._close()
            group = self._closed.popleft() if self.inline else None
            self._cond.notify_all()
        if group is not None:  # written here and now
            self.flush(group)
            if self._stale:
                self._reload()
        return future

    def _unstored(self, frame: Prepared) -> tuple[dict[str, pa.Table], dict[str, tuple[int, ...]]]:
        """The rows of `frame` each table does not hold yet, and the days they are in."""
        writes: dict[str, pa.Table] = {}
        units: dict[str, tuple[int, ...]] = {}
        fresh_frame = not self.marks.any_stored(frame.agent_id, frame.epoch, frame.seq)
        for raw, block in frame.blocks.items():
            per_day = ticks_per_day(raw)
            days = None
            one_day = frame.points and frame.min_time_ms // DAY_MS == frame.max_time_ms // DAY_MS
            if raw in _METRIC_TABLES and one_day:
                distinct: tuple[int, ...] = (frame.min_time_ms // DAY_MS,)  # the usual frame: one day
            else:
                days = _days(block, per_day)
                distinct = tuple(int(d) for d in np.unique(days))
            for table in (raw, *tables.ROLLUPS.get(raw, ())):
                if fresh_frame:  # no table holds anything of it (the usual case)
                    writes[table], units[table] = block, distinct
                    continue
                fresh = tuple(
                    d
                    for d in distinct
                    if not self.marks.stored(frame.agent_id, frame.epoch, frame.seq, (table, d))
                )
                if not fresh:
                    continue
                if len(fresh) == len(distinct):
                    writes[table] = block
                else:  # some days of this table were stored before a crash: the others only
                    if days is None:
                        days = _days(block, per_day)
                    writes[table] = block.filter(pa.array(np.isin(days, fresh)))
                units[table] = fresh
        return writes, units

    def write_open(self) -> None:
        """Close the open group and write it on the calling thread: for a committer that is not
        started (tools writing many frames as one group, like bench/storage.py)."""
        with self._cond:
            self._close()
            groups = list(self._closed)
            self._closed.clear()
        for group in groups:
            self.flush(group)

    def _close(self) -> None:
        if self._open.frames:
            self._closed.append(self._open)
            self._open = Group()

    # -- writing ------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Write what was taken, then stop; frames submitted after this are refused."""
        with self._cond:
            self._stopping = True
            self._close()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _next(self) -> Group | None:
        with self._cond:
            while True:
                if self._closed:
                    return self._closed.popleft()
                if self._open.frames:
                    wait = self._open.opened + self.max_age_s - self.clock()
                    if wait <= 0 or self._stopping:
                        self._close()
                        continue
                elif self._stopping:
                    return None
                else:
                    wait = None
                self._cond.wait(wait)

    def _run(self) -> None:
        while True:
            if self._stale:
                self._reload()
                continue
            group = self._next()
            if group is None:
                return
            try:
                self.flush(group)
            except Exception as exc:  # a bug past the write: fail the group rather than hang it
                log.exception("answering a group failed")
                self._fail(group, exc)

    def _reload(self) -> None:
        """Merge the store's ledger into the marks (after a failed write), retrying each second
        while the store does not answer; frames are refused (UNAVAILABLE) meanwhile."""
        assert self.reload is not None
        try:
            n = self.marks.load(self.reload())
        except Exception as exc:
            log.warning("reading the dedup ledger after a failed write failed (retrying): %s", exc)
            with self._cond:
                self._stale_why = f"store not taking writes: {exc}"
                self._cond.wait(1.0)
            return
        log.info("dedup marks: %d read again from the store after a failed write", n)
        with self._cond:
            self._stale = False
            self._cond.notify_all()

    def flush(self, group: Group) -> None:
        """Write `group` and answer its frames (the committer thread; tests call it directly)."""
        started = time.perf_counter()
        try:
            self.write(group)
        except Exception as exc:
            m.GROUPS.labels("failed").inc()
            m.STORE_ERRORS.inc()
            self._fail(group, exc)
            return
        m.GROUPS.labels("ok").inc()
        m.GROUP_SECONDS.observe(time.perf_counter() - started)
        m.GROUP_FRAMES.observe(len(group.frames))
        m.GROUP_ROWS.observe(group.rows)
        for p in group.frames:
            f = p.frame
            self.marks.commit(
                f.agent_id, f.epoch, f.seq, ((t, d) for t, days in p.units.items() for d in days)
            )
            m.POINTS.inc(f.points)
            for kind, n in f.records.items():
                m.RECORDS[kind].inc(n)
        m.MARKS.set(len(self.marks))
        self._answer(group, lambda fut: fut.set_result(OK))

    def _fail(self, failed: Group, exc: Exception) -> None:
        """Fail `failed` and every group after it: none of their frames may be stored now."""
        with self._cond:
            groups = [failed, *self._closed, self._open]
            self._closed.clear()
            self._open = Group()
            # the failed group may have written some of its tables: nothing joins until the
            # marks know what (in an inline committer, the caller's next submit reads it)
            self._stale = self.reload is not None
            self._stale_why = f"a write failed: {exc}"
            for g in groups:
                for p in g.frames:
                    p.stream.failed = True
        n = sum(len(g.frames) for g in groups)
        log.warning(
            "group of %d frames not committed (%d frames failed in all): %s", len(failed.frames), n, exc
        )
        for g in groups:
            error = (
                StoreUnavailable(f"store write failed: {exc}")
                if g is failed
                else StoreUnavailable("an earlier group failed: this frame was not written")
            )
            self._answer(g, lambda fut, e=error: fut.set_exception(e))

    def _answer(self, group: Group, resolve: Callable[[Future], None]) -> None:
        with self._cond:
            for p in group.frames:
                key = (p.frame.agent_id, p.frame.epoch)
                stream, n, top = self._pending[key]
                if n > 1:
                    self._pending[key] = (stream, n - 1, top)
                else:
                    del self._pending[key]
            self._cond.notify_all()
        for p in group.frames:
            resolve(p.future)
