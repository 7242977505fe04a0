"""The adversarial run (issue 15): a real collector takes more than 20,000 malformed frames of
every class docs/bad-input.md lists and 5,000 hostile queries, while a real agent beside it
delivers a known number of synthetic points and an app's hostile requests hit that agent's
Local service. Every answer must be one the docs allow for its class (the allowed sets are in
tests/adversary/), no process may crash or log a traceback, every synthetic point must be stored
exactly once, and the collector's peak RSS stays bounded.

Deterministic per seed (FERRY_ADVERSARY_SEED, default 15; printed on failure). Bounded by counts
and by a time limit; nothing here measures time. Run with -s for the counts per class.
"""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import grpc
import pytest

from ferry import transport
from ferry.collector.devrun import free_port
from ferry.v1 import ingest_pb2
from tests.adversary.frames import FrameCase, Frames, dedup_stream, expensive
from tests.adversary.local import LocalRequests
from tests.adversary.queries import RESPONSES, Queries
from tests.adversary.verdicts import BUSY, CA, RE, UN, Tally, of_ack, of_error
from tests.integration.procs import diagnose, start_agent, start_collector, synthetic_stored, wait_for

SEED = int(os.environ.get("FERRY_ADVERSARY_SEED", "15"))
FRAMES, QUERIES, LOCAL = 20_000, 5_000, 1_000  # at least this many of each
TOTAL, RATE = 30_000, 1_000  # the good agent's synthetic points, and their rate
STREAM_LEN = 400  # cheap frames per flood stream
HOARDERS, PER_PEER = 20, 16  # streams opened at once from [::1], and the per-peer cap
IDLE_S = 3
TIME_LIMIT_S = 240  # the attack stops here whatever the counts (the counts then fail it)
MAX_HWM_KB = 1_500 * 1024
GOOD = "good-agent"


def _raw_stream(ch: grpc.Channel):
    return ch.stream_stream(
        "/ferry.v1.Ingest/Stream", request_serializer=None, response_deserializer=ingest_pb2.Ack.FromString
    )


def _raw_push(ch: grpc.Channel):
    return ch.unary_unary(
        "/ferry.v1.Ingest/Push", request_serializer=None, response_deserializer=ingest_pb2.Ack.FromString
    )


class Run:
    """The attack's shared state: the tally, the stop time, and the frames answered so far."""

    def __init__(self, tally: Tally, addr: str):
        self.tally, self.addr = tally, addr
        self.stop_at = time.monotonic() + TIME_LIMIT_S
        self.errors: list[str] = []  # an attacker thread that failed itself
        self.took: list[str] = []  # each attacker thread's wall time, for the report

    def going(self, prefix: str, target: int) -> bool:
        return time.monotonic() < self.stop_at and self.tally.total(prefix) < target

    def thread(self, fn, *args) -> threading.Thread:
        def body():
            started = time.monotonic()
            try:
                fn(*args)
                self.took.append(f"{fn.__name__} {time.monotonic() - started:.0f} s")
            except BaseException as exc:  # reported by the test
                self.errors.append(f"{fn.__name__}: {exc!r}")

        t = threading.Thread(target=body, daemon=True)
        t.start()
        return t


def _send_stream(run: Run, ch: grpc.Channel, cases: list[FrameCase]) -> None:
    """One Stream of `cases`; each answered frame is tallied (an error ends the stream at the
    first frame not acked, which is the one it answers)."""
    acks: list[ingest_pb2.Ack] = []
    try:
        for ack in _raw_stream(ch)(iter([c.data for c in cases]), timeout=120):
            acks.append(ack)
    except grpc.RpcError as err:
        if len(acks) < len(cases):
            case = cases[len(acks)]
            run.tally.record("frame:" + case.klass, of_error(err), case.allowed, case.what)
        else:
            run.tally.record("frame:stream end", of_error(err), (), "after every frame was acked")
    for case, ack in zip(cases, acks, strict=False):
        run.tally.record("frame:" + case.klass, of_ack(ack), case.allowed, case.what)


