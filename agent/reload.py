"""What a new configuration changes, and what of that a running agent can apply (SIGHUP).

Which keys apply in place is declared once, per component, in ferry.agent.config.COMPONENTS
(docs/configuration.md shows it for each part): the interval and jitter, the host collectors and
their settings, the health checks, the scrape targets, the redaction rules, labels and host
(the batch so far is cut first, under the old ones), batch limits and the log level; and on every
reload, changed or not, the collector's TLS files and token and the Local service's token file
are read again (rotated in place). The rest (addresses, spool, agent
id, listeners, synthetic source, send window) is wired into running parts; a change there is
reported as needing a restart and not applied. ferry.agent.wiring.Agent.reload asks `split`
which keys changed and `redo` what to redo for them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ferry.agent.config import COMPONENTS

_REDO = {f.name: c.reload for c in COMPONENTS for f in dataclasses.fields(c.config)}  # key -> what to redo


def changed_keys(old: Any, new: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(old) if getattr(old, f.name) != getattr(new, f.name)]


def split(old: Any, new: Any) -> tuple[list[str], list[str]]:
    """(keys applied live, keys that need a restart) among those that differ."""
    changed = changed_keys(old, new)
    return [k for k in changed if _REDO[k]], [k for k in changed if not _REDO[k]]


def redo(keys: list[str]) -> set[str]:
    """What the running agent redoes for these live keys ('collectors', 'checks', 'batch', ...)."""
    return {_REDO[k] for k in keys}
