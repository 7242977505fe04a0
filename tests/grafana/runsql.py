"""Run SQL statements against an embedded store and print their results as JSON.

    python -m tests.grafana.runsql chdb:///path/to/store < statements.json

stdin: {"key": "SQL", ...}; stdout: {"key": {"columns": [...], "types": [...], "rows": [...]}
or {"error": "..."}}. A process of its own, run once the collector has stopped: embedded chDB
holds one store path per process (as tests/integration/fleetsim.py --read-store).
"""

from __future__ import annotations

import datetime as dt
import json
import sys

from ferry.collector.storage.store import Store


def run(dsn: str, statements: dict[str, str]) -> dict[str, dict]:
    store = Store.open(dsn)
    out: dict[str, dict] = {}
    try:
        for key, sql in statements.items():
            try:
                result = store.client.query(sql)
            except Exception as exc:  # reported per statement: the test names the panel
                out[key] = {"error": str(exc)[:2000]}
                continue
            rows = [[_plain(v) for v in r] for r in result.result_rows]
            if result.column_names:
                names, types = list(result.column_names), [t.name for t in result.column_types]
            else:  # the embedded driver gives no columns with no rows: ask the engine for them
                described = store.client.query(f"DESCRIBE TABLE ({sql})").result_rows
                names, types = [r[0] for r in described], [r[1] for r in described]
            out[key] = {"columns": names, "types": types, "rows": rows}
    finally:
        store.close()
    return out


def _plain(value):
    """A time as Unix milliseconds (UTC when the driver gives it without a zone), as the query
    service answers times; anything else as JSON has it."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return round(value.timestamp() * 1000)
    return value


def main() -> int:
    print(json.dumps(run(sys.argv[1], json.load(sys.stdin)), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
