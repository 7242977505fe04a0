"""Series tables the collector has seen, recognised by their bytes.

An agent sends its host's series table (names, kinds, units, labels: about 300 rows) in every
frame, and hosts of a fleet mostly share one: the host itself is a resource label, not a series
label. Decoding, validating and hashing those rows again for every frame was most of the
collector's Python work per frame (bench/fleet.py's profile, issue 16). So the pipeline finds
the table's bytes in the payload without parsing it (`ferry.wire.census.series_span`), and a
table whose exact bytes it has decoded and validated before is taken from here: its SeriesDefs,
its census counts, its metric names with each series' index, which series are histograms. Per
host (the table with the frame's resource labels merged in), the series ids are kept too.

Only a table that passed validation is learned, and the bytes are the key (a 16-byte BLAKE2b
digest), so a cached table is the one the frame carries (short of a BLAKE2b collision someone
engineered). Both caches are bounded by what they hold and forget the least recently used:
`max_series` SeriesDefs over all tables (500,000: ~100 MB) and `max_ids` series ids over all
hosts (5 M: 40 MB). A table not in the cache costs what it always did.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ferry.wire.census import Census
from ferry.wire.columns import HISTOGRAM, SeriesDef


@dataclass(frozen=True)
class KnownTable:
    key: bytes
    defs: list[SeriesDef]
    census: Census  # what the table's bytes count, for census(known=...)
    names: pa.Array  # the metric names, sorted (an Arrow string array: a block's dictionary)
    name_idx: np.ndarray  # uint32: each series' name in `names`
    is_hist: np.ndarray  # bool: each series a histogram


def digest(raw: bytes | bytearray | memoryview) -> bytes:
    return hashlib.blake2b(raw, digest_size=16).digest()


def describe(key: bytes, defs: list[SeriesDef], census: Census) -> KnownTable:
    names = sorted({s.name for s in defs})
    pos = {n: i for i, n in enumerate(names)}
    n = len(defs)
    return KnownTable(
        key,
        defs,
        census,
        pa.array(names, type=pa.string()),
        np.fromiter((pos[s.name] for s in defs), dtype=np.uint32, count=n),
        np.fromiter((s.kind == HISTOGRAM for s in defs), dtype=bool, count=n),
    )


class SeriesCache:
    """`max_series`: SeriesDefs held across all tables (~200 bytes each); `max_ids`: series ids
    held across all hosts (8 bytes each). Past either, the least recently used go."""

    def __init__(self, max_series: int = 500_000, max_ids: int = 5_000_000):
        self._tables: OrderedDict[bytes, KnownTable] = OrderedDict()
        self._hosts: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self.max_series = max_series
        self.max_ids = max_ids
        self._series = 0
        self._ids = 0
        self._lock = threading.Lock()

    def table(self, key: bytes) -> KnownTable | None:
        with self._lock:
            known = self._tables.get(key)
            if known is not None:
                self._tables.move_to_end(key)
            return known

    def learn(self, key: bytes, defs: list[SeriesDef], census: Census) -> KnownTable:
        """Keep a table that passed validation."""
        known = describe(key, defs, census)
        with self._lock:
            if key not in self._tables:
                self._tables[key] = known
                self._series += len(defs)
            while self._series > self.max_series and self._tables:
                self._series -= len(self._tables.popitem(last=False)[1].defs)
        return known

    def host_ids(self, key: tuple) -> np.ndarray | None:
        with self._lock:
            ids = self._hosts.get(key)
            if ids is not None:
                self._hosts.move_to_end(key)
            return ids

    def keep_host_ids(self, key: tuple, ids: np.ndarray) -> None:
        with self._lock:
            if key not in self._hosts:
                self._hosts[key] = ids
                self._ids += len(ids)
            while self._ids > self.max_ids and self._hosts:
                self._ids -= len(self._hosts.popitem(last=False)[1])
