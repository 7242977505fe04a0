"""The checks each frame of a stream (or Push call) passes: its principal still admitted (after
a reload of the auth file), its agent id and host among the principal's, its rate within the
principal's limits."""

from __future__ import annotations

from ferry.collector.auth.gate import Caller, Gate, Refusal
from ferry.collector.auth.principals import Principal
from ferry.v1 import ingest_pb2


class Denied(Exception):
    """A frame its principal may not write (raised on a writer thread, after decoding, for its
    host); the stream or call ends with the refusal's status and the agent keeps the frame."""

    def __init__(self, refusal: Refusal):
        super().__init__(refusal.message)
        self.refusal = refusal


class FrameGuard:
    """One stream's checks; the agent id and host last allowed are remembered (a stream is one
    agent's) until the principal changes."""

    def __init__(self, gate: Gate, caller: Caller, method: str):
        self.gate = gate
        self.caller = caller
        self.method = method
        self._for: Principal | None = None
        self._agent_id: str | None = None
        self._host: str | None = None

    @property
    def principal(self) -> Principal:
        return self.caller.principal

    def check(self, frame: ingest_pb2.Frame) -> Refusal | float:
        """A Refusal, else the seconds the frame must wait for its principal's rate (0: go)."""
        principal = self.gate.recheck(self.caller, self.method, "ingest")
        if isinstance(principal, Refusal):
            return principal
        if principal is not self._for:
            self._for, self._agent_id, self._host = principal, None, None
        if frame.agent_id != self._agent_id:
            refusal = self.gate.frame_refusal(principal, frame.agent_id, self.caller.peer, self.method)
            if refusal is not None:
                return refusal
            self._agent_id = frame.agent_id
        return self.gate.wait_s(principal, frame.point_count, frame.raw_size)

    def host(self, host: str) -> None:
        """Raises Denied for a host the principal may not write (called once the frame is
        decoded: the host is in its payload)."""
        principal = self.caller.principal
        if host == self._host and principal is self._for:
            return
        refusal = self.gate.host_refusal(principal, host, self.caller.peer, self.method)
        if refusal is not None:
            raise Denied(refusal)
        self._host = host
