"""The query limits docs/bad-input.md and docs/delivery.md quote are the declared ones
(collector/query/sql.py QueryLimits, the listing and search maxima, the collector's keys)."""

from __future__ import annotations

from ferry.collector.config import CollectorConfig
from ferry.collector.query import listing, search
from ferry.collector.query.service import ANSWER_POINT_BYTES
from ferry.collector.query.sql import CLIENT_MAX_RECEIVE_BYTES, QueryLimits
from tests.paths import ROOT


def test_the_query_limits_quoted_are_the_declared_ones():
    lim, cfg, mib = QueryLimits(), CollectorConfig(), 1 << 20
    bad_input = (ROOT / "docs" / "bad-input.md").read_text()
    delivery = (ROOT / "docs" / "delivery.md").read_text()
    phrases = [
        f"at most {lim.max_execution_s:g} s",
        f"longer than {lim.max_execution_s:g} s",
        f"more than {lim.max_buckets:,} buckets",
        f"more than {lim.max_groups:,} groups in an answer",
        f"more than {lim.max_points:,} points (`query_max_points`",
        f"more than {lim.max_rows_read:,} rows in the store (`query_max_rows_read`",
        f"`query_max_answer_bytes` ({lim.max_answer_bytes // mib} MiB; {ANSWER_POINT_BYTES} bytes a point",
        f"`query_max_memory_bytes` ({lim.max_memory_bytes >> 30} GiB)",
        f"ListSeries and ListLabelValues {lim.max_list_limit:,}, Search {search.MAX_LIMIT:,}, "
        f"TopProcesses {listing.MAX_TOP:,}",
        f"accept answers of up to {CLIENT_MAX_RECEIVE_BYTES // mib} MiB",
    ]
    assert lim.max_list_limit == listing.MAX_VALUES_LIMIT
    assert [p for p in phrases if p not in bad_input] == []
    in_delivery = [
        f"`queries` ({cfg.queries})",
        f"`query_max_memory_bytes`\n({cfg.query_max_memory_bytes >> 30} GiB)",
        f"`query_max_answer_bytes`, {cfg.query_max_answer_bytes // mib} MiB",
        f"`store_probe_interval`, {cfg.store_probe_interval:g} s",
    ]
    assert [p for p in in_delivery if p not in delivery] == []
