"""Prometheus scraping: the agent reads `[[scrape]]` targets' /metrics and ships them as Ferry series.

config (the `[[scrape]]` tables) → fetch (one HTTP GET) → parse (text or OpenMetrics) → mapping
(families → points, with histograms in ferry.agent.scrape.histograms) → runner (a schedule per target,
health as `scrape.up` / `scrape.duration`, points handed to `Agent.submit`).
"""
