"""Render query results as table, json (one object per line) or csv.

Tables render values and units for people (ferry.collector.cli.units); json and csv keep the
raw numbers and unit codes."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import orjson

from ferry.collector.cli.units import human, unit_name
from ferry.wire.columns import KIND_NAMES


def selector(metric: str, labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return f"{metric}{{{inner}}}" if inner else metric


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def range_result(resp, fmt: str) -> str:
    if fmt == "json":
        return "".join(
            orjson.dumps(
                {
                    "metric": s.metric,
                    "labels": dict(s.labels),
                    "points": [[t, v] for t, v in zip(s.time_ms, s.value, strict=True)],
                }
            ).decode()
            + "\n"
            for s in resp.series
        )
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["series", "time_ms", "value"])
        for s in resp.series:
            name = selector(s.metric, dict(s.labels))
            for t, v in zip(s.time_ms, s.value, strict=True):
                w.writerow([name, t, repr(v)])
        return buf.getvalue()
    lines = []
    for s in resp.series:
        values = list(s.value)
        head = selector(s.metric, dict(s.labels))
        if values:
            head += f"  {sparkline(values)}  {human(min(values), s.unit)} … {human(max(values), s.unit)}"
        lines.append(head)
        for t, v in zip(s.time_ms, s.value, strict=True):
            lines.append(f"  {iso_ms(t)}  {human(v, s.unit):>14}")
    return "\n".join(lines) + ("\n" if lines else "")


SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 60) -> str:
    """One block character per value (per run of values, averaged, past `width`), scaled from
    the lowest to the highest; a flat series draws mid-height, NaN a space."""
    if len(values) > width:
        per = len(values) / width
        values = [_mean(values[int(i * per) : int((i + 1) * per)]) for i in range(width)]
    finite = [v for v in values if v == v and abs(v) != float("inf")]
    if not finite:
        return " " * len(values)
    lo, hi = min(finite), max(finite)
    out = []
    for v in values:
        if v != v or abs(v) == float("inf"):
            out.append(" ")
        elif hi == lo:
            out.append(SPARKS[3])
        else:
            out.append(SPARKS[min(7, int((v - lo) / (hi - lo) * 8))])
    return "".join(out)


def _mean(chunk: list[float]) -> float:
    finite = [v for v in chunk if v == v]
    return sum(finite) / len(finite) if finite else float("nan")


def series_list(resp, fmt: str) -> str:
    if fmt == "json":
        return "".join(
            orjson.dumps({"metric": s.metric, "labels": dict(s.labels)}).decode() + "\n" for s in resp.series
        )
    rows = [
        (selector(s.metric, dict(s.labels)), KIND_NAMES.get(s.kind, "?"), s.unit, iso_ms(s.last_seen_ms))
        for s in resp.series
    ]
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["series", "kind", "unit", "last_seen"])
        w.writerows(rows)
        return buf.getvalue()
    return table(("SERIES", "KIND", "UNIT", "LAST SEEN"), [(r[0], r[1], unit_name(r[2]), r[3]) for r in rows])


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """Columns padded to their widest cell, two spaces apart; the header line first."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    out = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    return "\n".join(out) + "\n"
