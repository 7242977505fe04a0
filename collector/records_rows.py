"""A validated frame's records → one insert block per record kind's table (`events`, `logs`).

Called by the ingest pipeline next to `rows.RowBuilder` (which handles the metric columns), once
per kind of `ferry.records.KINDS`. Records arrive as protobuf messages, one per record, so each
column is gathered with one pass over the records. The table (`ferry.collector.storage.tables`,
named by the kind) says which columns there are: `ts` is the record's time_unix_ns, host and
agent_id come from the frame (the same on every row), and every other column is the message
field of its name, a `has_<field>` flag making an optional number NULL; `epoch` and `seq` (with
agent_id, the frame's identity: the dedup ledger) are the frame's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
from google.protobuf.message import Message

from ferry.collector.rows import Identity
from ferry.collector.storage import blocks, tables
from ferry.collector.storage.blocks import Dictionary, Masked
from ferry.records import RecordKind


def _column(kind: RecordKind, name: str, records: Sequence[Message], frame: dict[str, object]):
    n = len(records)
    if name == "ts":
        return np.fromiter((r.time_unix_ns for r in records), dtype=np.int64, count=n)
    if name in frame:
        return frame[name]
    if name in kind.optional_numbers:
        flag = f"has_{name}"
        present = np.fromiter((getattr(r, flag) for r in records), dtype=bool, count=n)
        values = np.fromiter(
            (getattr(r, name) if getattr(r, flag) else 0.0 for r in records), dtype=np.float64, count=n
        )
        return Masked(values, ~present)
    if name == kind.attributes:
        return [sorted(getattr(r, name).items()) for r in records]
    return [getattr(r, name) for r in records]


def record_block(
    kind: RecordKind, records: Sequence[Message], host: str, identity: Identity
) -> pa.Table | None:
    """The rows of `kind`'s table for `records`, from the frame `identity`; None when there are none."""
    n = len(records)
    if not n:
        return None
    table = tables.TABLES[kind.name]
    # what is the same on every row: the host, and the frame's identity (the dedup ledger)
    frame = {"host": Dictionary([host], np.zeros(n, dtype=np.uint8)), **identity.columns(n)}
    return blocks.block(table, n, {c: _column(kind, c, records, frame) for c in table.names})
