"""The variables of Ferry's dashboards: the store's database (a hidden constant) and the host."""

from __future__ import annotations

from grafana.model import Variable
from grafana.sql import col, table

DATABASE = Variable("database", "constant", "Database", value="ferry")
HOSTS_SQL = f"SELECT DISTINCT {col('series', 'host')} FROM {table('series')} ORDER BY 1"
HOST = Variable("host", "query", "Host", sql=HOSTS_SQL)
HOSTS = Variable("host", "query", "Host", sql=HOSTS_SQL, multi=True)
