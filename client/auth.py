"""The token the agent's Local service may ask for (the agent's `local_token_file`).

Where the client finds it, the first one given wins: the `token=` option, the `token_file=`
option, the environment variable FERRY_LOCAL_TOKEN; with none, calls carry no token (what an
agent without a token file expects). It is sent on every call as the metadata
`authorization: Bearer <token>`. A `token_file` is read when the client is made, and again
whenever the agent answers UNAUTHENTICATED, so a token rotated on disk is picked up.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path

ENV = "FERRY_LOCAL_TOKEN"
HEADER = "authorization"
REPORT_EVERY_S = 10.0

log = logging.getLogger("ferry.client")
Metadata = tuple[tuple[str, str], ...]


def _checked(token: str, where: str) -> str:
    token = token.strip()
    if not token:
        raise ValueError(f"{where}: the token is empty")
    if not all(0x21 <= ord(c) <= 0x7E for c in token):
        # the token itself is never shown
        raise ValueError(f"{where}: a token is visible ASCII without spaces (what a gRPC header can carry)")
    return token


def _read(path: str) -> str:
    return _checked(Path(path).read_text(errors="replace"), f"token_file {path}")


class LocalToken:
    """The call metadata for the agent's token (`metadata` is None without one). Raises
    ValueError for both options at once or a token that cannot be sent, and OSError for a
    token_file that cannot be read."""

    def __init__(
        self, token: str | None = None, token_file: str | None = None, environ: Mapping[str, str] = os.environ
    ):
        if token is not None and token_file is not None:
            raise ValueError("give the client token= or token_file=, not both")
        self.file = token_file
        if token_file is not None:
            value: str | None = _read(token_file)
        elif token is not None:
            value = _checked(token, "token=")
        else:
            value = _checked(environ[ENV], ENV) if environ.get(ENV, "").strip() else None
        self.metadata = _metadata(value)
        self._next_report = 0.0

    def refused(self, details: str) -> None:
        """The agent answered UNAUTHENTICATED: say so (at most every REPORT_EVERY_S), and read
        the token file again."""
        now = time.monotonic()
        if now >= self._next_report:
            log.warning("ferry client: the agent refused the token: %s", details)
            self._next_report = now + REPORT_EVERY_S
        if self.file is not None:
            try:
                self.metadata = _metadata(_read(self.file))
            except (OSError, ValueError) as exc:
                log.warning("ferry client: cannot read the token again, the one read before stays: %s", exc)


def _metadata(token: str | None) -> Metadata | None:
    return None if token is None else ((HEADER, f"Bearer {token}"),)
