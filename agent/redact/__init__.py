"""PII redaction at the source, before anything is spooled (docs/redaction.md): the config keys
and the Redactor in ferry.agent.redact.config, the compiled rules in ferry.agent.redact.rules."""

from ferry.agent.redact.config import RedactConfig, Redactor, build

__all__ = ["RedactConfig", "Redactor", "build"]
