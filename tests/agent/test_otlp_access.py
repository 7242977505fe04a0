"""Who may reach the OTLP receiver: the loopback rule and the Local service's token, on a real
in-process server; what a reload does with `otlp_listen`; and that an export the client was told
failed (its deadline, a cancel, a shutdown) hands nothing to the pipeline."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2 as mp

from ferry import transport
from ferry.agent.config import AgentConfig
from ferry.agent.otlp import server as otlp_server
from ferry.agent.otlp.config import OtlpEndpoint
from ferry.agent.otlp.server import OtlpService
from ferry.agent.reload import split
from ferry.agent.wiring import Agent
from ferry.collector.devrun import free_port
from ferry.runtime.config import ConfigError, parse_command_line
from tests.agent.test_otlp_logs import body, request
from tests.agent.test_otlp_metrics import NOW_NS, number
from tests.agent.test_otlp_metrics import request as metrics_request


def load(tmp_path: Path, *flags: str) -> AgentConfig:
    path = tmp_path / "agent.toml"
    path.write_text(f'spool = "{tmp_path / "spool"}"\n')
    return parse_command_line(AgentConfig, ["--config", str(path), *flags], "ferry-agent", "").load()


def test_the_default_is_the_otlp_port_on_loopback_and_other_hosts_need_insecure(tmp_path):
    assert load(tmp_path).otlp_listen == "127.0.0.1:4317"
    assert load(tmp_path, "--otlp-listen", "").otlp_listen == ""
    with pytest.raises(ConfigError) as err:
        load(tmp_path, "--otlp-listen", "0.0.0.0:4317")
    assert "otlp_listen '0.0.0.0:4317' is not a loopback address" in str(err.value)
    assert load(tmp_path, "--otlp-listen", "0.0.0.0:4317", "--insecure").otlp_listen == "0.0.0.0:4317"


def test_a_reload_that_changes_otlp_listen_waits_for_a_restart(tmp_path):
    old, new = load(tmp_path), load(tmp_path, "--otlp-listen", "127.0.0.1:4318")
    assert split(old, new) == ([], ["otlp_listen"])


def test_the_local_token_guards_otlp_too_and_its_reload_applies_to_both(tmp_path):
    token_file = tmp_path / "local.token"
    token_file.write_text("first-token")
    listen = f"127.0.0.1:{free_port()}"
    cfg = load(tmp_path, "--otlp-listen", listen, "--local-token-file", str(token_file))
    agent = Agent(cfg, collectors=[])  # built as the agent builds it, its submit replaced
    taken: list[int] = []
    endpoint = agent.services["otlp"]
    assert isinstance(endpoint, OtlpEndpoint) and endpoint.tokens is agent.services["local"].tokens
    endpoint.service.submit = lambda intake: taken.append(len(intake))
    good = request(logs_pb2.LogRecord(time_unix_nano=NOW_NS, severity_text="info", body=body("hello")))

    async def run() -> None:
        await endpoint.start()
        try:
            async with transport.aio_channel(listen) as channel:
                stub = logs_service_pb2_grpc.LogsServiceStub(channel)

                async def code(token: str | None) -> str:
                    md = (("authorization", f"Bearer {token}"),) if token else None
                    try:
                        await stub.Export(good, metadata=md, timeout=5)
                    except grpc.aio.AioRpcError as exc:
                        return exc.code().name
                    return "OK"

                assert await code(None) == "UNAUTHENTICATED"
                assert await code("second-token") == "UNAUTHENTICATED"
                assert await code("first-token") == "OK"
                assert taken == [1]
                token_file.write_text("second-token")
                await agent.services["local"].apply(cfg)  # what SIGHUP does
                assert await code("first-token") == "UNAUTHENTICATED"
                assert await code("second-token") == "OK"
                garbage = channel.unary_unary("/opentelemetry.proto.collector.logs.v1.LogsService/Export")
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await garbage(
                        b"\xff\xff", metadata=(("authorization", "Bearer second-token"),), timeout=5
                    )
                assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        finally:
            await endpoint.stop()

    try:
        asyncio.run(run())
    finally:
        agent.pipeline.shutdown()
        agent.spool.close()


def test_while_the_pipeline_is_behind_exports_are_answered_unavailable(tmp_path):
    waiting = [0]
    taken: list[int] = []
    service = OtlpService(lambda intake: taken.append(len(intake)), lambda: waiting[0], max_pending=100)
    listen = f"127.0.0.1:{free_port()}"
    good = request(logs_pb2.LogRecord(time_unix_nano=NOW_NS, severity_text="info", body=body("hello")))

    async def run() -> None:
        server = await otlp_server.start(service, listen)
        try:
            async with transport.aio_channel(listen) as channel:
                stub = logs_service_pb2_grpc.LogsServiceStub(channel)
                waiting[0] = 101
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.Export(good, timeout=5)
                assert err.value.code() == grpc.StatusCode.UNAVAILABLE
                assert err.value.details() == (
                    "the agent has 101 records (0 bytes) waiting > 100 (16777216 bytes); retry later"
                )
                assert taken == []
                waiting[0] = 100
                await stub.Export(good, timeout=5)
                assert taken == [1]
        finally:
            await otlp_server.stop(server, service)

    asyncio.run(run())


class Gated:
    """Holds the receiver's thread at the start of each request until `gate` is set, so that
    the RPC can die (deadline, cancel, shutdown) while its request is being mapped."""

    def __init__(self, service: OtlpService):
        self.entered, self.gate, self.finished = threading.Event(), threading.Event(), threading.Event()
        self._work = service.metrics
        service.metrics = self
        self.rpc_task: asyncio.Task | None = None
        off_the_loop = service.off_the_loop

        async def recording(*args):
            self.rpc_task = asyncio.current_task()
            return await off_the_loop(*args)

        service.off_the_loop = recording

    def __call__(self, request, hand_over):
        self.entered.set()
        assert self.gate.wait(10)
        try:
            return self._work(request, hand_over)
        finally:
            self.finished.set()

    async def release_when_the_server_knows(self) -> None:
        """The RPC's end reaches the server after the client has its error: wait for grpc to
        cancel the RPC's task there, then let the request be mapped and handed over."""
        for _ in range(500):
            if self.rpc_task is not None and self.rpc_task.done():
                break
            await asyncio.sleep(0.01)
        assert self.rpc_task is not None and self.rpc_task.done()  # grpc ended it (cancelled)
        self.gate.set()

    async def until_done(self) -> None:
        assert await asyncio.get_running_loop().run_in_executor(None, self.finished.wait, 10)
        await asyncio.sleep(0.2)  # whatever the worker queued on the event loop runs now


