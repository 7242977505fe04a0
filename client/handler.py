"""`TelemetryHandler`: a `logging.Handler` that ships log records through a Ferry client."""

from __future__ import annotations

import logging

from ferry.client.recorder import Recorder

# LogRecord attributes that are not the app's `extra=` fields
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class TelemetryHandler(logging.Handler):
    """Each record becomes a Ferry log: level name (lower case), the formatted message, and
    attributes `logger`, `module`, `line`, the exception text if any, and the record's `extra`
    fields (`service`, `trace_id` and `span_id` among them go to their own fields)."""

    def __init__(self, telemetry: Recorder, level: int = logging.NOTSET):
        super().__init__(level)
        self.telemetry = telemetry

    def emit(self, record: logging.LogRecord) -> None:
        try:
            attributes = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
            attributes.update(logger=record.name, module=record.module, line=record.lineno)
            if record.exc_info:
                attributes["exception"] = (
                    self.formatter.formatException(record.exc_info)
                    if self.formatter
                    else (logging.Formatter().formatException(record.exc_info))
                )
            self.telemetry.log(record.levelname.lower(), record.getMessage(), **attributes)
        except Exception:
            self.handleError(record)
