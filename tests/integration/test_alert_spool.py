"""The built-in FerrySpoolDropping with real processes: an agent with a tiny spool and no collector
to send to drops its oldest frames; its `agent` collector reports the count in the frames it
keeps; when a collector comes up (its rules file holds only a webhook receiver and a route, so
the built-in rules are all it evaluates) those frames arrive and the rule fires for the host."""

from __future__ import annotations

from ferry.collector.devrun import free_port
from tests.collector.notify_sink import Sink
from tests.integration.procs import diagnose, start_agent, start_collector, wait_for

HOOK = """
[[receivers]]
name = "hook"
type = "webhook"
url = "{url}/hook"

[[routes]]
receiver = "hook"
group_by = ["alertname", "host"]
group_wait = "0s"
group_interval = "1s"
"""


def firing(sink: Sink, rule: str) -> list[dict]:
    return [
        a
        for r in sink.requests
        if r.body["status"] == "firing"
        for a in r.body["alerts"]
        if a["labels"]["alertname"] == rule
    ]


def test_spool_dropping_fires_for_the_host_whose_agent_dropped_frames(tmp_path):
    port = free_port()
    # all host collectors every 200 ms: ~5 KB frames, so a 64 KiB spool overflows in seconds
    agent = start_agent(
        tmp_path, f"127.0.0.1:{port}", "--interval", "200ms", "--batch-max-age", "200ms",
        "--spool-max-bytes", "65536", "--host", "spilly", agent_id="spilly-agent",
    )  # fmt: skip
    collector = None
    with Sink() as sink:
        try:
            with diagnose(agent):
                wait_for(
                    lambda: agent.scrape()["ferry_agent_spool_dropped_frames_total"] >= 4,
                    timeout=30,
                    what="the spool dropping frames",
                )
            rules = tmp_path / "rules.toml"
            rules.write_text(HOOK.format(url=sink.url))
            collector = start_collector(
                tmp_path, "--rules", str(rules), "--alert-eval-interval", "500ms", port=port
            )
            with diagnose(agent, collector):
                (alert,) = wait_for(lambda: firing(sink, "FerrySpoolDropping"), timeout=20,
                                    what="FerrySpoolDropping notified")  # fmt: skip
                dropped = agent.scrape()["ferry_agent_spool_dropped_frames_total"]
                labels = alert["labels"]
                assert (labels["alertname"], labels["host"], labels["severity"]) == (
                    "FerrySpoolDropping", "spilly", "warning",
                )  # fmt: skip
                # the increase the frames kept show, at most every frame the agent dropped
                value = alert["value"]
                assert alert["annotations"]["summary"] == (
                    f"the agent on spilly is dropping spooled frames ({value:.4g} in 5 minutes)"
                )
                print(
                    f"\nFerrySpoolDropping: {value:g} frames dropped in 5m as the kept frames tell, "
                    f"{dropped:g} in all"
                )
                assert 0 < value <= dropped
                assert not firing(sink, "FerryAgentDown") and not firing(sink, "FerryStoreErrors")
        finally:
            agent.stop()
            if collector is not None:
                collector.stop()
