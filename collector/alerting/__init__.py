"""Alerting: rules evaluated over the query service, instance states and their history in the
store, notifications routed, grouped and sent, acknowledgements and silences
(docs/alerting.md)."""
