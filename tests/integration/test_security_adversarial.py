"""The security flood (issue 17): one real collector serving TLS, requiring client certificates
(mTLS) and checking an auth file takes 10,000 calls with random bearer tokens over valid client
certificates and 1,000 hostile connections on its port (garbage bytes, broken and truncated
ClientHellos, absurd record lengths, handshakes abandoned half way, plaintext HTTP/2 and
HTTP/1.1, missing and foreign client certificates, garbage after a good handshake), while a real
agent with its certificate and token streams a known number of synthetic points.

Every random-token call is UNAUTHENTICATED and counted once as `unknown_token` (nothing else is
counted), nothing of the attack's agent ids is stored, the collector lives, answers and logs no
traceback, the agent's points are stored exactly once over one unbroken stream, the collector's
RSS grows by less than RSS_GROWTH_MB, and the audit trail writes at most its 100 lines a second
while its `not_logged_before` and `not_logged` counts account for every refusal it did not
write.

A second test: a ClientHello's server name reaches the collector's log (grpc's core writes
"No match found for server name: ..."), and must not be able to write a line that reads as one
of the collector's own JSON lines: the collector runs core's stderr through
ferry.runtime.logs.capture_native_stderr, which makes each of its lines a JSON string.

Deterministic per seed (FERRY_ADVERSARY_SEED, default 17). Run with -s for the figures.
"""

from __future__ import annotations

import collections
import json
import os
import random
import secrets
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import grpc.aio
import psutil

from ferry import transport
from ferry.collector.auth.audit import Audit
from ferry.collector.auth.gate import REASONS
from ferry.collector.auth.principals import token_hash
from ferry.collector.auth.tokens import new_token, write_secret
from ferry.collector.devcerts import DevCA
from ferry.collector.devrun import wait_healthy
from ferry.collector.query.client import total
from ferry.transport import ClientTLS, Endpoint
from ferry.v1 import ingest_pb2_grpc, query_pb2, query_pb2_grpc
from tests.adversary import handshakes
from tests.framegen import frame, gauge_batch
from tests.integration.procs import Proc, diagnose, start_agent, start_collector, synthetic_stored, wait_for

SEED = int(os.environ.get("FERRY_ADVERSARY_SEED", "17"))
TOKENS, GARBAGE = 10_000, 1_000
IN_FLIGHT = 16  # threads making the random-token calls, over four shared channels
FRESH_EVERY = 50  # every 50th call on a channel of its own, made with Endpoint(token=...)
GARBAGE_THREADS = 24
TOTAL, RATE = 25_000, 1_000  # the good agent's synthetic points (25 s of streaming)
GOOD = "good-1"
ATTACK_METRIC = "attack.gauge"
# The attack holds at most IN_FLIGHT calls and GARBAGE_THREADS connections at once (a few hundred
# KB of gRPC and TLS state each), and every refusal ends its call: the collector keeps nothing
# per refused token. What grows is the engine holding the agent's data (about 30 MB over this
# run, attack included). 150 MB is well above both, and below what keeping 15 KB for each
# refused call or hostile connection would add up to (11,000 x 15 KB = 161 MB).
RSS_GROWTH_MB = 150
UNKNOWN = "the bearer token is not known"
# garbage that is refused in the handshake (or, after a good one, by HTTP/2): the server ends
# the connection; the other cases stop mid-message or mid-handshake, or may happen to be valid
MUST_END = {"closed", "alert"}
REFUSED_CASES = sorted(set(handshakes.CASES) - handshakes.OPEN_ENDED - {"garbled_hello", "old_versions"})


