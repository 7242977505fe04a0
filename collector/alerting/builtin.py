"""Ferry's rules about itself, on unless the rules file says `builtin_rules = false`:

- FerryAgentDown (critical), by agent_id and host: an agent the collector has not heard from for
  `agent_down_after` (default 30 s: three of its 10 s frames), from the `agents` table;
- FerryStoreErrors (critical): the collector's store takes no writes (frames get UNAVAILABLE);
- FerrySpoolDropping (warning), by host: an agent's spool dropped frames in the last 5 minutes
  (the increase of `ferry.agent.spool.dropped_frames`, which agents send from their `agent`
  collector; their series carry `host`, not agent_id). An ordinary condition rule (not
  `builtin`), so the engine has the evaluator read it like any rule of the file.
"""

from __future__ import annotations

from collections.abc import Callable

from ferry.collector.alerting.evaluate import Evaluation
from ferry.collector.alerting.model import Labels
from ferry.collector.alerting.rules import Condition, Rule
from ferry.collector.cli.expr import parse

Agents = Callable[[], list[tuple[str, str, int]]]  # (agent_id, host, last_seen_ms)
FORGET_AFTER_MS = 86_400_000  # FerryAgentDown judges agents heard from within a day
NAMES = ("FerryAgentDown", "FerryStoreErrors", "FerrySpoolDropping")
SPOOL_DROPPED_FRAMES = "ferry.agent.spool.dropped_frames"  # ferry.agent.catalogue


class Builtins:
    def __init__(self, agents: Agents, store_ok: Callable[[], bool], agent_down_after_s: float = 30.0):
        self.agents = agents
        self.store_ok = store_ok
        after = agent_down_after_s
        self.rules = [
            Rule(
                "FerryAgentDown",
                "builtin",
                None,
                "",
                ("agent_id", "host"),
                after,
                Condition(">", after, f"> {after:g}s since its last frame"),
                severity="critical",
                annotations=(("summary", "agent {{agent_id}} on {{host}} not heard from for {{value}} s"),),
                builtin=True,
            ),
            Rule(
                "FerryStoreErrors",
                "builtin",
                None,
                "",
                (),
                0.0,
                Condition("==", 0.0, "== 0 (the store takes no writes)"),
                severity="critical",
                annotations=(("summary", "the collector's store takes no writes: frames get UNAVAILABLE"),),
                builtin=True,
            ),
            Rule(
                "FerrySpoolDropping",
                "condition",  # read by the engine's Evaluator, not by evaluate() below
                parse(SPOOL_DROPPED_FRAMES, require_name=True),
                "increase",
                ("host",),
                300.0,
                Condition(">", 0.0, "> 0 frames dropped in 5m"),
                severity="warning",
                annotations=(
                    ("summary", "the agent on {{host}} is dropping spooled frames ({{value}} in 5 minutes)"),
                ),
            ),
        ]

    def evaluate(self, rule: Rule, now_ms: int) -> Evaluation:
        if rule.name == "FerryAgentDown":
            values: dict[Labels, float | None] = {
                (("agent_id", agent_id), ("host", host)): max(0.0, (now_ms - seen) / 1000)
                for agent_id, host, seen in self.agents()
                if now_ms - seen < FORGET_AFTER_MS  # an agent gone a day is decommissioned, not down
            }
        else:
            values = {(): 1.0 if self.store_ok() else 0.0}
        return Evaluation(values, {g for g, v in values.items() if rule.condition.holds(v)})
