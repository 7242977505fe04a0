"""ClickHouse storage through clickhouse-connect: DDL, column-oriented inserts and SQL queries."""
