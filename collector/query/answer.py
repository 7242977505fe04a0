"""What one aggregated query answers, before it becomes a QueryRangeResponse: groups x steps.

`Operand` is one aggregated query as an expression names it (`AGG(SELECTOR) by (L1, L2)`), and
`Answer` its result: the labels of each group and one (group, bucket start, value) row per step
that has a value, sorted by group then time. The query service computes Answers in the store
(ferry.collector.query.service), the expression evaluator (ferry.collector.query.arith)
combines them, topk picks from them, and the service turns the final one into the response.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ferry.v1 import query_pb2


@dataclass(frozen=True)
class Operand:
    """One aggregated query of an expression; range, step and resolution are the request's."""

    metric: str
    matchers: tuple[query_pb2.Matcher, ...] = ()
    agg: str = "avg"
    # None: one group per series (labelled with all its labels), as QueryRange without
    # group_by; (): every matched series in one group, labelled {}; else the group-by labels
    by: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Window:
    """The range and step every operand of a request is read over."""

    start_ms: int  # inclusive
    end_ms: int  # exclusive
    step_ms: int  # bucket width; buckets aligned to multiples of it since the epoch
    align_ms: int = 0  # or to align_ms + multiples of it (align_ms <= start_ms)


@dataclass
class Answer:
    labels: list[dict[str, str]] = field(default_factory=list)  # per group
    group: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # into labels
    t: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # bucket start ms
    v: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))
    resolution: str = ""  # what answered: raw, 1m or 1h (an expression: each operand's, joined)
    unit: str = ""  # what the values are in (ferry.collector.query.resultunit); "": a plain number

    def __len__(self) -> int:
        return int(self.group.shape[0])


# Runs one operand over the request's range and step: what the expression evaluator is given.
Run = Callable[[Operand], Answer]
