"""Alert state in the store: the transitions of every instance (`alerts`), acknowledgements
(`alert_acks`) and silences (`silences`), as `ferry.collector.storage.tables` declares them.

The alerting engine calls this from its own thread (every call blocks on the store): it writes
the transitions each evaluation makes, and at start rebuilds what it was doing from them
(`current`), so a restarted collector neither notifies again what it had notified nor loses the
`for` progress of a pending instance. The Alerts service (ferry.collector.alerting.service)
reads history, acks and silences through the engine, which calls these.

Acknowledgements are rows of their own, not transitions: an instance's `alerts` rows say only
what its condition did. An ack row says who acknowledged which instance, when and why; a row
with `cleared` = 1 ends it (the engine writes one when the instance resolves). An ack older than
the instance's current episode (it went pending again after the ack) is not applied by
`current`, should the clearing row be missing.

A silence is one row per version in a ReplacingMergeTree keyed by its id (the newest
`updated` wins, read with FINAL): expiring one writes it again with `ends` = now.

Times are milliseconds since the epoch; every value reaches the store as a query parameter or
in an insert block.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np
import pyarrow as pa

from ferry.collector.alerting.model import (
    InstanceState,
    Silence,
    State,
    Transition,
    matchers_text,
    parse_matchers,
)
from ferry.collector.alerting.model import now_ms as wall_ms
from ferry.collector.storage import blocks, tables
from ferry.collector.storage.blocks import Masked
from ferry.collector.storage.store import Store, ThreadStores
from ferry.limits import DAY_MS

# a resolved instance is kept by `current` this long after it resolved (then forgotten)
RESOLVED_KEPT_MS = DAY_MS
# transitions of one instance `current` reads back, newest first: an episode is at most
# inactive → pending → firing → resolved, so this reaches back past its start
RECENT = 8

Ack = tuple[str, int, str]  # (by, at_ms, note)
T = TypeVar("T")


class AlertStore:
    """The alerting tables of a Store. On a ThreadStores every thread calling it uses a Store of
    its own (the engine's evaluation thread and the Alerts service's, at once); on one Store,
    one thread at a time."""

    def __init__(self, store: Store | ThreadStores, clock: Callable[[], int] = wall_ms):
        self._stores = store
        self.clock = clock  # ms since the epoch: what `current` measures "older than a day" from

    @property
    def store(self) -> Store:
        return self._stores.get() if isinstance(self._stores, ThreadStores) else self._stores

    @property
    def db(self) -> str:
        return self.store.db

    # transitions

    def write(self, transitions: list[Transition]) -> None:
        """Insert `transitions` (one block; nothing for an empty list)."""
        if not transitions:
            return
        self.store.insert(tables.ALERTS.name, transitions_block(transitions))

    def history(self, since_ms: int, limit: int, state: str = "") -> list[Transition]:
        """Transitions at or after `since_ms`, newest first, at most `limit`; only those into
        `state` when given (ValueError for a state that is not one)."""
        where = "ts >= fromUnixTimestamp64Milli({since:Int64}, 'UTC')"
        params: dict = {"since": int(since_ms), "limit": max(0, int(limit))}
        if state:
            params["state"] = str(State(state))
            where += " AND state = {state:String}"
        rows = self.store.query(
            f"SELECT {_TRANSITION_COLUMNS} FROM {self.db}.alerts WHERE {where}"
            " ORDER BY ts DESC, id LIMIT {limit:UInt64}",
            params,
        )
        # one evaluation can move an instance twice (inactive → pending → firing with `for` = 0)
        out = [_transition(r) for r in rows]
        return _in_order(
            out, key=lambda t: (t.time_ms, t.id), state=lambda t: t.state, previous=lambda t: t.previous
        )

    def current(self, now_ms: int | None = None) -> list[InstanceState]:
        """Every instance whose latest transition is into pending or firing, or into resolved
        less than a day ago, as the engine had it: state, labels, value and annotations of that
        transition; `active_since_ms` (when its pending began), `fired_at_ms`, `resolved_at_ms`
        from the transitions of its episode; `last_true_ms` the latest transition's time (the
        last evaluation the condition held is not stored: that is a lower bound of it); and the
        ack that stands for it (`acks`, made within this episode). Sorted by rule, then id."""
        now_ms = self.clock() if now_ms is None else int(now_ms)
        rows = self.store.query(
            f"""SELECT id,
                arraySlice(arrayReverseSort(x -> x.1, groupArray(
                    (toUnixTimestamp64Milli(ts), state, previous, rule, labels, value, annotations)
                )), 1, {RECENT}) AS recent
            FROM {self.db}.alerts
            GROUP BY id
            HAVING max(ts) >= fromUnixTimestamp64Milli({{since:Int64}}, 'UTC')
                OR maxIf(ts, state IN ('pending', 'firing')) = max(ts)""",
            {"since": now_ms - RESOLVED_KEPT_MS},
        )
        acks = self.acks()
        out = []
        for _id, recent in rows:
            instance = _rebuilt(recent, now_ms)
            if instance is None:
                continue
            ack = acks.get(instance.id)
            if ack is not None and instance.state != State.RESOLVED and ack[1] >= instance.active_since_ms:
                instance.acked_by, instance.acked_at_ms, instance.ack_note = ack
            out.append(instance)
        return sorted(out, key=lambda i: (i.rule, i.id))

    # acknowledgements

    def ack(self, id: str, by: str, note: str, now_ms: int) -> None:
        """`by` acknowledged instance `id` at `now_ms` (no repeat notifications while it fires)."""
        self._ack_row(id, by, note, now_ms, cleared=False)

    def clear_ack(self, id: str, now_ms: int) -> None:
        """Instance `id`'s ack ends (it resolved); a no-op row when it had none."""
        self._ack_row(id, "", "", now_ms, cleared=True)

    def acks(self) -> dict[str, Ack]:
        """id -> (by, at_ms, note) of every instance acked and not cleared since (a clear and an
        ack of the same millisecond: the clear wins)."""
        rows = self.store.query(
            f"""SELECT id, argMax(acked_by, (ts, cleared)), toUnixTimestamp64Milli(max(ts)),
                argMax(note, (ts, cleared))
            FROM {self.db}.alert_acks
            GROUP BY id
            HAVING argMax(cleared, (ts, cleared)) = 0"""
        )
        return {id_: (by, int(at), note) for id_, by, at, note in rows}

    def _ack_row(self, id: str, by: str, note: str, now_ms: int, cleared: bool) -> None:
        self.store.insert(tables.ALERT_ACKS.name, ack_block(id, by, note, now_ms, cleared))

    # silences

    def add_silence(self, s: Silence, now_ms: int | None = None) -> None:
        """Write silence `s` (a new one, or a new version of one with its id)."""
        self._silence_row(s, self.clock() if now_ms is None else now_ms)

    def silences(self, now_ms: int, include_expired: bool = False) -> list[Silence]:
        """Silences not yet ended at `now_ms` (active or starting later), or every one with
        `include_expired`; by start, then id."""
        where = "" if include_expired else "WHERE ends > fromUnixTimestamp64Milli({now:Int64}, 'UTC')"
        rows = self.store.query(
            f"SELECT {_SILENCE_COLUMNS} FROM {self.db}.silences FINAL {where} ORDER BY starts, id",
            {"now": int(now_ms)},
        )
        return [_silence(r) for r in rows]

    def silence(self, id: str) -> Silence:
        """Silence `id` as it stands (KeyError naming it when there is none)."""
        rows = self.store.query(
            f"SELECT {_SILENCE_COLUMNS} FROM {self.db}.silences FINAL WHERE id = {{id:String}}", {"id": id}
        )
        if not rows:
            raise KeyError(f"no silence {id!r}")
        return _silence(rows[0])

    def expire_silence(self, id: str, now_ms: int) -> Silence:
        """End silence `id` at `now_ms` and return it as it is now; one already ended is returned
        as it was (KeyError naming the id when there is none)."""
        found = self.silence(id)
        if found.ends_ms <= now_ms:
            return found
        expired = Silence(
            found.id, found.matchers, min(found.starts_ms, now_ms), now_ms, found.comment, found.created_by
        )
        self._silence_row(expired, now_ms)
        return expired

    def _silence_row(self, s: Silence, now_ms: int) -> None:
        # a version later than any written before it, even within one millisecond
        rows = self.store.query(
            f"SELECT toUnixTimestamp64Milli(max(updated)), count() FROM {self.db}.silences"
            " WHERE id = {id:String}",
            {"id": s.id},
        )
        last, n = rows[0]
        updated = max(int(now_ms), int(last) + 1) if n else int(now_ms)
        self.store.insert(tables.SILENCES.name, silence_block(s, updated))


