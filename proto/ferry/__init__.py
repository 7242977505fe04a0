"""Ferry's wire contract: generated stubs (ferry.v1) and the hand-written codec both sides share."""