def _flood_streams(run: Run, seed: int, good: tuple[str, int]) -> None:
    rng = random.Random(seed)
    frames = Frames(rng, good)
    with transport.channel(run.addr) as ch:
        while run.going("frame:", FRAMES):
            cases = []
            while len(cases) < STREAM_LEN:
                case = frames.cheap()
                if not case.ends_stream:
                    cases.append(case)
            if rng.random() < 0.5:  # ended by a message that is not a Frame (or a truncated one)
                cases.append(
                    frames.not_a_frame()
                    if rng.random() < 0.5
                    else frames._truncated_protobuf("truncated protobuf")
                )
            _send_stream(run, ch, cases)


def _flood_push(run: Run, seed: int, good: tuple[str, int]) -> None:
    rng = random.Random(seed)
    frames = Frames(rng, good)
    with transport.channel(run.addr) as ch:
        push = _raw_push(ch)
        while run.going("frame:", FRAMES):
            case = frames.not_a_frame() if rng.random() < 0.15 else frames.cheap()
            try:
                answer = of_ack(push(case.data, timeout=60))
            except grpc.RpcError as err:
                answer = of_error(err)
            run.tally.record("frame:" + case.klass, answer, case.allowed, case.what)


def _expensive(run: Run, seed: int) -> None:
    endpoint = transport.Endpoint(run.addr, max_send_bytes=64 << 20)
    with transport.channel(endpoint) as ch:
        push = _raw_push(ch)
        for case in expensive(random.Random(seed)):
            try:
                answer = of_ack(push(case.data, timeout=120))
            except grpc.RpcError as err:
                answer = of_error(err)
            run.tally.record("frame:" + case.klass, answer, case.allowed, case.what)


def _dedup(run: Run, seed: int) -> None:
    """Valid frames resent and out of order, on streams of an epoch each, the three at once
    (each epoch has marks of its own): OK past the epoch's mark (kept from the answers),
    DUPLICATE at or below it."""
    rng = random.Random(seed)
    # all drawn first, in the order the streams one after another drew them: the same frames
    streams = [
        list(dedup_stream(rng, "adv-dedup", rng.getrandbits(63) + epoch, 300)) for epoch in range(1, 4)
    ]
    with transport.channel(run.addr) as ch:
        # run.thread: a failure in one is reported in run.errors, as any attacker's
        for t in [run.thread(_dedup_epoch, run, ch, sent) for sent in streams]:
            t.join()


def _dedup_epoch(run: Run, ch: grpc.Channel, sent: list[tuple[int, bytes]]) -> None:
    acks = []
    try:
        acks = list(_raw_stream(ch)(iter([d for _, d in sent]), timeout=120))
    except grpc.RpcError as err:
        run.tally.record("frame:duplicate seq", of_error(err), BUSY, "stream ended")
    mark = 0
    for (seq, _), ack in zip(sent, acks, strict=False):
        expected = "DUPLICATE" if seq <= mark else "OK"
        ok = run.tally.record("frame:duplicate seq", of_ack(ack), ((expected, r""), *BUSY), f"seq {seq}")
        if ok and expected == "OK":
            mark = seq


