"""A validated frame's metrics → the rows the store writes: series ids, and the insert blocks
(`ferry.collector.storage.blocks`: Arrow tables) of the `samples` and `histograms` tables
(`ferry.collector.storage.tables` declares their columns).

Called by the ingest service between validation and the store. Per-series work (label merge,
series id hash) is cached across frames; per-point work is numpy gathers over whole columns.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from ferry.collector.storage import blocks, tables
from ferry.collector.storage.blocks import Dictionary, Ragged
from ferry.v1 import payload_pb2
from ferry.wire.columns import HISTOGRAM, KIND_NAMES, MetricBatch, SeriesDef


class Identity(NamedTuple):
    """The frame a row came in: written into every raw row, the store's dedup ledger."""

    agent_id: str = ""
    epoch: int = 0
    seq: int = 0

    def columns(self, n: int) -> dict[str, object]:
        """The identity columns of a block of `n` rows (`tables.IDENTITY_COLUMNS`)."""
        return {
            "agent_id": Dictionary([self.agent_id], np.zeros(n, dtype=np.int32)),
            "epoch": np.full(n, self.epoch, dtype=np.uint64),
            "seq": np.full(n, self.seq, dtype=np.uint64),
        }


NO_IDENTITY = Identity()


@dataclass(frozen=True, slots=True)
class SeriesRow:
    series_id: int
    name: str
    kind: str
    unit: str
    labels: tuple[tuple[str, str], ...]
    host: str


@dataclass(slots=True)
class FrameRows:
    """What one frame writes. `series` lists every series the frame touches; `records` (a block
    per record table that gets rows) is set by the pipeline from `ferry.collector.records_rows`."""

    series: list[SeriesRow]
    samples_block: pa.Table | None = None
    samples_count: int = 0
    histograms_block: pa.Table | None = None
    min_time_ms: int = 0
    max_time_ms: int = 0
    records: dict[str, pa.Table] = field(default_factory=dict)


def series_id(name: str, labels: tuple[tuple[str, str], ...]) -> int:
    """Stable 64-bit id of name + sorted labels (kind and unit are attributes, not identity)."""
    h = hashlib.blake2b(digest_size=8)
    h.update(name.encode())
    for k, v in labels:
        h.update(b"\x00" + k.encode() + b"\x01" + v.encode())
    return int.from_bytes(h.digest(), "little")


def merge_labels(series_labels: tuple[tuple[str, str], ...], resource: dict[str, str]) -> tuple:
    """Resource labels (host included) win; a clashing series label becomes `exported_<key>`."""
    merged = dict(resource)
    for k, v in series_labels:
        merged[f"exported_{k}" if k in resource else k] = v
    return tuple(sorted(merged.items()))


class RowBuilder:
    def __init__(self, cache_size: int = 200_000):
        self._cache: OrderedDict[tuple, SeriesRow] = OrderedDict()
        self._cache_size = cache_size

    def _row(self, s: SeriesDef, host: str, resource_key: tuple, resource: dict[str, str]) -> SeriesRow:
        key = (s, resource_key)
        row = self._cache.get(key)
        if row is None:
            labels = merge_labels(s.labels, resource)
            row = SeriesRow(series_id(s.name, labels), s.name, KIND_NAMES[s.kind], s.unit, labels, host)
            self._cache[key] = row
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return row

    def build(
        self, batch: MetricBatch, resource: payload_pb2.Resource, identity: Identity = NO_IDENTITY
    ) -> FrameRows:
        res = dict(resource.labels)
        res["host"] = resource.host
        res_key = tuple(sorted(res.items()))
        rows = [self._row(s, resource.host, res_key, res) for s in batch.series]
        out = FrameRows(series=rows)
        if not len(batch):
            return out
        sids = np.fromiter((r.series_id for r in rows), dtype=np.uint64, count=len(rows))
        names = sorted({r.name for r in rows})
        name_pos = {n: i for i, n in enumerate(names)}
        name_idx = np.fromiter((name_pos[r.name] for r in rows), dtype=np.uint32, count=len(rows))
        is_hist = np.fromiter((s.kind == HISTOGRAM for s in batch.series), dtype=bool, count=len(rows))
        refs = batch.series_ref
        point_is_hist = is_hist[refs]
        out.min_time_ms = int(batch.time_ms.min())
        out.max_time_ms = int(batch.time_ms.max())
        if point_is_hist.any():
            plain = ~point_is_hist
            out.histograms_block = _histogram_block(batch, point_is_hist, sids, names, name_idx, identity)
            refs, times, values = refs[plain], batch.time_ms[plain], batch.value[plain]
        else:
            times, values = batch.time_ms, batch.value
        if refs.shape[0]:
            out.samples_count = int(refs.shape[0])
            out.samples_block = blocks.block(
                tables.SAMPLES,
                out.samples_count,
                {
                    "series_id": sids[refs],
                    "name": Dictionary(names, name_idx[refs]),
                    "ts": times,
                    "value": values,
                    **identity.columns(out.samples_count),
                },
            )
        return out


def _histogram_block(
    batch: MetricBatch,
    point_is_hist: np.ndarray,
    sids: np.ndarray,
    names: list[str],
    name_idx: np.ndarray,
    identity: Identity,
) -> pa.Table:
    refs = batch.series_ref[point_is_hist]
    widths = np.array([len(s.bounds) + 1 for s in batch.series], dtype=np.int64)[refs]
    counts = batch.bucket_counts
    starts = np.concatenate(([0], np.cumsum(widths)[:-1]))
    totals = np.add.reduceat(counts, starts) if counts.shape[0] else np.zeros(0, dtype=np.uint64)
    flat_bounds = np.concatenate(
        [np.asarray(batch.series[r].bounds, dtype=np.float64) for r in refs.tolist()]
    )
    return blocks.block(
        tables.HISTOGRAMS,
        int(refs.shape[0]),
        {
            "series_id": sids[refs],
            "name": Dictionary(names, name_idx[refs]),
            "ts": batch.time_ms[point_is_hist],
            "sum": batch.value[point_is_hist],
            "count": totals,
            "bounds": Ragged(widths - 1, flat_bounds),
            "counts": Ragged(widths, counts),
            **identity.columns(int(refs.shape[0])),
        },
    )
