"""Who may reach the OTLP receiver: the loopback rule and the Local service's token, on a real
in-process server; and what a reload does with `otlp_listen`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.logs.v1 import logs_pb2

from ferry import transport
from ferry.agent.config import AgentConfig
from ferry.agent.otlp.config import OtlpEndpoint
from ferry.agent.reload import split
from ferry.agent.wiring import Agent
from ferry.collector.devrun import free_port
from ferry.runtime.config import ConfigError, parse_command_line
from tests.agent.test_otlp_logs import body, request
from tests.agent.test_otlp_metrics import NOW_NS


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
    from ferry.agent.otlp import server as otlp_server
    from ferry.agent.otlp.server import OtlpService

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