def _hoard(run: Run, port: int, seed: int, release: threading.Event) -> None:
    """HOARDERS streams from [::1] at once (another peer than the agent on 127.0.0.1), each
    sending one bad frame and then nothing: past the per-peer cap they are refused when they
    open, the others are ended by the idle timeout."""
    frames = Frames(random.Random(seed))
    results: list[tuple[int, object]] = []

    def one(i: int) -> None:
        case = frames._seq_0("seq 0")

        def messages():
            yield case.data
            release.wait(60)

        with transport.channel(f"[::1]:{port}") as ch:
            try:
                results.append((i, list(_raw_stream(ch)(messages(), timeout=90))))
            except grpc.RpcError as err:
                results.append((i, err))

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(HOARDERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(100)
    opened = (
        (RE, rf"streams open from \[::1\] = {PER_PEER} allowed per peer"),
        (UN, rf"no frame for {IDLE_S} s \(stream_idle_timeout\)"),
    )
    for _, r in results:
        if isinstance(r, grpc.RpcError):
            run.tally.record("stream:hoarded or idle", of_error(r), opened, "a held stream")
        else:
            run.tally.record("stream:hoarded or idle", ("OK", ""), (), f"stream ended normally after {r}")


def _queries(run: Run, seed: int) -> None:
    rng = random.Random(seed)
    queries = Queries(rng)
    endpoint = transport.Endpoint(run.addr, max_receive_bytes=64 << 20)
    with transport.channel(endpoint) as ch:
        calls = {
            m: ch.unary_unary(
                f"/ferry.v1.Query/{m}", request_serializer=None, response_deserializer=r.FromString
            )
            for m, r in RESPONSES.items()
        }
        while run.going("query:", QUERIES):
            case = queries.next()
            future = calls[case.method].future(case.request, timeout=case.timeout)
            if case.cancel_after is not None:
                time.sleep(case.cancel_after)
                future.cancel()
            try:
                resp = future.result()
                wrong = case.ok_check(resp) if case.ok_check else None
                answer = ("OK", wrong or "")
                allowed = case.allowed if wrong is None else ()
            except grpc.FutureCancelledError:
                answer, allowed = (CA, "cancelled by the client"), case.allowed
            except grpc.RpcError as err:
                answer, allowed = of_error(err), case.allowed
            run.tally.record("query:" + case.klass, answer, allowed, f"{case.method} {case.what}")


def _local(run: Run, addr: str, seed: int) -> None:
    rng = random.Random(seed)
    local = LocalRequests(rng)
    busy = ((RE, r"records waiting"),)
    with transport.channel(addr) as ch:
        send = ch.unary_unary("/ferry.v1.Local/Send", request_serializer=None, response_deserializer=None)
        stream = ch.stream_unary(
            "/ferry.v1.Local/SendStream", request_serializer=None, response_deserializer=None
        )
        while run.going("local:", LOCAL):
            case = local.next()
            try:
                if rng.random() < 0.5:
                    send(case.request, timeout=30)
                else:
                    stream(iter([case.request]), timeout=30)
                answer = ("OK", "")
            except grpc.RpcError as err:
                answer = of_error(err)
            run.tally.record("local:" + case.klass, answer, case.allowed + busy, case.what)


def _hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise KeyError("VmHWM")


def _good_epoch(spool: Path) -> int:
    """The good agent's epoch, from its synthetic source's progress record (`epoch seq produced`)."""
    record = spool / "synthetic"
    wait_for(lambda: record.exists() and record.read_text().split(), what="the agent's first frame spooled")
    return int(record.read_text().split()[0])


@pytest.fixture
def cluster(tmp_path):
    port = free_port()
    collector = start_collector(
        tmp_path,
        "--listen",
        f"[::]:{port}",  # both ::1 and 127.0.0.1 as peers: not loopback-only, so --insecure
        "--insecure",
        "--max-streams-per-peer",
        str(PER_PEER),
        "--stream-idle-timeout",
        f"{IDLE_S}s",
        port=port,
    )
    local = f"127.0.0.1:{free_port()}"
    agent = None
    try:
        agent = start_agent(
            tmp_path,
            collector.addr,
            "--synthetic",
            f"{RATE}:{TOTAL}",
            "--batch-max-age",
            "200ms",
            "--local-listen",
            local,
            agent_id=GOOD,
        )
        yield collector, agent, port, local, tmp_path / f"spool-{GOOD}"
    finally:
        if agent is not None:
            agent.stop()
        collector.stop()


def test_adversarial_run(cluster):
    collector, agent, port, local, spool = cluster
    tally = Tally(SEED)
    with diagnose(collector, agent):
        good = (GOOD, _good_epoch(spool))
        run = Run(tally, collector.addr)
        started = time.monotonic()
        release = threading.Event()
        rng = random.Random(SEED)
        seeds = [rng.getrandbits(32) for _ in range(16)]
        threads = [
            run.thread(_flood_streams, run, seeds[0], good),
            run.thread(_flood_streams, run, seeds[1], good),
            run.thread(_flood_streams, run, seeds[2], good),
            run.thread(_flood_push, run, seeds[3], good),
            run.thread(_flood_push, run, seeds[4], good),
            run.thread(_expensive, run, seeds[5]),
            run.thread(_dedup, run, seeds[6]),
            run.thread(_hoard, run, port, seeds[7], release),
            *(run.thread(_queries, run, seeds[8 + i]) for i in range(4)),
            run.thread(_local, run, local, seeds[12]),
        ]
        for t in threads:
            t.join(TIME_LIMIT_S + 60)
        release.set()
        attack_s = time.monotonic() - started
        acked_during = agent.scrape().get('ferry_agent_acks_total{status="OK"}', 0)

        # the good agent: every synthetic point stored exactly once
        wait_for(
            lambda: synthetic_stored(collector.addr)[0] >= TOTAL,
            timeout=120,
            interval=1,
            what=f"{TOTAL} synthetic points stored",
        )
        count, value_sum = synthetic_stored(collector.addr)
        hwm_mb = _hwm_kb(collector.popen.pid) / 1024
        agent_metrics = agent.scrape()
        print(
            f"\nadversarial run (seed {SEED}): attack {attack_s:.1f} s; good agent acked {acked_during:.0f} "
            f"frames meanwhile; synthetic stored {count:.0f} / {TOTAL} (sum {value_sum:.0f}); "
            f"collector VmHWM {hwm_mb:.0f} MB\n"
            f"attackers: {', '.join(run.took)}\n"
            f"frames {tally.total('frame:')}:\n{tally.report('frame:')}\n"
            f"streams {tally.total('stream:')}:\n{tally.report('stream:')}\n"
            f"queries {tally.total('query:')}:\n{tally.report('query:')}\n"
            f"local {tally.total('local:')}:\n{tally.report('local:')}"
        )
        assert not run.errors, run.errors
        assert tally.bad_count == 0, tally.failures()
        assert tally.total("frame:") >= FRAMES, f"seed {SEED}: only {tally.total('frame:')} frames answered"
        assert tally.total("query:") >= QUERIES, f"seed {SEED}: only {tally.total('query:')} queries answered"
        assert tally.total("local:") >= LOCAL
        classes = {*Frames.CHEAP, "not a Frame", "series bomb", "oversized payload", "duplicate seq"}
        assert {f"frame:{k}" for k in classes} <= set(tally.by_class("frame:")), tally.by_class("frame:")
        assert {f"query:{k}" for k in Queries.CLASSES} <= set(tally.by_class("query:"))
        refused_hoarders = tally.counts[("stream:hoarded or idle", RE)]
        assert (
            refused_hoarders >= HOARDERS - PER_PEER - 1 and tally.counts[("stream:hoarded or idle", UN)] >= 1
        )
        assert (count, value_sum) == (TOTAL, TOTAL), f"seed {SEED}: stored {count} points summing {value_sum}"
        assert agent_metrics.get("ferry_agent_frames_rejected_total", 0) == 0
        assert hwm_mb * 1024 < MAX_HWM_KB, f"collector peak RSS {hwm_mb:.0f} MB"
        for proc in (collector, agent):
            assert proc.popen.poll() is None, f"{proc.log.name} exited with {proc.popen.returncode}"
            assert "Traceback" not in proc.output(), f"a traceback in {proc.log.name}"