def transitions_block(transitions: list[Transition]) -> pa.Table:
    """The `alerts` rows of `transitions`."""
    n = len(transitions)
    values = [t.value for t in transitions]
    return blocks.block(
        tables.ALERTS,
        n,
        {
            "ts": np.fromiter((t.time_ms for t in transitions), dtype=np.int64, count=n),
            "rule": [t.rule for t in transitions],
            "id": [t.id for t in transitions],
            "labels": [list(t.labels) for t in transitions],
            "state": [str(t.state) for t in transitions],
            "previous": [str(t.previous) for t in transitions],
            "value": Masked(
                np.array([0.0 if v is None else v for v in values], dtype=np.float64),
                np.array([v is None for v in values], dtype=bool),
            ),
            "threshold": [t.threshold for t in transitions],
            "severity": [t.severity for t in transitions],
            "annotations": [list(t.annotations.items()) for t in transitions],
        },
    )


def ack_block(id: str, by: str, note: str, now_ms: int, cleared: bool) -> pa.Table:
    """An `alert_acks` row."""
    return blocks.block(
        tables.ALERT_ACKS,
        1,
        {
            "ts": np.array([now_ms], dtype=np.int64),
            "id": [id],
            "acked_by": [by],
            "note": [note],
            "cleared": np.array([int(cleared)], dtype=np.uint8),
        },
    )


