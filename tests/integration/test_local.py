"""The agent's Local service: records from apps (and `ferry send`) through a real agent to a real
collector, over loopback TCP and a unix socket; bad records refused while others keep flowing."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import grpc
import pytest

from ferry import transport
from ferry.collector.query.client import query_range
from ferry.series import DELTA, GAUGE
from ferry.v1 import local_pb2, local_pb2_grpc
from tests.conftest import free_port
from tests.integration.procs import collector_and_agent, ferry_cli, wait_for


@pytest.fixture
def stack(tmp_path):
    sock_dir = Path(tempfile.mkdtemp(prefix="ferry-"))  # unix socket paths must stay under 108 bytes
    socket_path = sock_dir / "agent.sock"
    tcp = f"127.0.0.1:{free_port()}"
    extra = (
        "--collectors",
        "",
        "--batch-max-age",
        "1s",
        "--local-listen",
        tcp,
        "--local-socket",
        str(socket_path),
    )
    with collector_and_agent(tmp_path, *extra) as (collector, agent):
        yield collector, agent, tcp, f"unix:{socket_path}"
    assert not socket_path.exists()  # removed at shutdown
    sock_dir.rmdir()


def by_label(addr: str, metric: str, label: str, agg: str) -> dict[str, float]:
    resp = query_range(addr, metric, agg=agg, window_ms=300_000, by=[label], timeout=10)
    return {s.labels[label]: s.value[-1] for s in resp.series}


def record(name: str, value: float, kind: int = GAUGE, **labels: str) -> local_pb2.MetricRecord:
    return local_pb2.MetricRecord(name=name, kind=kind, value=value, labels=labels)


def test_ferry_send_over_tcp_and_the_unix_socket(stack):
    collector, _agent, tcp, unix = stack
    for target, room, value in ((tcp, "a", "21.5"), (unix, "b", "22.25")):
        done = ferry_cli("send", "app.temperature", value, "--label", f"room={room}", "--agent", target)
        assert (done.returncode, done.stdout) == (0, "accepted 1\n"), done.stderr
    got = wait_for(lambda: len(r := by_label(collector.addr, "app.temperature", "room", "last")) == 2 and r)
    assert got == {"a": 21.5, "b": 22.25}
    bad = ferry_cli("send", "app.temperature", "1", "--label", "room", "--agent", tcp)
    assert bad.returncode == 2 and "--label 'room' is not K=V" in bad.stderr


def test_delta_increments_are_summed_exactly(stack):
    collector, agent, tcp, unix = stack
    with transport.channel(unix) as channel:
        stub = local_pb2_grpc.LocalStub(channel)
        requests = (
            local_pb2.Records(
                metrics=[record("app.requests", 1.0, DELTA, route=f"/r{i % 10}") for i in range(500)]
            )
            for _ in range(20)
        )
        assert stub.SendStream(requests, timeout=30).accepted == 10_000
    with transport.channel(tcp) as channel:
        assert (
            local_pb2_grpc.LocalStub(channel)
            .Send(local_pb2.Records(metrics=[record("app.requests", 0.5, DELTA, route="/r0")]), timeout=10)
            .accepted
            == 1
        )
    sums = wait_for(
        lambda: (
            (r := by_label(collector.addr, "app.requests", "route", "sum"))
            and sum(r.values()) == 10_000.5
            and r
        ),
        what="all increments stored",
    )
    assert sums == {f"/r{i}": 1000.0 + (0.5 if i == 0 else 0.0) for i in range(10)}
    assert agent.scrape()["ferry_agent_local_records_total"] == 10_001


@pytest.mark.parametrize(
    "records,code,message",
    [
        ([record("", 1.0)], "INVALID_ARGUMENT", "metric record 0: name is empty"),
        (
            [record("ok", 1.0), record("many.labels", 1.0, **{f"k{i}": "v" for i in range(10_000)})],
            "INVALID_ARGUMENT",
            "metric record 1 ('many.labels'): 10000 labels > 32 allowed",
        ),
        (
            [record("big.label", 1.0, blob="x" * (1 << 20))],
            "INVALID_ARGUMENT",
            "label value 1048576 bytes > 256",
        ),
        ([record("nan", math.nan)], "INVALID_ARGUMENT", "value nan is not finite"),
        ([record("inf", math.inf, DELTA)], "INVALID_ARGUMENT", "value inf is not finite"),
        ([record("n", 1.0)] * 10_001, "RESOURCE_EXHAUSTED", "10001 records in one request > 10000 allowed"),
    ],
)
def test_bad_records_are_refused_and_others_keep_flowing(stack, records, code, message):
    collector, agent, tcp, _unix = stack
    with transport.channel(tcp) as channel:
        stub = local_pb2_grpc.LocalStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.Send(local_pb2.Records(metrics=records), timeout=10)
        assert err.value.code().name == code
        assert message in err.value.details()
        assert stub.Send(local_pb2.Records(metrics=[record("app.after", 7.0)]), timeout=10).accepted == 1
    assert wait_for(lambda: by_label(collector.addr, "app.after", "host", "last")) != {}
    assert agent.scrape()[f'ferry_agent_local_rejected_total{{code="{code}"}}'] == 1
    assert by_label(collector.addr, "ok", "host", "count") == {}  # nothing of a refused request


def test_a_stream_keeps_the_messages_before_a_refused_one(stack):
    collector, _agent, tcp, _unix = stack
    good = [local_pb2.Records(metrics=[record("app.streamed", float(i), part=str(i))]) for i in range(2)]
    bad = local_pb2.Records(metrics=[record("app.streamed", math.nan, part="2")])
    with transport.channel(tcp) as channel, pytest.raises(grpc.RpcError) as err:
        local_pb2_grpc.LocalStub(channel).SendStream(iter([*good, bad]), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "not finite" in err.value.details()
    got = wait_for(lambda: len(r := by_label(collector.addr, "app.streamed", "part", "last")) == 2 and r)
    assert got == {"0": 0.0, "1": 1.0}