@dataclass(frozen=True)
class Pki:
    """The CA, certificates, tokens and auth file of the run, made here."""

    dir: Path
    agent_token: str
    reader_token: str

    def p(self, name: str) -> str:
        return str(self.dir / name)

    def collector_flags(self) -> list[str]:
        p = self.p
        return [
            *("--tls-cert", p("collector.pem"), "--tls-key", p("collector.key")),
            *("--tls-client-ca", p("ca.pem"), "--auth", p("auth.toml")),
        ]

    def agent_flags(self) -> list[str]:
        p = self.p
        return [
            *("--tls-ca", p("ca.pem"), "--tls-cert", p("agent.pem"), "--tls-key", p("agent.key")),
            *("--token-file", p("agent.token")),
        ]

    def tls(self, who: str) -> ClientTLS:
        return ClientTLS.from_files(self.p("ca.pem"), self.p(f"{who}.pem"), self.p(f"{who}.key"))

    def reader(self, addr: str) -> Endpoint:
        return Endpoint(addr, tls=self.tls("reader"), token=self.reader_token)

    def files(self) -> handshakes.Files:
        d = self.dir
        return handshakes.Files(
            d / "ca.pem", d / "agent.pem", d / "agent.key", d / "foreign.pem", d / "foreign.key"
        )


def make_pki(d: Path) -> Pki:
    d.mkdir()
    ca = DevCA.create("security flood CA")
    ca.write_ca(d / "ca.pem")
    ca.issue("ferry-collector", ["127.0.0.1", "localhost"]).write(d / "collector")
    for who, cn in (("agent", GOOD), ("intruder", "intruder-1"), ("reader", "reader-1")):
        ca.issue(cn, client=True).write(d / who)
    DevCA.create("another CA").issue(GOOD, client=True).write(d / "foreign")
    pki = Pki(d, new_token(), new_token())
    write_secret(d / "agent.token", pki.agent_token)
    (d / "auth.toml").write_text(
        "[[principals]]\n"
        'name = "good-agents"\n'
        f'token_sha256 = "{token_hash(pki.agent_token).hex()}"\n'
        'cert_subject = "good-*"\n'
        'roles = ["ingest"]\n'
        'agent_ids = ["good-*"]\n'
        'hosts = ["*"]\n\n'
        "[[principals]]\n"
        'name = "reader"\n'
        f'token_sha256 = "{token_hash(pki.reader_token).hex()}"\n'
        'roles = ["query"]\n'
    )
    return pki


_PRINTABLE = "".join(chr(c) for c in range(0x21, 0x7F))  # a header value's characters, no space


def random_tokens(rng: random.Random, known: tuple[str, ...], n: int) -> list[str]:
    """`n` tokens no principal holds: random ones of every shape, and near misses of a real one
    (one character changed, cut, extended, its case flipped, its SHA-256 from the auth file)."""
    real = known[0]
    out = []
    while len(out) < n:
        shape = rng.randrange(8)
        if shape == 0:
            tok = "ferry_" + "".join(rng.choices(_PRINTABLE[15:], k=43))  # a real token's length
        elif shape == 1:
            tok = "".join(rng.choices(_PRINTABLE, k=rng.randint(1, 512)))
        elif shape == 2:
            tok = rng.randbytes(32).hex()
        elif shape == 3:
            i = rng.randrange(len(real))
            tok = real[:i] + rng.choice(_PRINTABLE.replace(real[i], "")) + real[i + 1 :]
        elif shape == 4:
            tok = real[: rng.randrange(1, len(real))]
        elif shape == 5:
            tok = real + "".join(rng.choices(_PRINTABLE, k=rng.randint(1, 8)))
        elif shape == 6:
            tok = real.swapcase()
        else:
            tok = token_hash(real).hex()
        if tok not in known:
            out.append(tok)
    return out


