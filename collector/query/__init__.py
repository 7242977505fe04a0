"""The `ferry.v1.Query` service and the SQL it runs."""
