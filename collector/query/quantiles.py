"""The quantile aggregations, and how quantiles of HISTOGRAM series are estimated (in the store:
ferry.collector.query.grouped's `_histogram_quantile`).

Each histogram point holds the observations of its own interval (delta counts), so adding the
counts of every point of a group in a step gives the histogram of that group in that step.
The estimate is Prometheus' `histogram_quantile`: find the bucket where the cumulative count
reaches rank = q * total, and interpolate linearly inside it. The answer therefore lies in the
bucket that holds the rank; its error is at most that bucket's width.
"""

from __future__ import annotations

# The quantile aggregations QueryRange accepts, and the level each stands for.
QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}
