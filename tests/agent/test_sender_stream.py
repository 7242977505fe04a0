"""The sender's side of the stream encoding against a real gRPC server: it encodes when the
collector says yes, sends spooled frames as they are when it says no, and after a stream ended
with "stream encoding state lost" sends that frame self-contained, then encodes afresh."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np

from ferry import transport
from ferry.agent.sender import Sender
from ferry.agent.spool import Spool
from ferry.collector.auth.gate import drain
from ferry.limits import Limits, RecordLimits
from ferry.series import GAUGE, SeriesDef
from ferry.v1 import ingest_pb2, ingest_pb2_grpc, payload_pb2
from ferry.wire import stream as stream_wire
from ferry.wire.codec import decode_metrics, decode_payload, encode_payload
from ferry.wire.columns import MetricBatch
from ferry.wire.frames import FrameLimits, open_frame
from ferry.wire.streamdec import StreamDecoder

SERIES = [SeriesDef("m", GAUGE, "1", (("i", str(i)),)) for i in range(5)]


def payload(step: int) -> bytes:
    batch = MetricBatch(
        SERIES,
        np.arange(5, dtype=np.uint32),
        np.full(5, 1_700_000_000_000 + step * 1000, dtype=np.int64),
        np.arange(5, dtype=np.float64) + step * 0.25,
    )
    return encode_payload(payload_pb2.Resource(host="h", agent_id="a1"), batch)


class Collector(ingest_pb2_grpc.IngestServicer):
    """Answers the encoding with `answer`; ends the first stream with STATE_LOST at `lose_seq`
    (unanswered); records (stream number, seq, encoding, values) of every frame it reads."""

    def __init__(self, answer, lose_seq: int = 0):
        self.answer, self.lose_seq = answer, lose_seq
        self.seen: list[tuple[int, int, str, list[float]]] = []
        self.streams = 0

    async def Stream(self, frames, context):
        self.streams += 1
        number = self.streams
        await context.send_initial_metadata(self.answer)
        decoder = StreamDecoder(
            stream_wire.Bounds(), Limits(), RecordLimits(), lambda s, i: None, lambda *a: None, 64 << 20
        )
        async for f in frames:
            if f.encoding == ingest_pb2.STREAM_ZSTD:
                values = decoder.decode(f).batch.value.tolist()
            else:
                values = decode_metrics(decode_payload(open_frame(f, FrameLimits())).metrics).value.tolist()
            self.seen.append((number, f.seq, ingest_pb2.Encoding.Name(f.encoding), values))
            if number == 1 and f.seq == self.lose_seq:  # as the collector does: in-flight frames first
                await drain(frames)
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, f"{stream_wire.STATE_LOST} at frame 1:{f.seq}"
                )
            yield ingest_pb2.Ack(seq=f.seq, epoch=f.epoch, status=ingest_pb2.OK)


def deliver(tmp_path, servicer: Collector, frames: int = 4) -> Spool:
    spool = Spool(tmp_path / "spool", "a1")
    for step in range(frames):
        spool.append(payload(step), 5)

    async def main() -> None:
        server = transport.server()
        ingest_pb2_grpc.add_IngestServicer_to_server(servicer, server)
        port = transport.bind(server, "127.0.0.1:0")
        await server.start()
        sender = Sender(spool, [f"127.0.0.1:{port}"], backoff_base_s=0.01, backoff_cap_s=0.05)
        stop = asyncio.Event()
        task = asyncio.create_task(sender.run(stop))
        for _ in range(500):
            if len(spool) == 0:
                break
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.wait_for(task, 10)
        await server.stop(0)

    asyncio.run(main())
    return spool


def expected(step: int) -> list[float]:
    return [i + step * 0.25 for i in range(5)]


def test_encodes_when_the_collector_says_yes(tmp_path):
    servicer = Collector(stream_wire.Bounds().metadata())
    spool = deliver(tmp_path, servicer)
    assert len(spool) == 0
    assert [(s, e) for _, s, e, _ in servicer.seen] == [(i + 1, "STREAM_ZSTD") for i in range(4)]
    assert [v for *_, v in servicer.seen] == [expected(i) for i in range(4)]


def test_sends_frames_as_they_are_when_the_collector_says_no(tmp_path):
    servicer = Collector(stream_wire.DECLINED)
    deliver(tmp_path, servicer)
    assert [(s, e) for _, s, e, _ in servicer.seen] == [(i + 1, "LZ4_FRAME") for i in range(4)]


def test_a_frame_the_state_lost_goes_self_contained_on_the_next_stream(tmp_path):
    servicer = Collector(stream_wire.Bounds().metadata(), lose_seq=2)
    spool = deliver(tmp_path, servicer)
    assert len(spool) == 0
    got = [(n, s, e) for n, s, e, _ in servicer.seen]
    assert got[:2] == [(1, 1, "STREAM_ZSTD"), (1, 2, "STREAM_ZSTD")]
    # the next stream: frame 2 self-contained, then the encoding from nothing (frame 3 defines all)
    assert got[2:] == [(2, 2, "LZ4_FRAME"), (2, 3, "STREAM_ZSTD"), (2, 4, "STREAM_ZSTD")]
    assert [v for *_, v in servicer.seen[2:]] == [expected(1), expected(2), expected(3)]