def silence_block(s: Silence, updated_ms: int) -> pa.Table:
    """A `silences` row: `s`, version `updated_ms`."""
    return blocks.block(
        tables.SILENCES,
        1,
        {
            "id": [s.id],
            "matchers": [matchers_text(s.matchers)],
            "starts": np.array([s.starts_ms], dtype=np.int64),
            "ends": np.array([s.ends_ms], dtype=np.int64),
            "comment": [s.comment],
            "created_by": [s.created_by],
            "updated": np.array([updated_ms], dtype=np.int64),
        },
    )


_TRANSITION_COLUMNS = (
    "toUnixTimestamp64Milli(ts), rule, id, labels, state, previous, value, threshold, severity, annotations"
)
_SILENCE_COLUMNS = (
    "id, matchers, toUnixTimestamp64Milli(starts), toUnixTimestamp64Milli(ends), comment, created_by"
)


def _labels(pairs: dict) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(pairs.items()))


def _transition(row) -> Transition:
    ts, rule, id_, labels, state, previous, value, threshold, severity, annotations = row
    return Transition(
        int(ts), rule, id_, _labels(labels), State(state), State(previous), value, threshold, severity,
        dict(annotations),
    )  # fmt: skip


def _silence(row) -> Silence:
    id_, matchers, starts, ends, comment, created_by = row
    return Silence(id_, parse_matchers(matchers), int(starts), int(ends), comment, created_by)


def _in_order(
    items: list[T], key: Callable[[T], object], state: Callable[[T], str], previous: Callable[[T], str]
) -> list[T]:
    """`items` (newest first) with each run of equal `key` (transitions of one millisecond) in
    the order they happened, newest first: of two, the one into the other's `previous` came first."""
    out = list(items)
    i = 0
    while i < len(out):
        j = i
        while j < len(out) and key(out[j]) == key(out[i]):
            j += 1
        tied = out[i:j]
        ordered = []
        while tied:  # the newest is a transition no other tied one started from
            pick = next(
                (t for t in tied if not any(previous(u) == state(t) for u in tied if u is not t)), tied[0]
            )
            ordered.append(pick)
            tied.remove(pick)
        out[i:j] = ordered
        i = j
    return out


def _rebuilt(recent: list[tuple], now_ms: int) -> InstanceState | None:
    """The instance as its newest transitions (time, state, previous, rule, labels, value,
    annotations; newest first) leave it, or None when it is inactive or resolved more than
    RESOLVED_KEPT_MS before `now_ms`."""
    recent = _in_order(recent, key=lambda t: t[0], state=lambda t: t[1], previous=lambda t: t[2])
    ts, state, _previous, rule, labels, value, annotations = recent[0]
    state = State(state)
    if state == State.INACTIVE or (state == State.RESOLVED and ts < now_ms - RESOLVED_KEPT_MS):
        return None
    instance = InstanceState(
        rule, _labels(labels), state, value, last_true_ms=int(ts), annotations=dict(annotations)
    )
    # walk back through the episode: resolved ← firing ← pending (← inactive / resolved)
    episode = iter(recent)
    t = next(episode)
    if t[1] == State.RESOLVED:
        instance.resolved_at_ms = int(t[0])
        t = next(episode, None)
    if t is not None and t[1] == State.FIRING:
        instance.fired_at_ms = int(t[0])
        instance.active_since_ms = int(t[0])  # from inactive straight to firing (`for` = 0)
        previous = t[2]
        t = next(episode, None) if previous == State.PENDING else None
    if t is not None and t[1] == State.PENDING:
        instance.active_since_ms = int(t[0])
    if not instance.active_since_ms:  # the episode's start is past what was read (or the TTL)
        instance.active_since_ms = instance.fired_at_ms or instance.resolved_at_ms or int(ts)
    return instance
