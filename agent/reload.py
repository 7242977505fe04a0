"""What a new configuration changes, and what of that a running agent can apply (SIGHUP).

Applied in place: the interval and jitter, the host collectors and their settings, the health
checks, the scrape targets, labels and host (the batch so far is cut first, under the old
ones), batch limits and the log level. The rest (addresses, spool, agent id, listeners,
synthetic source, send window) is wired into running parts; a change there is reported as
needing a restart and not applied.
"""

from __future__ import annotations

import dataclasses
from typing import Any

COLLECTOR_KEYS = ("collectors", "filesystem_exclude_types", "process_top_n", "processes")
RESOURCE_KEYS = ("labels", "host")
BATCH_KEYS = ("batch_max_points", "batch_max_age")
LIVE_KEYS = frozenset(
    ("interval", "jitter", "checks", "scrape", "log_level", *COLLECTOR_KEYS, *RESOURCE_KEYS, *BATCH_KEYS)
)


def changed_keys(old: Any, new: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(old) if getattr(old, f.name) != getattr(new, f.name)]


def split(old: Any, new: Any) -> tuple[list[str], list[str]]:
    """(keys applied live, keys that need a restart) among those that differ."""
    changed = changed_keys(old, new)
    return [k for k in changed if k in LIVE_KEYS], [k for k in changed if k not in LIVE_KEYS]
