"""The sender outlives any failure of a session: it backs off and tries again, never dies."""

from __future__ import annotations

import asyncio

from ferry.agent.sender import Sender
from ferry.agent.spool import Spool


class FlakySender(Sender):
    """A Sender whose sessions fail in ways gRPC does not document, then succeed."""

    def __init__(self, *args, failures: list[BaseException], **kwargs):
        super().__init__(*args, **kwargs)
        self.failures = failures
        self.addresses_tried: list[str] = []

    async def _session(self, address: str, stop: asyncio.Event) -> None:
        self.addresses_tried.append(address)
        if self.failures:
            raise self.failures.pop(0)
        stop.set()


def test_unexpected_session_errors_back_off_and_retry_with_failover(tmp_path):
    spool = Spool(tmp_path, "a1")
    sender = FlakySender(
        spool,
        ["127.0.0.1:1", "127.0.0.1:2"],
        backoff_base_s=0.001,
        backoff_cap_s=0.01,
        failures=[asyncio.InvalidStateError("RPC already finished"), RuntimeError("surprise")],
    )

    async def main() -> None:
        await asyncio.wait_for(sender.run(asyncio.Event()), timeout=5)

    asyncio.run(main())
    assert sender.addresses_tried == ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:1"]
