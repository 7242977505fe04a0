"""Frames as the committer takes them (`ferry.collector.commit.Prepared`), written through the real
GroupCommitter and Writer into a test's store: each `submit` writes its frame's group at once
(an inline committer)."""

from __future__ import annotations

import pyarrow as pa

from ferry.collector.commit import GroupCommitter, Prepared, Stream
from ferry.collector.marks import Marks
from ferry.collector.rows import Identity
from ferry.collector.storage.store import Store, ThreadStores
from ferry.collector.writer import Writer


def committer(store: Store, marks: Marks | None = None) -> GroupCommitter:
    return GroupCommitter(Writer(ThreadStores(lambda: store)).write, marks or Marks(), inline=True)


def write(
    c: GroupCommitter, frame: Identity, blocks: dict[str, pa.Table], stream: Stream | None = None
) -> str:
    """Submit a frame of `blocks` (raw table → rows with `frame`'s identity); its answer."""
    prepared = Prepared(frame.agent_id, frame.epoch, frame.seq, blocks)
    return c.submit(prepared, stream or Stream()).result()
