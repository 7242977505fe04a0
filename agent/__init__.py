"""Ferry host agent: collectors, batching, lz4 frames and delivery to the collector."""

if __name__ != "ferry.agent":  # the folder agent/ is the package ferry.agent; never a top-level `agent`
    raise ImportError(f"no package {__name__!r} (the folder agent/ is imported as ferry.agent)")

__version__ = "0.1.0"
