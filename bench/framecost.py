"""CPU a frame costs the collector before its insert, at the caps of ferry.limits: what backs the
"refused in ~0.1 s" and "about a second of CPU" figures in docs/delivery.md and limits.py.

For each case: the census walk (ferry.wire.census), then — for a frame within the caps — parse,
decode, validate and rows, as the pipeline runs them on a writer thread. CPU time of this
process (time.process_time), one frame per case.

    .venv/bin/python -m bench.framecost
"""

from __future__ import annotations

import time

import numpy as np

from ferry.collector.rows import RowBuilder
from ferry.collector.validate import validate_batch
from ferry.limits import Limits, RecordLimits
from ferry.v1 import payload_pb2
from ferry.wire.census import CensusError, census
from ferry.wire.codec import decode_metrics, decode_payload, encode_payload
from ferry.wire.columns import GAUGE, MetricBatch, SeriesDef


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b, v = v & 0x7F, v >> 7
        out.append(b | 0x80 if v else b)
        if not v:
            return bytes(out)


def series_bomb(raw_bytes: int = 64 * 1024 * 1024) -> bytes:
    """One-letter GAUGE series filling `raw_bytes` (the adversarial run's frame: 9.6 M series)."""
    s = payload_pb2.Series(name="a", kind=payload_pb2.GAUGE).SerializeToString()
    entry = b"\x0a" + _varint(len(s)) + s
    columns = entry * ((raw_bytes - 64) // len(entry))
    return b"\x0a\x03\x0a\x01h\x12" + _varint(len(columns)) + columns


def frame_at(series: int, labels: int) -> tuple[bytes, int]:
    now = int(time.time() * 1000)
    defs = [
        SeriesDef(f"m{i % 50}", GAUGE, "By", tuple((f"k{j:02d}", str(i)) for j in range(labels)))
        for i in range(series)
    ]
    batch = MetricBatch(defs, np.arange(series, dtype=np.uint32), np.full(series, now), np.ones(series))
    return encode_payload(payload_pb2.Resource(host="h", agent_id="a"), batch), now


def cost(raw: bytes, now_ms: int | None) -> dict:
    limits, records = Limits(), RecordLimits()
    t0 = time.process_time()
    try:
        census(raw, limits, records)
    except CensusError as exc:
        return {"census_s": time.process_time() - t0, "refused": str(exc)}
    t1 = time.process_time()
    payload = decode_payload(raw)
    batch = decode_metrics(payload.metrics)
    validate_batch(batch, now_ms, limits)
    RowBuilder().build(batch, payload.resource)
    return {"census_s": t1 - t0, "decode_to_rows_s": time.process_time() - t1}


def main() -> None:
    print(f"series bomb, 64 MiB raw: {cost(series_bomb(), None)}")
    for series, labels in ((20_000, 8), (100_000, 1), (100_000, 4)):
        raw, now = frame_at(series, labels)
        print(f"{series} series x {labels} labels, {len(raw) >> 10} KiB raw: {cost(raw, now)}")


if __name__ == "__main__":
    main()
