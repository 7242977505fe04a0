"""A validated frame's metrics → the rows the store writes: series ids, and the insert blocks
(`ferry.collector.storage.blocks`: Arrow tables) of the `samples` and `histograms` tables
(`ferry.collector.storage.tables` declares their columns).

Called by the ingest pipeline between validation and the group commit. Per-series work (label
merge, series id hash) is cached across frames by series table and host
(ferry.collector.seriescache); per-point work is numpy gathers over whole columns.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from ferry.collector.seriescache import KnownTable, SeriesCache, describe
from ferry.collector.storage import blocks, tables
from ferry.collector.storage.blocks import Dictionary, Ragged
from ferry.v1 import payload_pb2
from ferry.wire.census import Census
from ferry.wire.columns import KIND_NAMES, MetricBatch, SeriesDef


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
class SeriesTable:
    """The series a frame touches, with its resource merged in: what `series` rows it writes.
    `key` names the table and resource (frames with the same key touch the same series, so the
    writer writes their rows once per refresh); None when the table was not recognised."""

    key: tuple | None
    defs: list[SeriesDef]
    resource: dict[str, str]
    host: str
    ids: np.ndarray  # uint64 series_id of each of `defs`

    def rows(self) -> list[SeriesRow]:
        res = self.resource
        return [
            SeriesRow(int(sid), s.name, KIND_NAMES[s.kind], s.unit, merge_labels(s.labels, res), self.host)
            for s, sid in zip(self.defs, self.ids.tolist(), strict=True)
        ]

    def __len__(self) -> int:
        return len(self.defs)


@dataclass(slots=True)
class FrameRows:
    """What one frame's metrics write. `series`: every series the frame touches (the record
    kinds' blocks come from `ferry.collector.records_rows`)."""

    series: SeriesTable
    samples_block: pa.Table | None = None
    samples_count: int = 0
    histograms_block: pa.Table | None = None
    min_time_ms: int = 0
    max_time_ms: int = 0


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


def series_ids(defs: list[SeriesDef], resource: dict[str, str]) -> np.ndarray:
    """The series id of each of `defs` under `resource` (its labels with host), uint64."""
    n = len(defs)
    return np.fromiter(
        (series_id(s.name, merge_labels(s.labels, resource)) for s in defs), dtype=np.uint64, count=n
    )


class RowBuilder:
    """Builds a frame's insert blocks. With a recognised series table (`known`, from
    ferry.collector.seriescache) the per-series work (names, histogram flags, series ids per
    host) is the cache's, so a frame costs numpy gathers over its columns only."""

    def __init__(self, cache: SeriesCache | None = None):
        self.cache = cache or SeriesCache()

    def build(
        self,
        batch: MetricBatch,
        resource: payload_pb2.Resource,
        identity: Identity = NO_IDENTITY,
        known: KnownTable | None = None,
        sids: np.ndarray | None = None,
    ) -> FrameRows:
        """`sids`: the series ids of batch.series, known already (a stream's, kept per series)."""
        res = dict(resource.labels)
        res["host"] = resource.host
        if known is not None and sids is not None:
            key = (known.key, tuple(sorted(res.items())))
        elif known is None:
            known = describe(b"", batch.series, Census())
            key = None
            sids = series_ids(batch.series, res)
        else:
            key = (known.key, tuple(sorted(res.items())))
            sids = self.cache.host_ids(key)
            if sids is None:
                sids = series_ids(batch.series, res)
                self.cache.keep_host_ids(key, sids)
        out = FrameRows(series=SeriesTable(key, batch.series, res, resource.host, sids))
        if not len(batch):
            return out
        names, name_idx = known.names, known.name_idx
        refs = batch.series_ref
        point_is_hist = known.is_hist[refs]
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
