"""bench.fleet: the frames it sends are what the agent's codec would encode, the remote-write
requests what protobuf would serialize, and a tiny fleet run stores exactly the points acked.
No timing is asserted: that is `make bench`'s job."""

from __future__ import annotations

import time

import numpy as np

from bench import fleet, prometheus
from ferry.v1 import payload_pb2
from ferry.wire.codec import encode_payload
from ferry.wire.columns import MetricBatch


def test_a_host_cycle_is_what_encode_payload_makes():
    host = fleet.Host(7, "t", int(time.time() * 1000) - fleet.PAST_MS)
    assert len(fleet.SERIES) == len({(s.name, s.labels) for s in fleet.SERIES}) == fleet.POINTS
    resource = payload_pb2.Resource(host=host.host, agent_id=host.agent_id, agent_version="fleet-bench")
    for seq in (1, 2, 50):
        batch = MetricBatch(
            fleet.SERIES,
            np.arange(fleet.POINTS, dtype=np.uint32),
            np.full(fleet.POINTS, host.time_ms(seq), dtype=np.int64),
            host.values(seq),
        )
        assert host.payload(seq) == encode_payload(resource, batch)
    assert host.time_ms(2) > host.time_ms(1)
    assert host.frame(3).seq == 3 and host.frame(3).point_count == fleet.POINTS


def test_remote_write_requests_are_what_protobuf_serializes():
    t0 = int(time.time() * 1000) - fleet.PAST_MS
    for hosts, samples in ((1, 1), (2, 3)):
        conns = fleet.PromConnections(
            {"addr": "127.0.0.1:1", "tag": "t", "t0_ms": t0, "hosts_per_request": hosts,
             "samples_per_series": samples, "indices": [1]}
        )  # fmt: skip
        owners, template = conns.conns[0]
        labels = [
            [("__name__", prometheus.prom_name(s.name)), ("host", h.host), ("job", "fleet"), *s.labels]
            for h in owners
            for s in fleet.SERIES
        ]
        times, values = conns.request(0, 4)
        assert template.points == hosts * fleet.POINTS * samples == times.shape[0]
        prometheus.check_encoding(template, labels, times, values)


def test_tiny_fleet_stores_exactly_the_points_acked():
    # each stream sends its 20 frames (the phase's 60 s is only a bound), then a paced second
    r = fleet.run_ferry(streams=5, duration=60.0, paced_duration=1.0, warm=0.0, frames=20)
    assert r["max_phase"]["first_error"] == "" and r["paced_phase"]["first_error"] == ""
    assert r["max_phase"]["ok"] == 5 * 20 and r["max_phase"]["ran_out"] == 5  # all sent, all OK
    assert r["acked_points"] == (r["max_phase"]["ok"] + r["paced_phase"]["ok"]) * fleet.POINTS
    assert r["stored_points"] == r["acked_points"]
    assert r["stored_ok"]