def gauges(n: int):
    points = [number(float(i), (("i", str(i)),)) for i in range(n)]
    return metrics_request(mp.Metric(name="g", gauge=mp.Gauge(data_points=points)))


def run_receiver(test, **kw) -> list[int]:
    """`test(stub, service, server, taken)` against a real receiver, `taken` the sizes of the
    Intakes handed to the pipeline; returns them once the receiver stopped."""
    taken: list[int] = []
    service = OtlpService(lambda intake: taken.append(len(intake)), lambda: 0, **kw)
    listen = f"127.0.0.1:{free_port()}"

    async def run() -> None:
        server = await otlp_server.start(service, listen)
        try:
            async with transport.aio_channel(listen) as channel:
                await test(metrics_service_pb2_grpc.MetricsServiceStub(channel), service, server, taken)
        finally:
            await otlp_server.stop(server, service)

    asyncio.run(run())
    return taken


def test_an_export_past_its_deadline_hands_nothing_over():
    async def test(stub, service, _server, _taken):
        gated = Gated(service)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Export(gauges(25_000), timeout=0.3)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # the exporter sends it again
        await gated.release_when_the_server_knows()
        await gated.until_done()

    assert run_receiver(test) == []


def test_a_cancelled_export_hands_nothing_over():
    async def test(stub, service, _server, _taken):
        gated = Gated(service)
        call = stub.Export(gauges(3), timeout=10)
        assert await asyncio.get_running_loop().run_in_executor(None, gated.entered.wait, 10)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await gated.release_when_the_server_knows()
        await gated.until_done()

    assert run_receiver(test) == []


def test_an_export_cut_off_by_shutdown_hands_nothing_over():
    async def test(stub, service, server, _taken):
        gated = Gated(service)
        call = stub.Export(gauges(3), timeout=10)
        assert await asyncio.get_running_loop().run_in_executor(None, gated.entered.wait, 10)
        stopping = asyncio.create_task(otlp_server.stop(server, service))  # grace: 1 s
        with pytest.raises(grpc.aio.AioRpcError):
            await call  # cut off when the grace ran out
        await gated.release_when_the_server_knows()
        await stopping
        assert gated.finished.is_set()

    assert run_receiver(test) == []


def test_a_live_export_is_handed_over_whole_before_it_is_answered():
    async def test(stub, _service, _server, taken):
        answer = await stub.Export(gauges(25_000), timeout=30)
        assert not answer.HasField("partial_success")
        assert taken == [10_000, 10_000, 5_000]  # every chunk, by the time the client has its answer

    assert run_receiver(test) == [10_000, 10_000, 5_000]
