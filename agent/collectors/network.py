"""Network interfaces from /proc/net/dev and TCP connection states from /proc/net/tcp{,6}.

Reading /proc/net/tcp walks the kernel's whole socket hash table: about 4 ms per file on our
2-core hosts with a handful of sockets, more than the rest of a host cycle together. So
connections are counted at most every `connections_every_s` (60 s by default; 0 = every cycle).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from ferry.agent import catalogue as c
from ferry.agent.collectors.base import Emit, HostEnv, ProcText, SeriesCache
from ferry.series import SeriesDef

# the kernel's TCP state numbers (include/net/tcp_states.h), as the hostmetrics receiver names them
TCP_STATES = {
    1: "ESTABLISHED",
    2: "SYN_SENT",
    3: "SYN_RECV",
    4: "FIN_WAIT1",
    5: "FIN_WAIT2",
    6: "TIME_WAIT",
    7: "CLOSE",
    8: "CLOSE_WAIT",
    9: "LAST_ACK",
    10: "LISTEN",
    11: "CLOSING",
}


class NetworkCollector:
    name = "network"

    def __init__(
        self, proc_root: Path, connections_every_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ):
        self.proc = proc_root
        self.read = ProcText(proc_root)
        self.connections_every_s = connections_every_s
        self.clock = clock
        self._connections_at: float | None = None
        self.s = SeriesCache()
        self._interfaces_seen: dict[str, tuple[SeriesDef, ...]] = {}  # by the name as /proc pads it

    def close(self) -> None:
        self.read.close()

    def collect(self, time_ms: int, emit: Emit) -> None:
        self._interfaces(emit)
        now = self.clock()
        if self._connections_at is None or now - self._connections_at >= self.connections_every_s:
            self._connections_at = now
            self._connections(emit)

    def _interfaces(self, emit: Emit) -> None:
        text = self.read("net/dev")
        if text is None:
            return
        interfaces = self._interfaces_seen
        # columns after 'dev:': 8 receive fields (bytes packets errs drop ...), then 8 transmit fields
        for line in text.splitlines()[2:]:
            dev, _, rest = line.partition(":")
            f = rest.split()
            if len(f) < 16:
                continue
            s = interfaces.get(dev)
            if s is None:
                s = interfaces[dev] = self._series_of(dev.strip())
            emit(s[0], float(f[0]))
            emit(s[1], float(f[1]))
            emit(s[2], float(f[2]))
            emit(s[3], float(f[3]))
            emit(s[4], float(f[8]))
            emit(s[5], float(f[9]))
            emit(s[6], float(f[10]))
            emit(s[7], float(f[11]))

    def _series_of(self, dev: str) -> tuple[SeriesDef, ...]:
        """An interface's series in the order `_interfaces` emits them, looked up once."""
        s = self.s
        return tuple(
            s(metric, dev, direction)
            for direction in ("receive", "transmit")
            for metric in (c.NETWORK_IO, c.NETWORK_PACKETS, c.NETWORK_ERRORS, c.NETWORK_DROPPED)
        )

    def _connections(self, emit: Emit) -> None:
        counts = dict.fromkeys(TCP_STATES.values(), 0)
        seen = False
        for name in ("tcp", "tcp6"):
            text = self.read(f"net/{name}")
            if text is None:
                continue
            seen = True
            for line in text.splitlines()[1:]:
                f = line.split(None, 4)
                if len(f) >= 4:
                    state = TCP_STATES.get(int(f[3], 16))
                    if state is not None:
                        counts[state] += 1
        if seen:
            for state, n in counts.items():
                emit(self.s(c.NETWORK_CONNECTIONS, "tcp", state), float(n))


def build(cfg: object, env: HostEnv) -> NetworkCollector:
    return NetworkCollector(env.proc_root)  # nothing to configure
