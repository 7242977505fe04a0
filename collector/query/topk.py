"""topk / bottomk per step: keep, at each step, the N groups with the highest (lowest) values.

Ties go to the group whose labels sort first (labels compared as sorted (key, value) pairs), so
the same data always answers the same groups. A group kept at no step leaves the answer; one
kept at some steps has points at those steps only (as PromQL's topk).
"""

from __future__ import annotations

import numpy as np

from ferry.collector.query.answer import Answer


def top(answer: Answer, k: int, highest: bool = True) -> Answer:
    if k <= 0 or not len(answer):
        return answer
    # each group's rank in label order: the tie-break
    order_of = np.empty(len(answer.labels), dtype=np.int64)
    order_of[sorted(range(len(answer.labels)), key=lambda i: sorted(answer.labels[i].items()))] = np.arange(
        len(answer.labels)
    )
    value = -answer.v if highest else answer.v
    rows = np.lexsort((order_of[answer.group], value, answer.t))  # by step, then value, then labels
    t_sorted = answer.t[rows]
    starts = np.flatnonzero(np.concatenate(([True], t_sorted[1:] != t_sorted[:-1])))
    rank = np.arange(rows.shape[0]) - np.repeat(starts, np.diff(np.append(starts, rows.shape[0])))
    kept = np.sort(rows[rank < k])
    used = np.unique(answer.group[kept])
    remap = np.full(len(answer.labels), -1, dtype=np.int64)
    remap[used] = np.arange(used.shape[0])
    group = remap[answer.group[kept]]
    return Answer(
        [answer.labels[i] for i in used.tolist()],
        group,
        answer.t[kept],
        answer.v[kept],
        answer.resolution,
        answer.unit,
    )
