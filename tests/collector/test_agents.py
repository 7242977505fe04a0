"""AgentRecorder on the real embedded store: a row per sighting when something changed, at most one
per refresh interval otherwise, read back by ListAgents' query."""

from __future__ import annotations

from ferry.collector.agents import AgentRecorder, peer_address
from ferry.collector.query import listing
from ferry.collector.storage.store import Store, ThreadStores


def test_peer_address_drops_the_transport():
    assert peer_address("ipv4:127.0.0.1:5000") == "127.0.0.1:5000"
    assert peer_address("ipv6:[::1]:5000") == "[::1]:5000"
    assert peer_address("unix:/run/ferry.sock") == "unix:/run/ferry.sock"


def test_writes_on_change_and_once_per_refresh(store, store_dsn):
    now = [1_000_000.0]
    stores = ThreadStores(lambda: Store.open(store_dsn, database=store.db))
    rec = AgentRecorder(stores, refresh_s=10.0, clock=lambda: now[0])
    try:
        assert rec.seen("a1", "h1", "0.1.0", "127.0.0.1:1")
        now[0] += 5
        assert not rec.seen("a1", "h1", "0.1.0", "127.0.0.1:1")  # nothing new within 10 s
        assert rec.seen("a1", "h1", "0.1.0", "127.0.0.1:2")  # a new stream: new peer port
        now[0] += 10
        assert rec.seen("a1", "h1", "0.1.0", "127.0.0.1:2")  # refreshed after 10 s
        assert rec.seen("a0", "h0", "0.2.0", "10.0.0.1:7")
        assert store.query(f"SELECT count() FROM {store.db}.agents")[0][0] == 4
        resp = listing.agents(store, now_ms=int(now[0] * 1000) + 250)
        got = [(a.agent_id, a.host, a.version, a.address, a.last_seen_ms, a.lag_ms) for a in resp.agents]
        assert got == [
            ("a0", "h0", "0.2.0", "10.0.0.1:7", 1_000_015_000, 250),
            ("a1", "h1", "0.1.0", "127.0.0.1:2", 1_000_015_000, 250),
        ]
    finally:
        stores.close_all()
