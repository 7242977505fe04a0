"""Notifications: the rules file's `[[receivers]]` and `[[routes]]`, and the `Notifier` the
evaluator hands its alerts to (docs/alerting.md#notifications).

    evaluator ─ update(alerts, silences, now_ms) ─▶ Notifier ─ tick ─▶ routes → groups
        (or alertmanager: every alert) ─▶ one queue and sender task per receiver ─▶ HTTP / SMTP

- `config`: the sections (`RECEIVERS`, `ROUTES`) and what they build (`Receiver`, `Route`);
- `payloads`: the bodies each receiver type sends (webhook, Slack, email, Alertmanager);
- `channel`: one receiver's bounded queue, its sends (in a thread of its own) and retries;
- `notifier`: routing, grouping, group_wait / group_interval / repeat_interval, silences,
  acks, and the Alertmanager re-sends.
"""

from ferry.collector.alerting.notify.config import RECEIVERS, ROUTES, Receiver, Route, check_routes
from ferry.collector.alerting.notify.notifier import Notification, Notifier

__all__ = ["RECEIVERS", "ROUTES", "Notification", "Notifier", "Receiver", "Route", "check_routes"]
