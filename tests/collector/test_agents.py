"""AgentRecorder on the real embedded store: a row per agent when something changed, at most one
per refresh interval otherwise, one block for a group's sightings, read back by ListAgents'
query."""

from __future__ import annotations

from ferry.collector.agents import AgentRecorder, peer_address
from ferry.collector.query import listing


def test_peer_address_drops_the_transport():
    assert peer_address("ipv4:127.0.0.1:5000") == "127.0.0.1:5000"
    assert peer_address("ipv6:[::1]:5000") == "[::1]:5000"
    assert peer_address("unix:/run/ferry.sock") == "unix:/run/ferry.sock"


def test_rows_due_on_change_and_once_per_refresh(store):
    now = [1_000_000.0]
    rec = AgentRecorder(refresh_s=10.0, clock=lambda: now[0])

    def take(*sightings):
        block, ids = rec.take(sightings)
        if block is not None:  # one insert for all of a group's sightings
            store.insert("agents", block)
        return ids

    assert take(("a1", "h1", "0.1.0", "127.0.0.1:1")) == ["a1"]
    now[0] += 5
    assert take(("a1", "h1", "0.1.0", "127.0.0.1:1")) == []  # nothing new within 10 s
    assert take(("a1", "h1", "0.1.0", "127.0.0.1:2")) == ["a1"]  # a new stream: new peer port
    now[0] += 10
    # refreshed after 10 s, and a new agent: one block of two rows
    assert take(("a1", "h1", "0.1.0", "127.0.0.1:2"), ("a0", "h0", "0.2.0", "10.0.0.1:7")) == ["a1", "a0"]
    assert store.query(f"SELECT count() FROM {store.db}.agents")[0][0] == 4
    resp = listing.agents(store, now_ms=int(now[0] * 1000) + 250)
    got = [(a.agent_id, a.host, a.version, a.address, a.last_seen_ms, a.lag_ms) for a in resp.agents]
    assert got == [
        ("a0", "h0", "0.2.0", "10.0.0.1:7", 1_000_015_000, 250),
        ("a1", "h1", "0.1.0", "127.0.0.1:2", 1_000_015_000, 250),
    ]


def test_a_row_whose_insert_failed_is_due_again():
    rec = AgentRecorder(refresh_s=10.0, clock=lambda: 1_000_000.0)
    assert rec.take([("a1", "h1", "0.1.0", "127.0.0.1:1")])[1] == ["a1"]
    assert rec.take([("a1", "h1", "0.1.0", "127.0.0.1:1")])[1] == []
    rec.forget(["a1"])
    assert rec.take([("a1", "h1", "0.1.0", "127.0.0.1:1")])[1] == ["a1"]
