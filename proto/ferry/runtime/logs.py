"""JSON lines logging (orjson) for both executables: one object per record on stderr."""

from __future__ import annotations

import logging
import os
import sys
import threading
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


_NATIVE_LEVELS = {"E": "error", "W": "warning", "I": "info", "D": "debug", "F": "critical"}
MAX_NATIVE_LINE = 2000


def native_line(line: bytes, now: float | None = None) -> bytes:
    """A line gRPC's core wrote to stderr ("E1201 14:21:10.036 28673 file.cc:3238] text") as one
    of our JSON lines: its text becomes a JSON string, so bytes a peer made core log (a TLS
    server name, say) cannot pass for a line of ours."""
    text = line.decode("utf-8", "replace").rstrip("\r\n")[:MAX_NATIVE_LINE]
    created = time.time() if now is None else now
    doc = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created % 1 * 1000):03d}Z",
        "level": _NATIVE_LEVELS.get(text[:1], "warning") if text[1:2].isdigit() else "warning",
        "logger": "grpc.core",
        "msg": text,
    }
    return orjson.dumps(doc) + b"\n"


def capture_native_stderr() -> None:
    """Route what native code (gRPC's core) writes to file descriptor 2 through `native_line`
    into the real stderr, where Python's log lines go straight. For a process serving the
    network: its core logs what peers send (a ClientHello's server name) as it came."""
    real = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    sys.stderr = open(real, "w", buffering=1, closefd=False)  # noqa: SIM115 (for the process's life)

    def pump() -> None:
        with open(read_end, "rb", buffering=0) as pipe:
            pending = b""
            while chunk := pipe.read(65536):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        os.write(real, native_line(line))
                if len(pending) > MAX_NATIVE_LINE * 4:  # a line without an end: cut it
                    os.write(real, native_line(pending))
                    pending = b""

    threading.Thread(target=pump, name="native-stderr", daemon=True).start()


def setup(level: str, native_stderr: bool = False) -> None:
    """JSON lines on stderr at `level`; `native_stderr`: see capture_native_stderr."""
    if native_stderr:
        capture_native_stderr()
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
