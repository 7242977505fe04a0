"""Ferry collector: ingest, validation, dedup, storage in ClickHouse, query service and the `ferry` CLI."""

if (
    __name__ != "ferry.collector"
):  # the folder collector/ is the package ferry.collector; never a top-level `collector`
    raise ImportError(f"no package {__name__!r} (the folder collector/ is imported as ferry.collector)")

__version__ = "0.1.0"
