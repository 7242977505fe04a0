"""Ferry's Grafana dashboards, generated from the metric catalogue and the table declarations.

`python -m grafana.generate` (`make dashboards`) writes grafana/dashboards/*.json, the
provisioning files and docs/grafana.md; tests/grafana fails when a committed file is stale, and
tests/integration/test_grafana_panels.py runs every panel's SQL against a store a real agent filled.
"""
