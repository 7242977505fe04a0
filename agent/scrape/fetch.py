"""One HTTP GET of a target's exposition, blocking: the runner calls it in a worker thread.

Asks for OpenMetrics first and the Prometheus text format second (what Prometheus sends), and
reads at most `max_bytes` of body within the timeout. Every way it can fail becomes a
`ScrapeError` whose message is the reason the runner logs (refused, timed out, HTTP status,
too large). Proxy variables in the environment are not used (Prometheus does not use them
either unless told to): targets are local endpoints.
"""

from __future__ import annotations

import http.client
import socket
import time
import urllib.error
import urllib.request

from ferry.agent import __version__

ACCEPT = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
MAX_BODY_BYTES = 16 * 1024 * 1024
_CHUNK = 256 * 1024
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ScrapeError(Exception):
    """A scrape that produced no exposition; the message says why."""


def fetch(url: str, timeout: float, max_bytes: int = MAX_BODY_BYTES) -> tuple[bytes, str]:
    """(body, Content-Type). The whole request, body included, must finish within `timeout`."""
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(
        url,
        headers={
            "Accept": ACCEPT,
            "User-Agent": f"ferry-agent/{__version__}",
            "X-Prometheus-Scrape-Timeout-Seconds": f"{timeout:g}",
        },
    )
    try:
        with _OPENER.open(request, timeout=timeout) as resp:
            content_type = resp.headers.get("Content-Type", "")
            body = _read(resp, deadline, max_bytes)
    except urllib.error.HTTPError as exc:
        raise ScrapeError(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise ScrapeError(_reason(exc.reason, timeout)) from None
    except (OSError, ValueError, http.client.HTTPException) as exc:  # timeouts, resets, bad responses
        raise ScrapeError(_reason(exc, timeout)) from None
    return body, content_type


def _read(resp, deadline: float, max_bytes: int) -> bytes:
    chunks, size = [], 0
    while True:
        if time.monotonic() >= deadline:
            raise TimeoutError
        # read1: at most one socket read (each bounded by the timeout) between deadline checks,
        # so a target that trickles its body cannot hold the scrape much past the deadline
        chunk = resp.read1(min(_CHUNK, max_bytes + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            raise ScrapeError(f"body over {max_bytes} bytes (the limit); not parsed")


def _reason(exc: object, timeout: float) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"timed out after {timeout:g}s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__
