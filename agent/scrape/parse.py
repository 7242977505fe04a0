"""An exposition's bytes → prometheus_client metric families, by the parser its Content-Type names.

`application/openmetrics-text` goes to the OpenMetrics parser (strict: it needs `# EOF`);
anything else to the Prometheus text-format parser, as Prometheus does. A body that does not
parse is a `ScrapeError` naming the format and the parser's complaint; nothing of it is used.
"""

from __future__ import annotations

from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from ferry.agent.scrape.fetch import ScrapeError

OPENMETRICS = "application/openmetrics-text"


def is_openmetrics(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == OPENMETRICS


def parse(body: bytes, content_type: str) -> list[Metric]:
    """All families of the exposition, or ScrapeError (the parsers are lazy: read them all here)."""
    openmetrics = is_openmetrics(content_type)
    fmt = "OpenMetrics" if openmetrics else "Prometheus text"
    try:
        text = body.decode()
    except UnicodeDecodeError as exc:
        raise ScrapeError(f"{fmt} body is not UTF-8: {exc}") from None
    try:
        return list((parse_openmetrics if openmetrics else parse_text)(text))
    except Exception as exc:  # the parsers raise ValueError, but also IndexError/KeyError on odd input
        raise ScrapeError(f"{fmt} parse error: {str(exc) or type(exc).__name__}") from None
