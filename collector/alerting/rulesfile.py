"""The rules file (`--rules FILE`): `[[alerts]]` (ferry.collector.alerting.rules),
`[[receivers]]` and `[[routes]]` (ferry.collector.alerting.notify.config), and the switches of
Ferry's built-in rules about itself. Declared once here; docs/configuration.md lists every key.
"""

from __future__ import annotations

from dataclasses import dataclass

from ferry.collector.alerting.builtin import NAMES as BUILTIN_NAMES
from ferry.collector.alerting.notify.config import RECEIVERS, ROUTES, check_routes
from ferry.collector.alerting.rules import ALERTS
from ferry.runtime.config import ConfigError, apply_file, load_toml, setting
from ferry.runtime.tables import tables


@dataclass
class RulesFile:
    """The rules file (`--rules FILE`): alert rules, receivers, routes, built-in rules."""

    alerts: list = tables(ALERTS, "alert rules, as [[alerts]] tables")
    receivers: list = tables(RECEIVERS, "where notifications go, as [[receivers]] tables")
    routes: list = tables(ROUTES, "which alerts go to which receiver, as [[routes]] tables (first match)")
    builtin_rules: bool = setting(
        True,
        "bool",
        "Ferry's rules about itself: FerryAgentDown, FerryStoreErrors, FerrySpoolDropping",
        flag=False,
    )
    agent_down_after: float = setting(
        30.0, "duration", "FerryAgentDown: an agent not heard from for this long (3 x its frames' 10 s)",
        flag=False,
    )  # fmt: skip


def load_rules(path: str) -> RulesFile:
    """Read and check a rules file; raises ConfigError naming the file, line and key."""
    rules = RulesFile()
    apply_file(rules, load_toml(path), path)
    check_routes(rules.receivers, rules.routes)
    names = {r.name for r in rules.alerts}
    taken = sorted(names & set(BUILTIN_NAMES)) if rules.builtin_rules else []
    if taken:
        raise ConfigError(
            f"{path}: {', '.join(taken)}: {', '.join(BUILTIN_NAMES)} are built-in rule names "
            "(builtin_rules = false frees them)"
        )
    return rules
