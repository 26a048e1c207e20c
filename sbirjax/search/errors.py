"""The one error type of search: a user's input (a path, a file, a flag) that cannot be served.

The command line prints its message as one line and exits with status 2; a bug raises anything
else and keeps its traceback."""


class SearchError(Exception):
    """A bad input: the message names the file and the fix."""
