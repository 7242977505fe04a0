"""Malformed frames by class, each with the answers docs/bad-input.md allows for it.

`Frames(rng)` builds its templates once (payloads with one flaw each, lz4 headers that lie) and
then hands out cases cheaply: a case is the bytes sent (a serialized Frame, or bytes that are
not one), its class, and what may come back. The expensive classes (series bombs, frames over
the size caps) are built by `expensive()`, a handful each, for Push.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import lz4.frame
import numpy as np

from ferry.v1 import ingest_pb2, payload_pb2
from ferry.wire.frames import (
    DEFAULT_MAX_FRAME_BYTES,
    DEFAULT_MAX_RAW_BYTES,
    pack_frame,
    receive_limit,
)
from tests.adversary.verdicts import BUSY, IA, RE, Allowed
from tests.framegen import varint

MiB = 1024 * 1024
GAUGE, COUNTER, DELTA, HISTOGRAM = (
    payload_pb2.GAUGE,
    payload_pb2.COUNTER,
    payload_pb2.DELTA,
    payload_pb2.HISTOGRAM,
)
NOT_A_FRAME: Allowed = ((IA, r"is not a Frame"),)
ANY_INVALID: Allowed = ((IA, r"."),)


@dataclass(frozen=True)
class FrameCase:
    klass: str
    data: bytes  # what goes on the wire: a serialized Frame, or bytes that are not one
    allowed: Allowed
    ends_stream: bool = False  # not a Frame: the stream ends with its status
    what: str = ""  # the flaw, for a failure message


def _now_ms() -> int:
    return int(time.time() * 1000)


def series(name: str = "adv.gauge", kind: int = GAUGE, unit: str = "1", labels=(("k", "v"),), bounds=()):
    return payload_pb2.Series(
        name=name,
        kind=kind,
        unit=unit,
        label_keys=[k for k, _ in labels],
        label_values=[v for _, v in labels],
        bounds=list(bounds),
    )


def payload(
    table: list[payload_pb2.Series] | None = None,
    refs: list[int] | None = None,
    times: list[int] | None = None,
    values: list[float] | None = None,
    host: str = "adv-host",
    agent_id: str = "",
    agent_version: str = "",
    bucket_counts: list[int] = (),
    point_count: int | None = None,
    events=(),
    logs=(),
) -> payload_pb2.Payload:
    """A payload of explicit columns (times absolute here, delta-encoded on the wire)."""
    table = [series()] if table is None else table
    refs = [0] if refs is None else refs
    times = [_now_ms() - 1000] * len(refs) if times is None else times
    values = [1.0] * len(refs) if values is None else values
    t = np.array(times, dtype=np.int64)
    deltas = np.diff(t, prepend=np.int64(0)) if len(t) else t
    return payload_pb2.Payload(
        resource=payload_pb2.Resource(host=host, agent_id=agent_id, agent_version=agent_version),
        metrics=payload_pb2.MetricColumns(
            series=table,
            point_count=len(refs) if point_count is None else point_count,
            series_ref=np.array(refs, dtype="<u4").tobytes(),
            time_ms=deltas.astype("<i8").tobytes(),
            value=np.array(values, dtype="<f8").tobytes(),
            bucket_counts=np.array(bucket_counts, dtype="<u8").tobytes(),
        ),
        events=list(events),
        logs=list(logs),
    )


def _poison() -> list[tuple[str, payload_pb2.Payload, str]]:
    """(flaw, payload with that one flaw, regex of the message naming it)."""
    now = _now_ms()
    long_value, huge = "v" * 300, "x" * MiB
    out = [
        ("NaN", payload(values=[math.nan]), r"non-finite value nan"),
        ("+Inf", payload(values=[math.inf]), r"non-finite value inf"),
        ("-Inf", payload(values=[-math.inf]), r"non-finite value -inf"),
        (
            "inf sum of a histogram",
            payload(
                [series("adv.h", HISTOGRAM, bounds=(1.0, 2.0))], values=[math.inf], bucket_counts=[1, 1, 1]
            ),
            r"non-finite value inf",
        ),
        ("16 days old", payload(times=[now - 16 * 86_400_000]), r"outside the accepted window"),
        ("an hour ahead", payload(times=[now + 3_600_000]), r"outside the accepted window"),
        ("time in ns", payload(times=[now * 1_000_000]), r"outside the accepted window"),
        ("negative time", payload(times=[-1]), r"outside the accepted window"),
        ("unit 65 B", payload([series(unit="u" * 65)]), r"unit is 65 bytes > 64 allowed"),
        ("unit 1 MiB", payload([series(unit=huge)]), rf"unit is {MiB} bytes > 64 allowed"),
        (
            "agent_version 129 B",
            payload(agent_version="v" * 129),
            r"agent_version is 129 bytes > 128 allowed",
        ),
        ("agent_version 1 MiB", payload(agent_version=huge), rf"agent_version is {MiB} bytes > 128 allowed"),
        (
            "label value 300 B",
            payload([series(labels=(("path", long_value),))]),
            r"label value 300 bytes > 256",
        ),
        ("label value 1 MiB", payload([series(labels=(("path", huge),))]), rf"label value {MiB} bytes > 256"),
        (
            "33 labels",
            payload([series(labels=[(f"k{i}", "v") for i in range(33)])]),
            r"33 labels > 32 allowed",
        ),
        (
            "label key twice",
            payload([series(labels=(("k", "a"), ("k", "b")))]),
            r"label key 'k' appears twice",
        ),
        ("label key 101 chars", payload([series(labels=(("k" * 101, "v"),))]), r"101 chars > 100 allowed"),
        (
            "label keys != values",
            payload(
                [payload_pb2.Series(name="adv.g", kind=GAUGE, label_keys=["a", "b"], label_values=["1"])]
            ),
            r"2 label keys != 1 values",
        ),
        (
            "resource label value 300 B",
            payload_pb2.Payload(resource=payload_pb2.Resource(host="h", labels={"env": long_value})),
            r"label value 300 bytes > 256",
        ),
        ("host 300 B", payload(host=long_value), r"label value 300 bytes > 256"),
        ("empty host", payload(host=""), r"resource.host is empty"),
        ("name 201 chars", payload([series(name="n" * 201)]), r"201 chars > 200 allowed"),
        ("empty name", payload([series(name="")]), r"is empty"),
        ("kind 0", payload([series(kind=0)]), r"unknown kind 0"),
        ("kind 9", payload([series(kind=9)]), r"unknown kind 9"),
        (
            "bounds descending",
            payload([series("adv.h", HISTOGRAM, bounds=(2.0, 1.0))], bucket_counts=[1, 1, 1]),
            r"bucket bounds must be finite and strictly ascending",
        ),
        (
            "NaN bound",
            payload([series("adv.h", HISTOGRAM, bounds=(1.0, math.nan))], bucket_counts=[1, 1, 1]),
            r"bucket bounds must be finite and strictly ascending",
        ),
        (
            "257 bounds",
            payload(
                [series("adv.h", HISTOGRAM, bounds=[float(i) for i in range(257)])], bucket_counts=[0] * 258
            ),
            r"257 bucket bounds > 256 allowed",
        ),
        ("bounds on a gauge", payload([series(bounds=(1.0,))]), r"bucket bounds given for a non-histogram"),
        (
            "bucket counts short",
            payload([series("adv.h", HISTOGRAM, bounds=(1.0,))], bucket_counts=[1]),
            r"bucket_counts: 1 values != 2",
        ),
        ("series_ref out of range", payload(refs=[7]), r"series_ref 7 out of range"),
        ("point_count lies", payload(point_count=5), r"values != point_count 5"),
        (
            "event type empty",
            payload([], [], [], [], events=[payload_pb2.Event(time_unix_ns=time.time_ns(), type="")]),
            r"event 0: type is empty",
        ),
        (
            "event label 300 B",
            payload(
                [],
                [],
                [],
                [],
                events=[payload_pb2.Event(time_unix_ns=time.time_ns(), type="t", label=long_value)],
            ),
            r"event 0: label is 300 bytes > 256 allowed",
        ),
        (
            "event 65 properties",
            payload(
                [],
                [],
                [],
                [],
                events=[
                    payload_pb2.Event(
                        time_unix_ns=time.time_ns(), type="t", properties={f"p{i}": "v" for i in range(65)}
                    )
                ],
            ),
            r"event 0: 65 properties > 64 allowed",
        ),
        (
            "event NaN value",
            payload(
                [],
                [],
                [],
                [],
                events=[
                    payload_pb2.Event(time_unix_ns=time.time_ns(), type="t", value=math.nan, has_value=True)
                ],
            ),
            r"event 0: value nan is not finite",
        ),
        (
            "event a year old",
            payload(
                [],
                [],
                [],
                [],
                events=[payload_pb2.Event(time_unix_ns=time.time_ns() - 365 * 86_400 * 10**9, type="t")],
            ),
            r"event 0: time \d+ ns is outside the accepted window",
        ),
        (
            "log level empty",
            payload(
                [],
                [],
                [],
                [],
                logs=[payload_pb2.LogRecord(time_unix_ns=time.time_ns(), level="", message="m")],
            ),
            r"log 0: level is empty",
        ),
        (
            "log message 65537 B",
            payload(
                [],
                [],
                [],
                [],
                logs=[payload_pb2.LogRecord(time_unix_ns=time.time_ns(), level="info", message="m" * 65_537)],
            ),
            r"log 0: message is 65537 bytes > 65536 allowed",
        ),
        (
            "log trace_id 65 chars",
            payload(
                [],
                [],
                [],
                [],
                logs=[payload_pb2.LogRecord(time_unix_ns=time.time_ns(), level="info", trace_id="t" * 65)],
            ),
            r"log 0: trace_id is 65 chars > 64 allowed",
        ),
    ]
    for bad in ("1abc", "a b", "x'; DROP TABLE ferry.samples; --", "ünïcode", "a{b}", "a\x00b", "$(reboot)"):
        out.append((f"name {bad!r}", payload([series(name=bad)]), r"does not match"))
    for bad in ("a-b", "1x", "k=v", "x'--", "é", "a:b"):
        out.append((f"label key {bad!r}", payload([series(labels=((bad, "v"),))]), r"does not match"))
    return out


def _huge_text() -> list[tuple[str, payload_pb2.Payload, str]]:
    """Units and agent versions of 40 MiB (an lz4 frame of ~160 KB), for Push."""
    big = 40 * MiB
    return [
        ("unit 40 MiB", payload([series(unit="u" * big)]), rf"unit is {big} bytes > 64 allowed"),
        ("agent_version 40 MiB", payload(agent_version="v" * big), rf"agent_version is {big} bytes > 128"),
    ]


class Frames:
    """Cheap malformed frames, class by class; `good_agent` (its id and epoch, once known) is
    borrowed by the foreign-agent class for frames that must be refused without moving its marks."""

    CHEAP = (
        "poison record",
        "oversized raw_size",
        "lying sizes",
        "bit-flipped lz4",
        "bad encoding",
        "seq 0",
        "foreign agent id",
        "truncated protobuf",
    )

    def __init__(self, rng, good_agent: tuple[str, int] | None = None):
        self.rng = rng
        self.good_agent = good_agent
        self._seq = itertools.count(1)
        self.poison = [
            (flaw, pack_frame("adv-poison", 1, 1, p.SerializeToString(), p.metrics.point_count), rx)
            for flaw, p, rx in _poison()
        ]
        good = payload(refs=[0, 0], times=[_now_ms() - 2000, _now_ms() - 1000], values=[1.0, 2.0])
        self.good_raw = payload(
            [series("adv.flip", labels=(("i", str(i)),)) for i in range(20)],
            refs=list(range(20)) * 5,
            values=list(range(100)),
        ).SerializeToString()
        self.good_payload = good.SerializeToString()
        big_header = lz4.frame.compress(bytes(DEFAULT_MAX_RAW_BYTES + 1024), store_size=True)
        self.big_lz4_header = big_header[:15]  # magic, flags, content size, header checksum
        self.no_size_lz4 = lz4.frame.compress(self.good_payload, store_size=False)
        self.good_lz4 = lz4.frame.compress(self.good_payload, store_size=True, content_checksum=True)
        self.flip_lz4 = lz4.frame.compress(self.good_raw, store_size=True, content_checksum=True)
        self.lz4_60mib_header = lz4.frame.compress(bytes(60 * MiB), store_size=True)[:15]
        self.epoch = rng.getrandbits(64)

    def frame(self, f: ingest_pb2.Frame, klass: str, allowed: Allowed, what: str) -> FrameCase:
        f.seq = f.seq or next(self._seq)
        return FrameCase(klass, f.SerializeToString(), allowed, what=what)

    def _named(self, agent_id: str = "adv-cheap") -> dict:
        return {"agent_id": agent_id, "epoch": self.epoch, "seq": next(self._seq)}

    def cheap(self) -> FrameCase:
        klass = self.rng.choice(self.CHEAP)
        return getattr(self, "_" + klass.replace(" ", "_").replace("-", "_"))(klass)

    def _poison_record(self, klass: str) -> FrameCase:
        flaw, template, rx = self.rng.choice(self.poison)
        f = ingest_pb2.Frame()
        f.CopyFrom(template)
        f.epoch, f.seq = self.epoch, next(self._seq)
        return FrameCase(klass, f.SerializeToString(), ((IA, rx), *BUSY), what=flaw)

    def _oversized_raw_size(self, klass: str) -> FrameCase:
        cap = DEFAULT_MAX_RAW_BYTES
        if self.rng.random() < 0.5:
            raw = self.rng.randrange(cap + 1, 2**32)
            f = ingest_pb2.Frame(
                **self._named(),
                encoding=ingest_pb2.LZ4_FRAME,
                raw_size=raw,
                payload=self.big_lz4_header + bytes(self.rng.randrange(40)),
            )
            return FrameCase(
                klass,
                f.SerializeToString(),
                ((IA, rf"raw_size {raw} bytes > {cap} allowed"),),
                what="raw_size over the cap",
            )
        # raw_size small, but the lz4 header declares more than the cap
        f = ingest_pb2.Frame(
            **self._named(),
            encoding=ingest_pb2.LZ4_FRAME,
            raw_size=100,
            payload=self.big_lz4_header + bytes(32),
        )
        return FrameCase(
            klass,
            f.SerializeToString(),
            ((IA, rf"lz4 frame declares {cap + 1024} bytes > {cap}"),),
            what="lz4 header over the cap",
        )

    def _lying_sizes(self, klass: str) -> FrameCase:
        body = self.good_lz4
        n = len(self.good_payload)
        choice = self.rng.randrange(6)
        if choice == 0:
            f = ingest_pb2.Frame(
                **self._named(), encoding=ingest_pb2.LZ4_FRAME, raw_size=2**32 - 1, payload=body
            )
            rx, what = rf"raw_size {2**32 - 1} bytes > {DEFAULT_MAX_RAW_BYTES} allowed", "raw_size 2^32-1"
        elif choice == 1:
            lie = self.rng.choice([0, 1, n - 1, n + 1, 10 * n, DEFAULT_MAX_RAW_BYTES])
            f = ingest_pb2.Frame(**self._named(), encoding=ingest_pb2.LZ4_FRAME, raw_size=lie, payload=body)
            rx, what = (
                (r"declares \d+ bytes but frame raw_size is|does not declare"),
                f"raw_size {lie} != {n}",
            )
        elif choice == 2:
            lie = self.rng.choice([0, n - 1, n + 1, 2**31])
            f = ingest_pb2.Frame(
                **self._named(), encoding=ingest_pb2.NONE, raw_size=lie, payload=self.good_payload
            )
            rx, what = r"!= payload size \d+ for encoding NONE|raw_size \d+ bytes >", f"NONE raw_size {lie}"
        elif choice == 3:
            # a header declaring 60 MiB in front of a 40-byte body: more than lz4 can expand
            declared, header = 60 * MiB, self.lz4_60mib_header
            f = ingest_pb2.Frame(
                **self._named(), encoding=ingest_pb2.LZ4_FRAME, raw_size=declared, payload=header + bytes(40)
            )
            rx, what = r"cannot hold the \d+ bytes it declares", "lz4 ratio"
        elif choice == 4:
            f = ingest_pb2.Frame(
                **self._named(), encoding=ingest_pb2.LZ4_FRAME, raw_size=n, payload=self.no_size_lz4
            )
            rx, what = r"does not declare its content size", "lz4 without content size"
        else:
            f = ingest_pb2.Frame(
                **self._named(),
                encoding=ingest_pb2.LZ4_FRAME,
                raw_size=n,
                payload=body,
                point_count=self.rng.choice([0, 3, 2**32 - 1]),
            )
            rx, what = r"point_count \d+ != 2 points", "point_count lies"
            if f.point_count == 2:
                rx = r"^$"
        return FrameCase(klass, f.SerializeToString(), ((IA, rx), *BUSY), what=what)

    def _bit_flipped_lz4(self, klass: str) -> FrameCase:
        body = bytearray(self.flip_lz4)
        for _ in range(self.rng.randrange(1, 4)):
            pos = self.rng.randrange(4, len(body))  # past the magic number
            body[pos] ^= 1 << self.rng.randrange(8)
        try:
            same = lz4.frame.decompress(bytes(body)) == self.good_raw
        except RuntimeError:
            same = False
        f = ingest_pb2.Frame(
            agent_id="adv-flip",
            epoch=self.epoch,
            seq=next(self._seq),
            encoding=ingest_pb2.LZ4_FRAME,
            raw_size=len(self.good_raw),
            payload=bytes(body),
            point_count=100,
        )
        # a flip lz4 does not read (a few don't-care bits) leaves the frame as it was: stored
        allowed = ((IA, r"."), *BUSY, *((("OK", r"^$"),) if same else ()))
        return FrameCase(klass, f.SerializeToString(), allowed, what=f"flipped, content same={same}")

    def _bad_encoding(self, klass: str) -> FrameCase:
        body = self.good_lz4
        choice = self.rng.randrange(4)
        if choice == 0:
            enc = self.rng.choice([2, 3, 7, 255, 2**31 - 1, -1, -(2**31)])
            f = ingest_pb2.Frame(**self._named(), encoding=enc, raw_size=len(self.good_payload), payload=body)
            # 2 is STREAM_ZSTD: taken only on a stream that negotiated it, which these do not
            rx = (
                "a STREAM_ZSTD frame is taken only on an Ingest.Stream"
                if enc == 2
                else f"unknown frame encoding {enc}"
            )
            return FrameCase(klass, f.SerializeToString(), ((IA, rx),), what=f"encoding {enc}")
        if choice == 1:  # lz4 bytes called NONE
            f = ingest_pb2.Frame(**self._named(), encoding=ingest_pb2.NONE, raw_size=len(body), payload=body)
            return FrameCase(
                klass,
                f.SerializeToString(),
                ((IA, r"is not a ferry.v1.Payload"), *BUSY),
                what="lz4 called NONE",
            )
        if choice == 2:  # a Payload called LZ4_FRAME
            f = ingest_pb2.Frame(
                **self._named(),
                encoding=ingest_pb2.LZ4_FRAME,
                raw_size=len(self.good_payload),
                payload=self.good_payload,
            )
            return FrameCase(
                klass, f.SerializeToString(), ((IA, r"is not an lz4 frame"),), what="NONE called lz4"
            )
        junk = self.rng.randbytes(self.rng.randrange(0, 200))
        f = ingest_pb2.Frame(**self._named(), encoding=ingest_pb2.NONE, raw_size=len(junk), payload=junk)
        # junk may parse as a payload (an empty one is valid; it then lacks a host)
        return FrameCase(klass, f.SerializeToString(), ((IA, r"."), *BUSY), what="junk payload")

    def _seq_0(self, klass: str) -> FrameCase:
        body = self.good_lz4
        f = ingest_pb2.Frame(
            agent_id="adv-seq",
            epoch=self.rng.choice([self.epoch, 0, 2**64 - 1]),
            seq=0,
            encoding=ingest_pb2.LZ4_FRAME,
            raw_size=len(self.good_payload),
            payload=body,
            point_count=2,
        )
        return FrameCase(klass, f.SerializeToString(), ((IA, r"seq 0 is not valid"),), what="seq 0")

    def _foreign_agent_id(self, klass: str) -> FrameCase:
        choice = self.rng.randrange(3)
        if choice == 0 or (choice == 2 and self.good_agent is None):
            bad = self.rng.choice(
                [
                    "",
                    " ",
                    "-x",
                    "a b",
                    "x" * 129,
                    "ünï",
                    "a/b",
                    "a'; DROP TABLE ferry.agents",
                    "\x00",
                    "a" * 100_000,
                    "good\nagent",
                ]
            )
            f = ingest_pb2.Frame(
                agent_id=bad,
                epoch=self.epoch,
                seq=next(self._seq),
                encoding=ingest_pb2.NONE,
                raw_size=len(self.good_payload),
                payload=self.good_payload,
                point_count=2,
            )
            return FrameCase(
                klass,
                f.SerializeToString(),
                ((IA, r"agent_id .* does not match"),),
                what=f"agent_id {bad[:20]!r}",
            )
        if choice == 1:  # the payload names another agent than the frame
            p = payload(agent_id=self.rng.choice(["someone-else", "it-agent", "good-agent", "x" * 100_000]))
            raw = p.SerializeToString()
            f = pack_frame("adv-foreign", self.epoch, next(self._seq), raw, 1)
            return FrameCase(
                klass,
                f.SerializeToString(),
                ((IA, r"resource.agent_id .* != frame agent_id"), *BUSY),
                what="resource.agent_id differs",
            )
        # the good agent's own name and epoch, at seqs ahead of it, with a poisoned payload: refused,
        # and its high-water mark must not move (else its next frames would be DUPLICATE, lost)
        agent_id, epoch = self.good_agent
        flaw, template, rx = self.rng.choice(self.poison)
        f = ingest_pb2.Frame()
        f.CopyFrom(template)
        f.agent_id, f.epoch, f.seq = (
            agent_id,
            epoch,
            self.rng.choice([10**6, 2**63, 2**64 - 100]) + self.rng.randrange(99),
        )
        return FrameCase(klass, f.SerializeToString(), ((IA, rx), *BUSY), what=f"as the good agent: {flaw}")

    def _truncated_protobuf(self, klass: str) -> FrameCase:
        body = self.good_lz4
        f = ingest_pb2.Frame(
            agent_id="adv-trunc",
            epoch=self.epoch,
            seq=next(self._seq),
            encoding=ingest_pb2.LZ4_FRAME,
            raw_size=len(self.good_payload),
            payload=body,
            point_count=2,
        )
        data = f.SerializeToString()
        cut = data[: self.rng.randrange(1, len(data))]
        # cut at a field's end, the rest parses as a smaller Frame (and then lacks a size or points)
        return FrameCase(klass, cut, ((IA, r"."),), ends_stream=True, what=f"{len(cut)} of {len(data)} bytes")

    def not_a_frame(self) -> FrameCase:
        """Bytes that are not a Frame: a field running past the end, a bad tag, random bytes."""
        choice = self.rng.randrange(4)
        if choice == 0:
            data = b"\x0a" + varint(self.rng.randrange(10, 2**31)) + self.rng.randbytes(self.rng.randrange(8))
            return FrameCase("not a Frame", data, NOT_A_FRAME, ends_stream=True, what="length past the end")
        if choice == 1:
            data = bytes([self.rng.choice([0x00, 0x07, 0x0F, 0xFF])]) + self.rng.randbytes(
                self.rng.randrange(16)
            )
            return FrameCase("not a Frame", data, NOT_A_FRAME, ends_stream=True, what="bad tag")
        if choice == 2:
            data = b"\x10" + b"\xff" * self.rng.randrange(11, 20)  # an overlong varint
            return FrameCase("not a Frame", data, NOT_A_FRAME, ends_stream=True, what="overlong varint")
        data = self.rng.randbytes(self.rng.randrange(1, 512))  # may even parse as a (bad) Frame
        return FrameCase("not a Frame", data, ANY_INVALID, ends_stream=True, what="random bytes")


def dedup_stream(rng, agent_id: str, epoch: int, n: int) -> Iterator[tuple[int, bytes]]:
    """(seq, bytes) of valid one-point frames with duplicate and out-of-order seqs: each seq is
    new, a resend, or one behind the newest. The answer is OK for a seq past the epoch's mark and
    DUPLICATE at or below it (the caller keeps the mark from the answers)."""
    top = 0
    for _ in range(n):
        r = rng.random()
        seq = top + 1 if r < 0.3 or top == 0 else (top if r < 0.6 else rng.randrange(1, top + 1))
        top = max(top, seq)
        p = payload(
            [series("adv.dedup", labels=(("epoch", str(epoch % 1000)),))],
            times=[_now_ms() - 1000],
            values=[float(seq)],
        )
        yield seq, pack_frame(agent_id, epoch, seq, p.SerializeToString(), 1).SerializeToString()


def _series_bomb(agent_id: str, seq: int) -> ingest_pb2.Frame:
    """~9.6 M one-letter GAUGE series in 64 MiB raw, ~276 KB of lz4."""
    entry = payload_pb2.Series(name="a", kind=GAUGE).SerializeToString()
    entry = b"\x0a" + varint(len(entry)) + entry
    head = payload_pb2.Payload(resource=payload_pb2.Resource(host="h")).SerializeToString()
    n = (DEFAULT_MAX_RAW_BYTES - len(head) - 16) // len(entry)
    columns = entry * n
    return pack_frame(agent_id, 7, seq, head + b"\x12" + varint(len(columns)) + columns, 0)


def _records_bomb(agent_id: str, seq: int) -> ingest_pb2.Frame:
    """150,000 empty events: more records than a frame may hold."""
    raw = (
        payload_pb2.Payload(resource=payload_pb2.Resource(host="h")).SerializeToString()
        + b"\x1a\x00" * 150_000
    )
    return pack_frame(agent_id, 7, seq, raw, 0)


def _label_key_bomb(agent_id: str, seq: int) -> ingest_pb2.Frame:
    """One series with 500,000 label keys."""
    s = payload_pb2.Series(name="a", kind=GAUGE).SerializeToString() + b"\x22\x01k" * 500_000
    columns = b"\x0a" + varint(len(s)) + s
    raw = payload_pb2.Payload(resource=payload_pb2.Resource(host="h")).SerializeToString()
    return pack_frame(agent_id, 7, seq, raw + b"\x12" + varint(len(columns)) + columns, 0)


def _fields_bomb(agent_id: str, seq: int) -> ingest_pb2.Frame:
    """3,000,000 point_count fields in the metric columns: more protobuf fields than allowed."""
    m = b"\x10\x01" * 3_000_000
    raw = payload_pb2.Payload(resource=payload_pb2.Resource(host="h")).SerializeToString()
    return pack_frame(agent_id, 7, seq, raw + b"\x12" + varint(len(m)) + m, 0)


def expensive(rng) -> list[FrameCase]:
    """The costly classes, a handful each: bombs, 40 MiB texts, payloads over the caps."""
    out: list[FrameCase] = []
    seq = itertools.count(1)
    bombs = [
        ("series bomb", _series_bomb, r"more than 100000 series in one frame \(100000 allowed\)", 4),
        ("series bomb", _records_bomb, r"more than 100000 records", 2),
        ("series bomb", _label_key_bomb, r"more than 400000 series label keys", 2),
        ("series bomb", _fields_bomb, r"more than 2000000 protobuf fields", 2),
    ]
    for klass, build, rx, n in bombs:
        for _ in range(n):
            f = build("adv-bomb", next(seq))
            out.append(FrameCase(klass, f.SerializeToString(), ((IA, rx), *BUSY), what=build.__name__))
    for flaw, p, rx in _huge_text():
        raw = p.SerializeToString()
        for _ in range(2):
            f = pack_frame("adv-text", 8, next(seq), raw, 1)
            out.append(FrameCase("poison record", f.SerializeToString(), ((IA, rx), *BUSY), what=flaw))
    cap = DEFAULT_MAX_FRAME_BYTES
    for extra in (1, 4096, 512 * 1024, 900 * 1024):  # over max_frame_bytes, under the receive limit
        body = rng.randbytes(cap + extra)
        f = ingest_pb2.Frame(
            agent_id="adv-big",
            epoch=9,
            seq=next(seq),
            encoding=ingest_pb2.NONE,
            raw_size=len(body),
            payload=body,
        )
        out.append(
            FrameCase(
                "oversized payload",
                f.SerializeToString(),
                ((IA, rf"frame payload {cap + extra} bytes > {cap} allowed"),),
                what="over max_frame_bytes",
            )
        )
    for size in (receive_limit() + 1, receive_limit() + 3 * MiB):  # over gRPC's receive limit
        f = ingest_pb2.Frame(
            agent_id="adv-big",
            epoch=9,
            seq=next(seq),
            encoding=ingest_pb2.NONE,
            raw_size=size,
            payload=bytes(size),
        )
        out.append(
            FrameCase(
                "oversized payload",
                f.SerializeToString(),
                ((RE, r"Received message larger than max"),),
                what="over the receive limit",
            )
        )
    rng.shuffle(out)
    return out
