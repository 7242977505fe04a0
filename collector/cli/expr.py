"""The selector parser `ferry query` and `ferry series` use: ferry.collector.query.selector,
where the collector's expression parser uses it too."""

from __future__ import annotations

from ferry.collector.query.selector import ExprError, Selector, parse

__all__ = ["ExprError", "Selector", "parse"]
