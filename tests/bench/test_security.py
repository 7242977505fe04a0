"""bench.pki and `bench.fleet --secure`: the auth file the benches make is one the collector
loads, each simulated agent's token belongs to the one principal that may write as it, and a
tiny fleet over TLS + mTLS + auth stores exactly the points acked. No timing is asserted."""

from __future__ import annotations

import time

import pytest

from bench import fleet, pki
from ferry.collector.auth.principals import Principals


@pytest.mark.parametrize("principals", [1, 10, 100])
def test_each_agent_has_the_token_of_the_one_principal_that_may_write_as_it(tmp_path, principals):
    secrets = pki.make(tmp_path / "pki", principals)
    loaded = Principals.load(str(tmp_path / "pki" / "auth.toml"))
    ingest = [p for p in loaded.all if "ingest" in p.roles]
    assert len(ingest) == principals
    assert [p.name for p in loaded.all if p.roles == {"query"}] == ["bench-reader"]
    assert loaded.by_token(secrets.query_token).name == "bench-reader"
    t0 = int(time.time() * 1000)
    for index in range(0, 1000, 7):
        agent_id = fleet.Host(index, "t", t0).agent_id
        owner = loaded.by_token(secrets.token_for(index))
        assert owner.may_write(agent_id)
        assert [p.name for p in ingest if p.may_write(agent_id)] == [owner.name]
        assert owner.rate.points_per_s == pki.POINTS_PER_S and owner.rate.frames_per_s == pki.FRAMES_PER_S


def test_principals_must_be_a_power_of_ten(tmp_path):
    with pytest.raises(ValueError, match="principals 3: a power of 10"):
        pki.make(tmp_path / "pki", 3)


def test_tiny_secure_fleet_stores_exactly_the_points_acked():
    r = fleet.run_ferry(streams=5, duration=60.0, warm=0.0, frames=20, secure=True, paced=False)
    assert r["secure"] == "tls, mtls, auth (10 principals)"
    assert r["max_phase"]["first_error"] == "" and "paced_phase" not in r
    assert r["max_phase"]["ok"] == 5 * 20 and r["max_phase"]["ran_out"] == 5  # all sent, all OK
    assert r["acked_points"] == 5 * 20 * fleet.POINTS
    assert r["stored_points"] == r["acked_points"]
