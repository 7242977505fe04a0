"""The `ferry` command line: queries and listings over the collector's Query service."""

# a request's uint32 `limit` field; the collector refuses more than its own limit
MAX_LIMIT = 2**32 - 1


class UsageError(ValueError):
    """A bad flag or argument: `ferry` prints it and exits with status 2."""
