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


def test_a_frame_no_collector_can_take_is_found_before_it_is_sent(tmp_path):
    """The collector's own check_frame, and the receive limit a collector reports when a stream
    ends with gRPC's "Received message larger than max (N vs. M)"."""
    import os

    spool = Spool(tmp_path, "a1")
    sender = Sender(spool, ["127.0.0.1:1"])
    small, big = spool.append(b"x" * 1000, 1), spool.append(os.urandom(17 * 1024 * 1024), 1)
    assert sender._unsendable(small) == ""
    assert "> 16777216 allowed" in sender._unsendable(big)
    sender._learn_limit("SERVER: Received message larger than max (22001401 vs. 30)")
    assert sender.max_message_bytes == 30
    assert "receive limit 30" in sender._unsendable(small)
    sender._learn_limit("Received message larger than max (22001401 vs. 17825792)")  # never raised again
    assert sender.max_message_bytes == 30
