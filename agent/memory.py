"""How the agent's process allocates: large buffers go back to the system when they are freed.

Each frame the agent cuts passes through a few buffers of up to `CUT_PAYLOAD_BYTES` (the
serialized payload, its lz4 frame, the spool record, the frame read back to send), and a Local
request of up to 4 MiB is parsed into one more. glibc raises its mmap threshold to the largest
block freed so far (up to 32 MiB), after which such buffers come from the heap, whose freed
pages stay with the process: under a Local flood the agent's RSS rose from 47 to ~300 MB and
stayed there. A fixed threshold keeps every block above it mmapped, and unmapped when freed.
Called once by ferry.agent.main; a no-op where the C library is not glibc.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD_BYTES = 512 * 1024


def return_large_blocks(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold at `threshold`; False when that is not possible here."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    with contextlib.suppress(OSError, AttributeError):
        return bool(ctypes.CDLL(name).mallopt(M_MMAP_THRESHOLD, threshold))
    return False
