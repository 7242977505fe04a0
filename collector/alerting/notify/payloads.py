"""What each receiver type sends for one notification: the webhook's JSON, the Slack message,
the e-mail, the Alertmanager's list of alerts. Pure functions of a `Notification`; the shapes are
documented in docs/alerting.md#notifications. Times are RFC 3339 in UTC with milliseconds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from ferry.collector.alerting.model import Alert

FIRING, RESOLVED = "firing", "resolved"
# Slack attachment colours: by severity while firing, green once resolved
COLOURS = {"critical": "#d0021b", "warning": "#f5a623", "info": "#4a90e2", RESOLVED: "#2eb67d"}
DEFAULT_COLOUR = COLOURS["warning"]
SLACK_MAX_ATTACHMENTS = 20  # the rest are counted in one last attachment (Slack allows 100)


@dataclass(frozen=True)
class Notification:
    """One message to one receiver: a group's alerts (firing first, then resolved), or for an
    alertmanager receiver the alerts due to be (re-)sent. `valid_until_ms`: the `endsAt` an
    Alertmanager is given for the firing ones (it resolves them itself if not told again by then)."""

    receiver: str
    alerts: tuple[Alert, ...]
    time_ms: int
    group_labels: dict[str, str] = field(default_factory=dict)
    valid_until_ms: int = 0

    @property
    def status(self) -> str:
        """firing while any of its alerts fires."""
        return FIRING if any(not a.resolved for a in self.alerts) else RESOLVED

    @property
    def firing(self) -> list[Alert]:
        return [a for a in self.alerts if not a.resolved]

    @property
    def resolved(self) -> list[Alert]:
        return [a for a in self.alerts if a.resolved]

    @property
    def common_labels(self) -> dict[str, str]:
        """The labels every alert has with the same value."""
        if not self.alerts:
            return {}
        common = dict(self.alerts[0].labels)
        for alert in self.alerts[1:]:
            common = {k: v for k, v in common.items() if alert.labels.get(k) == v}
        return common


def rfc3339(ms: int) -> str:
    return (
        dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def status_of(alert: Alert) -> str:
    return RESOLVED if alert.resolved else FIRING


def _labels_text(labels: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _value_text(alert: Alert) -> str:
    value = "no value" if alert.value is None else f"{alert.value:g}"
    return f"value {value}" + (f" (threshold {alert.threshold})" if alert.threshold else "")


def _title(n: Notification) -> str:
    """[FIRING:2] HighCPU (host=web-1): the status, how many alerts, the group."""
    count = len(n.firing) if n.status == FIRING else len(n.resolved)
    name = n.common_labels.get("alertname", "")
    others = {k: v for k, v in n.group_labels.items() if k != "alertname"}
    group = f" ({_labels_text(others)})" if others else ""
    return f"[{n.status.upper()}:{count}] {name}{group}".replace("]  ", "] ").rstrip()


def webhook_body(n: Notification) -> dict[str, Any]:
    """The webhook's JSON: the group, then each alert; `endsAt` is null while an alert fires."""
    return {
        "status": n.status,
        "receiver": n.receiver,
        "groupLabels": n.group_labels,
        "commonLabels": n.common_labels,
        "alerts": [
            {
                "id": a.id,
                "status": status_of(a),
                "labels": a.labels,
                "annotations": a.annotations,
                "value": a.value,
                "threshold": a.threshold,
                "startsAt": rfc3339(a.starts_at_ms),
                "endsAt": rfc3339(a.ends_at_ms) if a.resolved else None,
            }
            for a in n.alerts
        ],
    }


def _slack_attachment(a: Alert) -> dict[str, Any]:
    colour = COLOURS[RESOLVED] if a.resolved else COLOURS.get(a.severity, DEFAULT_COLOUR)
    name = a.labels.get("alertname", a.id)
    summary = a.annotations.get("summary", "")
    title = f"[{status_of(a).upper()}] {name}" + (f": {summary}" if summary else "")
    lines = [_value_text(a), f"labels: {_labels_text(a.labels)}"]
    lines += [f"{k}: {v}" for k, v in sorted(a.annotations.items())]
    if a.resolved:
        lines.append(f"resolved at {rfc3339(a.ends_at_ms)}")
    return {
        "color": colour,
        "title": title,
        "text": "\n".join(lines),
        "fallback": f"{title} ({_value_text(a)})",
        "ts": a.starts_at_ms // 1000,
    }


def slack_body(n: Notification) -> dict[str, Any]:
    """An incoming-webhook message: the group as `text`, one attachment per alert."""
    attachments = [_slack_attachment(a) for a in n.alerts[:SLACK_MAX_ATTACHMENTS]]
    rest = len(n.alerts) - SLACK_MAX_ATTACHMENTS
    if rest > 0:
        attachments.append({"color": DEFAULT_COLOUR, "title": f"and {rest} more", "text": ""})
    return {"text": _title(n), "attachments": attachments}


def _alert_lines(alerts: Iterable[Alert]) -> list[str]:
    lines: list[str] = []
    for a in alerts:
        lines.append(f"- {a.labels.get('alertname', a.id)}: {_value_text(a)}")
        lines.append(f"  labels: {_labels_text(a.labels)}")
        lines += [f"  {k}: {v}" for k, v in sorted(a.annotations.items())]
        lines.append(f"  started: {rfc3339(a.starts_at_ms)}")
        if a.resolved:
            lines.append(f"  resolved: {rfc3339(a.ends_at_ms)}")
    return lines


def email_message(n: Notification, sender: str, to: Iterable[str]) -> EmailMessage:
    """A plain-text e-mail: the title as subject; firing alerts, then resolved ones."""
    msg = EmailMessage()
    msg["Subject"] = _title(n)
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = format_datetime(dt.datetime.fromtimestamp(n.time_ms / 1000, dt.UTC))
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    body = [f"Receiver: {n.receiver}"]
    if n.group_labels:
        body.append(f"Group: {_labels_text(n.group_labels)}")
    for title, alerts in (("Firing", n.firing), ("Resolved", n.resolved)):
        if alerts:
            body += ["", f"{title} ({len(alerts)}):", *_alert_lines(alerts)]
    msg.set_content("\n".join(body) + "\n")
    return msg


def alertmanager_body(n: Notification, generator_url: str = "") -> list[dict[str, Any]]:
    """POST /api/v2/alerts: firing alerts end at `valid_until_ms`, resolved ones when they
    resolved (an Alertmanager takes an alert whose endsAt has passed as resolved)."""
    out = []
    for a in n.alerts:
        item: dict[str, Any] = {
            "labels": a.labels,
            "annotations": a.annotations,
            "startsAt": rfc3339(a.starts_at_ms),
            "endsAt": rfc3339(a.ends_at_ms if a.resolved else n.valid_until_ms),
        }
        if generator_url:
            item["generatorURL"] = generator_url
        out.append(item)
    return out
