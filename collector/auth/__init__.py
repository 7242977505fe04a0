"""Who may call the collector: principals from the auth file, the gate every RPC passes, rate
limits per principal, the audit trail, and `ferry-collector token new` (docs/security.md)."""
