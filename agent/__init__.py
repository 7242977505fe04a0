"""Ferry host agent: collectors, batching, lz4 frames and delivery to the collector."""

__version__ = "0.1.0"
