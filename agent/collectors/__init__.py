"""Collectors: each reads one source and emits points through the metric catalogue."""
