"""Which table answers a QueryRange: the raw `samples`, or the 1m / 1h rollup.

The service asks once per query, after it knows the metric's kind. Automatic choice: the
coarsest rollup whose bucket divides the step and both ends of the range, so every step bucket
is a whole number of rollup buckets and the answer equals the raw one; only for the
aggregations a rollup holds exactly (avg min max sum count last) and never for histograms,
increase/rate (resets need the raw points) or quantiles (rollups keep no quantile state; see
collector/storage/rollups.py). An explicit resolution must divide the step; with a range that is not
aligned to it, a rollup bucket counts when its start lies in the range.
"""

from __future__ import annotations

from collector.query.sql import QueryError
from collector.storage.rollups import RESOLUTIONS, Resolution

RAW = "raw"
ROLLUP_AGGS = ("avg", "min", "max", "sum", "count", "last")
NAMES = (RAW, *(r.name for r in RESOLUTIONS))


def choose(
    resolution: str, agg: str, step_ms: int, start_ms: int, end_ms: int, histogram: bool
) -> Resolution | None:
    """The rollup to read, or None for raw samples; raises QueryError for a request that
    names a resolution that cannot answer it."""
    if resolution not in ("", *NAMES):
        raise QueryError(f"resolution {resolution!r} is not one of {', '.join(NAMES)} (or empty: automatic)")
    if resolution == RAW:
        return None
    eligible = agg in ROLLUP_AGGS and not histogram
    if resolution:
        rollup = next(r for r in RESOLUTIONS if r.name == resolution)
        if not eligible:
            what = "histogram metrics" if histogram else f"aggregation {agg!r}"
            raise QueryError(
                f"resolution {resolution}: {what} are answered from raw samples only "
                f"(rollups hold {', '.join(ROLLUP_AGGS)}); use resolution raw or automatic"
            )
        if step_ms % rollup.step_ms:
            raise QueryError(
                f"resolution {resolution}: step {step_ms} ms is not a multiple of {rollup.step_ms} ms"
            )
        return rollup
    if not eligible:
        return None
    for rollup in sorted(RESOLUTIONS, key=lambda r: -r.step_ms):
        if not (step_ms % rollup.step_ms or start_ms % rollup.step_ms or end_ms % rollup.step_ms):
            return rollup
    return None
