"""Which table answers a QueryRange: the raw `samples`, or the 1m / 1h rollup.

The service asks once per query, after it knows the metric's kind. Automatic choice: the
coarsest rollup whose bucket divides the step, both ends of the range and the alignment, so
every step bucket is a whole number of rollup buckets and the answer equals the raw one; only
for the
aggregations a rollup holds exactly: avg min max sum count of plain series, last of each series
on its own (grouped, a rollup orders series by bucket, not by their last point), and avg sum
count and the quantiles of histograms (their bucket counts add up exactly). Never for
increase/rate (resets need the raw points) or quantiles of plain series (rollups keep no
quantile state for them; see collector/storage/rollups.py). An explicit resolution must divide
the step and the alignment; with a range that is not aligned to it, a rollup bucket counts when
its start lies in the range.
"""

from __future__ import annotations

from ferry.collector.query.quantiles import QUANTILES
from ferry.collector.query.sql import QueryError
from ferry.collector.storage.rollups import RESOLUTIONS, Resolution

RAW = "raw"
ROLLUP_AGGS = ("avg", "min", "max", "sum", "count", "last")
HISTOGRAM_ROLLUP_AGGS = ("avg", "sum", "count", *QUANTILES)
NAMES = (RAW, *(r.name for r in RESOLUTIONS))


def choose(
    resolution: str,
    agg: str,
    step_ms: int,
    start_ms: int,
    end_ms: int,
    histogram: bool,
    align_ms: int = 0,
    grouped: bool = False,
) -> Resolution | None:
    """The rollup to read, or None for raw samples; raises QueryError for a request that
    names a resolution that cannot answer it."""
    if resolution not in ("", *NAMES):
        raise QueryError(
            f"resolution {resolution[:80]!r} is not one of {', '.join(NAMES)} (or empty: automatic)"
        )
    if resolution == RAW:
        return None
    held = HISTOGRAM_ROLLUP_AGGS if histogram else ROLLUP_AGGS
    eligible = agg in held
    if resolution:
        rollup = next(r for r in RESOLUTIONS if r.name == resolution)
        if not eligible:
            what = "histogram" if histogram else "plain"
            raise QueryError(
                f"resolution {resolution}: aggregation {agg!r} of {what} series is answered from raw "
                f"samples only (rollups of {what} series hold {', '.join(held)}); use resolution "
                "raw or automatic"
            )
        for what, ms in (("step", step_ms), ("align", align_ms)):
            if ms % rollup.step_ms:
                raise QueryError(
                    f"resolution {resolution}: {what} {ms} ms is not a multiple of {rollup.step_ms} ms"
                )
        return rollup
    # a group's `last` over a rollup orders its series by rollup bucket, not by their last
    # point's time, so it can differ from the raw answer: chosen only when asked for by name
    if not eligible or (grouped and agg == "last"):
        return None
    for rollup in sorted(RESOLUTIONS, key=lambda r: -r.step_ms):
        if not any(ms % rollup.step_ms for ms in (step_ms, start_ms, end_ms, align_ms)):
            return rollup
    return None
