"""systemd's notify protocol without a dependency: READY, WATCHDOG and STOPPING datagrams.

Active only when systemd sets NOTIFY_SOCKET (Type=notify units); a no-op otherwise. With
WatchdogSec= set, systemd also sets WATCHDOG_USEC and expects WATCHDOG=1 at least that often:
`watchdog()` pings at half the period while the event loop is alive, so a wedged loop gets the
process restarted. Both executables use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

log = logging.getLogger("ferry.runtime.sdnotify")


class Notifier:
    def __init__(self, address: str | None, watchdog_usec: int = 0):
        self.address = address
        self.watchdog_s = watchdog_usec / 1e6 if watchdog_usec > 0 else 0.0

    @classmethod
    def from_env(cls) -> Notifier:
        address = os.environ.get("NOTIFY_SOCKET") or None
        try:
            usec = int(os.environ.get("WATCHDOG_USEC", "0"))
        except ValueError:
            usec = 0
        pid = os.environ.get("WATCHDOG_PID")
        if pid and pid != str(os.getpid()):
            usec = 0  # the watchdog is meant for another process of the unit
        return cls(address, usec)

    def notify(self, message: str) -> bool:
        if not self.address:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(message.encode(), target)
        except OSError as exc:
            log.warning("sd_notify to %s failed: %s", self.address, exc)
            return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    async def watchdog(self, stop: asyncio.Event) -> None:
        """Ping WATCHDOG=1 at half the period until `stop` is set (returns at once if no watchdog)."""
        if not self.address or not self.watchdog_s:
            return
        while not stop.is_set():
            self.notify("WATCHDOG=1")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.watchdog_s / 2)
