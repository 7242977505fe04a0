"""ferry.transport: the one module that builds gRPC channels and server ports."""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess

import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from ferry import transport
from ferry.transport import Endpoint
from tests.paths import ROOT


def test_no_module_but_transport_builds_channels_or_ports():
    files = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    pattern = re.compile(r"insecure_channel|secure_channel|add_insecure_port|add_secure_port")
    offenders = [
        f
        for f in files
        if f not in ("proto/ferry/transport.py", "tests/proto/test_transport.py")
        and not f.startswith("proto/ferry/v1/")  # generated stubs
        and pattern.search((ROOT / f).read_text())
    ]
    assert offenders == []


def test_endpoint_options():
    ep = Endpoint("127.0.0.1:1", max_send_bytes=10, max_receive_bytes=20, options=(("grpc.x", 1),))
    assert ep.grpc_options() == [
        ("grpc.max_send_message_length", 10),
        ("grpc.max_receive_message_length", 20),
        ("grpc.x", 1),
    ]
    assert Endpoint("a:1").grpc_options() == []
    assert transport.endpoint("a:1") == Endpoint("a:1")


def test_bind_refuses_a_taken_port_naming_the_address():
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]

        async def attempt() -> None:
            srv = transport.server(options=[("grpc.so_reuseport", 0)])
            try:
                with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
                    transport.bind(srv, f"127.0.0.1:{port}")
            finally:
                await srv.stop(None)

        asyncio.run(attempt())


def test_a_bound_server_answers_on_a_channel_and_an_aio_channel(tmp_path):
    async def main() -> None:
        srv = transport.server(max_receive_bytes=1 << 20)
        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), srv)
        port = transport.bind(srv, "127.0.0.1:0")
        assert port > 0
        assert transport.bind(srv, f"unix:{tmp_path / 's.sock'}") > 0
        await srv.start()
        try:
            async with transport.aio_channel(f"unix:{tmp_path / 's.sock'}") as ch:
                got = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
                assert got.status == health_pb2.HealthCheckResponse.SERVING

            def blocking() -> int:
                with transport.channel(Endpoint(f"127.0.0.1:{port}", max_send_bytes=1 << 20)) as ch:
                    stub = health_pb2_grpc.HealthStub(ch)
                    return stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status

            assert await asyncio.to_thread(blocking) == health_pb2.HealthCheckResponse.SERVING
        finally:
            await srv.stop(None)

    asyncio.run(main())
