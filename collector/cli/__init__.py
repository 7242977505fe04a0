"""The `ferry` command line: queries and listings over the collector's Query service."""
