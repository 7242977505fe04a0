"""The stream encoding both sides share (`ferry.v1.StreamPayload`, frame encoding STREAM_ZSTD):
its negotiation, its bounds and the value modes. No numpy here: the agent imports it.

An `Ingest.Stream` starts with no state. The agent asks for the encoding in its request metadata
(`REQUEST_HEADER`); a collector that takes it answers in its initial metadata with the version
and the bounds of one stream's dictionary (`Bounds.metadata`). From then on the agent's sender
re-encodes each spooled, self-contained frame against what the stream carried before it
(`ferry.wire.streamenc`) and the collector decodes it against the same state
(`ferry.wire.streamdec`), frame after frame in stream order:
  - a dictionary of series: a series' definition travels once, later frames name it by id;
  - each series' last value: a value travels as a decimal difference, "the same", or XOR bits;
  - the time of the last point, and the previous payload, the zstd dictionary of the next.
A new stream (a reconnect, a failover to another collector) starts again from nothing, so a
frame resent there is encoded afresh and carries every definition it needs. The spool never
holds stream-encoded frames.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

VERSION = "1"
REQUEST_HEADER = "ferry-stream-encoding"  # agent → collector: the versions it can send
ACCEPT_HEADER = "ferry-stream-encoding"  # collector → agent (initial metadata): the one it takes
MAX_SERIES_HEADER = "ferry-stream-max-series"
MAX_BYTES_HEADER = "ferry-stream-max-bytes"

# value modes (StreamPayload.value_mode); 0..MAX_SCALE: decimal with 10^k
MAX_SCALE = 15
MODE_SAME = 254
MODE_BITS = 255
SCALES = tuple(10.0**k for k in range(MAX_SCALE + 1))  # exact doubles (10^22 is the last one)
EXACT = 2.0**53  # integers below this are exact doubles

# frames of more points than this go self-contained: in large frames lz4 already carries a
# series' identity at 1-4 bytes a point, while telling each point against its series' last costs
# the agent 0.5-2 us of Python (a backlog resent after RESOURCE_EXHAUSTED is encoded again each
# time: a flood of 100k-point frames took 3x as long encoded)
MAX_ENCODED_POINTS = 10_000
# the zstd dictionary of a frame: the last this many bytes of the stream's previous payload
DICTIONARY_BYTES = 256 * 1024
ZSTD_LEVEL = 3


# what the collector holds for a series of a stream beyond its serialized definition (its
# SeriesDef and label tuples, digest, name index, last value, series ids: measured ~1.5 KiB)
SERIES_HELD_BYTES = 1536
# the reason a collector gives when it ends a stream whose state a frame did not fit: the agent
# then sends that frame (the first unacked one) self-contained on its next stream
STATE_LOST = "stream encoding state lost"


def held_bytes(definition_bytes: int) -> int:
    """What a series defined in `definition_bytes` (its serialized `Series`) counts against a
    stream's `max_bytes`: both sides count the same."""
    return definition_bytes + SERIES_HELD_BYTES


@dataclass(frozen=True)
class Bounds:
    """What one stream's dictionary may hold: series, and bytes (`held_bytes` of each
    definition). The collector declares them; an agent keeps within them (it empties its
    dictionary, or sends a frame self-contained, rather than pass)."""

    max_series: int = 20_000
    max_bytes: int = 32 * 1024 * 1024

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (
            (ACCEPT_HEADER, VERSION),
            (MAX_SERIES_HEADER, str(self.max_series)),
            (MAX_BYTES_HEADER, str(self.max_bytes)),
        )


def accepted(metadata: Iterable[tuple[str, str | bytes]] | None) -> Bounds | None:
    """The bounds a collector's initial metadata grants for the stream encoding; None when it
    did not accept it (an older collector says nothing; a malformed answer counts as no)."""
    found = {k: v for k, v in (metadata or ()) if isinstance(v, str)}
    if found.get(ACCEPT_HEADER) != VERSION:
        return None
    try:
        bounds = Bounds(int(found[MAX_SERIES_HEADER]), int(found[MAX_BYTES_HEADER]))
    except (KeyError, ValueError):
        return None
    return bounds if bounds.max_series > 0 and bounds.max_bytes > 0 else None


DECLINED = ((ACCEPT_HEADER, "0"),)  # a collector's answer when it does not take the encoding


def requested(metadata: Iterable[tuple[str, str | bytes]] | None) -> bool:
    """Whether an agent's request metadata asks for this version of the stream encoding."""
    for key, value in metadata or ():
        if key == REQUEST_HEADER and isinstance(value, str):
            return VERSION in (v.strip() for v in value.split(","))
    return False
