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
digest), so a cached table is exactly the one the frame carries. Both caches are bounded and
forget the least recently used: `max_tables` tables (each a few hundred SeriesDefs) and
`max_hosts` hosts (8 bytes a series each). A table not in the cache costs what it always did.
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
    def __init__(self, max_tables: int = 10_000, max_hosts: int = 100_000):
        self._tables: OrderedDict[bytes, KnownTable] = OrderedDict()
        self._hosts: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self.max_tables = max_tables
        self.max_hosts = max_hosts
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
            self._tables[key] = known
            while len(self._tables) > self.max_tables:
                self._tables.popitem(last=False)
        return known

    def host_ids(self, key: tuple) -> np.ndarray | None:
        with self._lock:
            ids = self._hosts.get(key)
            if ids is not None:
                self._hosts.move_to_end(key)
            return ids

    def keep_host_ids(self, key: tuple, ids: np.ndarray) -> None:
        with self._lock:
            self._hosts[key] = ids
            while len(self._hosts) > self.max_hosts:
                self._hosts.popitem(last=False)