class Flood:
    """The random-token calls: Push of a valid frame (agent ids a principal could write as),
    Query.ListAgents, and a Stream of one frame, each with a token of its own, most on channels
    presenting a valid client certificate (an intruder's, or the good agent's own: a good
    certificate does not stand in for a bad token) without call credentials. Blocking stubs on
    a thread pool."""

    def __init__(self, addr: str, pki: Pki, tokens: list[str]):
        self.addr, self.pki, self.tokens = addr, pki, tokens
        batch = gauge_batch(ATTACK_METRIC, n_series=2, points=3)
        self.frames = {
            i: frame(batch, 1, agent_id=f"good-x{i:05d}") for i in range(len(tokens)) if i % 3 != 1
        }
        self.tls = [pki.tls(who) for who in ("intruder", "agent")]
        self.codes: collections.Counter[str] = collections.Counter()
        self.other_details: list[str] = []
        self.leaked: list[int] = []  # calls whose refusal repeated their token
        self._lock = threading.Lock()

    def run(self) -> None:
        shared = [transport.channel(Endpoint(self.addr, tls=self.tls[k % 2])) for k in range(4)]
        try:
            with ThreadPoolExecutor(IN_FLIGHT) as pool:
                list(pool.map(lambda i: self._one(shared, i), range(len(self.tokens))))
        finally:
            for ch in shared:
                ch.close()

    def _one(self, shared: list[grpc.Channel], i: int) -> None:
        tok = self.tokens[i]
        if i % FRESH_EVERY:
            self._call(shared[i % 4], i, (("authorization", f"Bearer {tok}"),))
            return
        with transport.channel(Endpoint(self.addr, tls=self.tls[i % 2], token=tok)) as ch:
            self._call(ch, i, None)

    def _call(self, ch: grpc.Channel, i: int, metadata) -> None:
        try:
            if i % 3 == 0:
                ingest_pb2_grpc.IngestStub(ch).Push(self.frames[i], metadata=metadata, timeout=60)
            elif i % 3 == 1:
                stub = query_pb2_grpc.QueryStub(ch)
                stub.ListAgents(query_pb2.ListAgentsRequest(), metadata=metadata, timeout=60)
            else:
                stream = ingest_pb2_grpc.IngestStub(ch).Stream
                for _ in stream(iter([self.frames[i]]), metadata=metadata, timeout=60):
                    pass
            answer, details = "answered", ""
        except grpc.RpcError as err:
            answer, details = err.code().name, err.details() or ""
        with self._lock:
            self.codes[answer] += 1
            if details != UNKNOWN:
                self.other_details.append(f"{answer}: {details[:200]}")
            if self.tokens[i] in details:
                self.leaked.append(i)


def hostile_connections(addr: str, files: handshakes.Files) -> collections.Counter[tuple[str, str]]:
    """GARBAGE connections, the cases in turn, each with its own seeded randomness."""
    host, port = addr.rsplit(":", 1)
    names = sorted(handshakes.CASES)

    def one(i: int) -> tuple[str, str]:
        name = names[i % len(names)]
        try:
            return name, handshakes.CASES[name](random.Random(f"{SEED}/{i}"), (host, int(port)), files)
        except OSError as exc:  # ssl.SSLError and timeouts included: the tally says which
            return name, f"error {type(exc).__name__}"

    with ThreadPoolExecutor(GARBAGE_THREADS) as pool:
        return collections.Counter(pool.map(one, range(GARBAGE)))


