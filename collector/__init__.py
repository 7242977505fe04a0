"""Ferry collector: ingest, validation, dedup, storage in ClickHouse, query service and the `ferry` CLI."""

__version__ = "0.1.0"
