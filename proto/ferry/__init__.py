"""Ferry: host and application telemetry into ClickHouse over gRPC, exactly once.

One namespace. This package (from the ferry-client distribution) holds the contract every side
imports: `ferry.v1` (generated stubs), `ferry.limits`, `ferry.series` and `ferry.transport`; the
ferry distribution adds `ferry.wire`, `ferry.runtime`, `ferry.agent` and `ferry.collector`.
"""