class PeakRss(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.proc, self.peak, self.done = psutil.Process(pid), 0, threading.Event()
        self.start()

    def run(self) -> None:
        while not self.done.wait(0.1):
            self.peak = max(self.peak, self.proc.memory_info().rss)


def audit_trail(log_text: str) -> list[dict]:
    out = []
    for line in log_text.splitlines():
        if line.startswith("{"):
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if "audit" in doc:
                out.append(doc["audit"])
    return out


def agent_figures(agent: Proc) -> dict[str, float]:
    got = agent.scrape()
    wanted = ("ferry_agent_acks_total{", "ferry_agent_reconnects_total")
    return {k: v for k, v in got.items() if k.startswith(wanted)}


def acked(agent: Proc) -> float:
    return agent.scrape().get('ferry_agent_acks_total{status="OK"}', 0.0)


@dataclass
class Seen:
    """What the attack left behind, read before the processes stop."""

    flood: Flood
    garbage: collections.Counter
    started: float  # time.monotonic() (the collector's clock too) when the attack began
    ended: float
    acked_during: float  # the good agent's OK acks while it lasted
    baseline_rss: int
    peak_rss: int
    stored: tuple[float, float]
    agent: dict[str, float]
    queued: float
    agents: list[str]
    attack_points: float
    counters: dict[str, float]


def attack(collector: Proc, agent: Proc, pki: Pki, tokens: list[str]) -> Seen:
    """The flood and the hostile connections at once while the agent streams; one more refusal
    in a later second (its audit line carries the count of those not written); then the agent
    drained and the collector asked what it holds."""
    reader = pki.reader(collector.addr)
    wait_for(lambda: acked(agent) >= 2, what="the good agent's first acks")
    baseline = psutil.Process(collector.popen.pid).memory_info().rss
    rss = PeakRss(collector.popen.pid)
    acked_before = acked(agent)
    flood = Flood(collector.addr, pki, tokens)
    garbage: collections.Counter = collections.Counter()
    hostile = threading.Thread(
        target=lambda: garbage.update(hostile_connections(collector.addr, pki.files()))
    )
    started = time.monotonic()
    hostile.start()
    flood.run()
    hostile.join()
    ended = time.monotonic()
    acked_during = acked(agent) - acked_before
    assert collector.popen.poll() is None, "the collector died"
    time.sleep(1.1)
    probe = Flood(collector.addr, pki, [secrets.token_urlsafe(32)])
    probe.run()
    assert probe.codes == {"UNAUTHENTICATED": 1}
    wait_for(lambda: synthetic_stored(reader)[0] >= TOTAL, timeout=120, what="the good agent's points")
    wait_for(lambda: agent.scrape()["ferry_agent_spool_frames"] == 0, timeout=60, what="spool empty")
    rss.done.set()
    rss.join()
    wait_healthy(Endpoint(collector.addr, tls=pki.tls("reader")), timeout_s=10)
    with transport.channel(reader) as ch:
        agents = query_pb2_grpc.QueryStub(ch).ListAgents(query_pb2.ListAgentsRequest(), timeout=30)
    return Seen(
        flood, garbage, started, ended, acked_during, baseline, rss.peak, synthetic_stored(reader),
        agent_figures(agent), agent.scrape()["ferry_agent_frames_queued_total"],
        [a.agent_id for a in agents.agents], total(reader, ATTACK_METRIC), collector.scrape(),
    )  # fmt: skip


def test_random_tokens_and_hostile_handshakes_leave_the_good_agent_alone(tmp_path):
    pki = make_pki(tmp_path / "pki")
    tokens = random_tokens(random.Random(SEED), (pki.agent_token, pki.reader_token), TOKENS)
    collector = start_collector(tmp_path, *pki.collector_flags(), tls=pki.tls("reader"))
    agent = None
    try:
        with diagnose(collector):
            agent = start_agent(
                tmp_path, collector.addr, *pki.agent_flags(), "--synthetic", f"{RATE}:{TOTAL}",
                "--batch-max-age", "200ms", agent_id=GOOD,
            )  # fmt: skip
        with diagnose(collector, agent):
            seen = attack(collector, agent, pki, tokens)
    finally:
        if agent is not None:
            agent.stop()
        collector_rc = collector.stop()
    with diagnose(collector, agent):
        check(seen, collector.output(), collector_rc)


def check(seen: Seen, text: str, collector_rc: int) -> None:
    flood, garbage = seen.flood, seen.garbage
    trail = audit_trail(text)
    refused = [a for a in trail if a.get("event") == "refused"]
    # counted in the next refusal written, or (a flood that ended) in the next second's not_logged line
    not_logged = sum(a.get("not_logged_before", 0) for a in trail)
    not_logged += sum(a["count"] for a in trail if a.get("event") == "not_logged")
    seconds = int(seen.ended) - int(seen.started) + 1  # the collector's monotonic seconds it spanned
    core_lines = [line for line in text.splitlines() if '"logger":"grpc.core"' in line]
    assert all(line.startswith("{") for line in text.splitlines())  # core's lines too, as JSON
    growth_mb = (seen.peak_rss - seen.baseline_rss) / 2**20
    print(
        f"\nseed {SEED}: {TOKENS:,} random tokens {dict(flood.codes)} and {GARBAGE:,} hostile "
        f"connections in {seen.ended - seen.started:.1f} s; the agent acked {seen.acked_during:.0f} "
        f"frames meanwhile; audit lines {len(refused):,} written + {not_logged:,} not logged; grpc "
        f"core lines {len(core_lines):,}; collector RSS {seen.baseline_rss / 2**20:.0f} MB at the "
        f"start, peak +{growth_mb:.1f} MB"
    )
    for (name, outcome), n in sorted(garbage.items()):
        print(f"  {name:32} {outcome:16} {n}")

    # every random token refused as unknown, its token never repeated, nothing else counted
    assert dict(flood.codes) == {"UNAUTHENTICATED": TOKENS}
    assert flood.other_details == [] and flood.leaked == []
    counted = {r: seen.counters[f'ferry_collector_auth_failures_total{{reason="{r}"}}'] for r in REASONS}
    assert counted == {r: (TOKENS + 1 if r == "unknown_token" else 0) for r in REASONS}
    # nothing of the attack stored; only the good agent known
    assert seen.attack_points == 0
    assert seen.agents == [GOOD]
    # the hostile connections: refused ones ended by the server, none found the port closed
    for (name, outcome), n in garbage.items():
        assert not outcome.startswith("error"), (name, outcome, n)
        if name in REFUSED_CASES:
            assert outcome in MUST_END, (name, outcome, n)
    assert sum(garbage.values()) == GARBAGE
    # the good agent: streaming throughout, on one stream, every point stored once
    assert seen.acked_during > 0
    assert seen.stored == (TOTAL, TOTAL)
    assert seen.agent == {
        'ferry_agent_acks_total{status="OK"}': seen.queued,
        "ferry_agent_reconnects_total": 0,
    }
    # the collector: alive to the end, no traceback, stopped cleanly, memory bounded
    assert collector_rc == 0
    assert '"exc"' not in text and "Traceback" not in text
    assert growth_mb < RSS_GROWTH_MB
    # the audit trail: every refusal written or counted in a later line, at most max_per_s a second
    assert {a["reason"] for a in refused} == {"unknown_token"}
    assert len(refused) + not_logged == TOKENS + 1
    assert len(refused) <= Audit().max_per_s * seconds + 1  # + the probe's line
    # grpc's own lines are not rate-limited: one (or two) per failed handshake, no more
    assert len(core_lines) <= 2 * GARBAGE


FORGED = {
    "level": "warning",
    "logger": "ferry.collector.audit",
    "msg": "audit forged",
    "audit": {"event": "x"},
}


def test_a_client_hello_cannot_write_a_line_into_the_collector_log(tmp_path):
    pki = make_pki(tmp_path / "pki")
    collector = start_collector(tmp_path, *pki.collector_flags(), tls=pki.tls("reader"))
    forged = json.dumps(FORGED, separators=(",", ":"))
    try:
        host, port = collector.addr.rsplit(":", 1)
        hello = handshakes.hello_with_server_name(f"\n{forged}\n".encode())
        # the server answers with its flight: it has read the server name by then
        assert handshakes._send_and_wait((host, int(port)), hello) == "answered"
    finally:
        assert collector.stop() == 0
    assert forged not in collector.output().splitlines()


def test_a_handshake_left_half_done_is_closed_at_the_handshake_timeout(tmp_path):
    """gRPC holds a connection whose handshake never finishes for 120 s by default (3,000 half-sent
    ClientHellos held 3,073 descriptors): the collector's handshake_timeout closes it. With 1 s,
    a half-sent hello and a silent connection are closed by the server well within 15 s."""
    pki = make_pki(tmp_path / "pki")
    collector = start_collector(
        tmp_path, *pki.collector_flags(), "--handshake-timeout", "1s", tls=pki.tls("reader")
    )
    try:
        host, port = collector.addr.rsplit(":", 1)
        hello = handshakes.client_hello(random.Random(1))
        ends = []
        for data in (hello[: len(hello) // 2], b""):
            with socket.create_connection((host, int(port)), timeout=15) as sock:
                sock.sendall(data)
                try:
                    ends.append(sock.recv(65536))  # b"" once the server closes it
                except ConnectionResetError:
                    ends.append(b"")
        assert ends == [b"", b""]
    finally:
        assert collector.stop() == 0
