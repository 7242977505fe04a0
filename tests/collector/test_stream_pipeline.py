"""The collector's pipeline on stream-encoded frames: a frame's insert block names only the
metrics its own points use (not every name its stream defined), and series ids come from the
stream's per-series cache, equal to what a self-contained frame gets."""

from __future__ import annotations

import numpy as np

from ferry.collector.commit import GroupCommitter, Stream
from ferry.collector.marks import Marks
from ferry.collector.pipeline import FramePipeline
from ferry.series import GAUGE, SeriesDef
from ferry.v1 import payload_pb2
from ferry.wire.codec import encode_payload
from ferry.wire.columns import MetricBatch
from ferry.wire.frames import pack_frame
from ferry.wire.stream import Bounds
from ferry.wire.streamenc import StreamEncoder

RESOURCE = payload_pb2.Resource(host="h1", agent_id="a1", labels={"dc": "x"})


def frame(seq: int, names: list[str], now_ms: int):
    series = [SeriesDef(n, GAUGE, "1", (("k", n),)) for n in names]
    n = len(series)
    batch = MetricBatch(
        series, np.arange(n, dtype=np.uint32), np.full(n, now_ms), np.arange(n, dtype=np.float64)
    )
    return pack_frame("a1", 3, seq, encode_payload(RESOURCE, batch), n)


def test_blocks_name_their_own_metrics_and_ids_match_self_contained_frames():
    import time

    now = int(time.time() * 1000)
    pipe = FramePipeline(GroupCommitter(lambda group: None, Marks(), inline=True))
    stream = Stream()
    stream.decoder = pipe.stream_decoder()
    encoder = StreamEncoder(Bounds())
    many = [f"m.{i:03d}" for i in range(200)]
    first = pipe._prepare(encoder.encode(frame(1, many, now)), "", None, None, stream)
    assert first.points == 200
    later = frame(2, ["m.150", "m.007"], now + 1000)
    second = pipe._prepare(encoder.encode(later), "", None, None, stream)
    names = second.blocks["samples"].column("name")
    assert sorted(names.chunk(0).dictionary.to_pylist()) == ["m.007", "m.150"]
    assert names.to_pylist() == ["m.150", "m.007"]
    plain = FramePipeline(GroupCommitter(lambda group: None, Marks(), inline=True))._prepare(
        later, "", None, None, None
    )
    assert (
        second.blocks["samples"].column("series_id").to_pylist()
        == plain.blocks["samples"].column("series_id").to_pylist()
    )
    assert sorted(r.series_id for r in second.series.rows()) == sorted(
        r.series_id for r in plain.series.rows()
    )
