"""The columnar frame codec both sides share: payload columns, encode/decode, lz4 frames."""
