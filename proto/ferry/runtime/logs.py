"""JSON lines logging (orjson) for both executables: one object per record on stderr."""

from __future__ import annotations

import logging
import sys
import time

import orjson

LEVELS = ("debug", "info", "warning", "error")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "audit", None)  # ferry.collector.auth.audit's structured fields
        if fields:
            doc["audit"] = fields
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc).decode()


class ClientGone(logging.Filter):
    """grpc.aio logs an error with a traceback when a unary answer cannot be sent because the
    client already ended the call (a deadline, a cancel): "ExecuteBatchError raised in core by
    servicer method [/ferry.v1.Query/SearchLogs]". Nothing failed on the server's side, so the
    record becomes one warning line naming the method, without the traceback (the adversarial
    run's tests fail on any traceback in a log)."""

    PREFIX = "ExecuteBatchError raised in core by servicer method"

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith(self.PREFIX):
            method = message[len(self.PREFIX) :].strip()
            record.msg, record.args = "the client of %s was gone before its answer was sent", (method,)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = record.exc_text = None
        return True


def setup(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    grpc_core = logging.getLogger("grpc._cython.cygrpc")
    if not any(isinstance(f, ClientGone) for f in grpc_core.filters):
        grpc_core.addFilter(ClientGone())


def set_level(level: str) -> None:
    logging.getLogger().setLevel(level.upper())
